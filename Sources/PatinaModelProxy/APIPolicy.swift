import Foundation

/// What of the Messages API the proxy forwards: what Claude Code needs, and none of the
/// API's server-side network features unless the user allowed them by name. Those
/// features make the provider's servers reach URLs of the request's choosing (MCP
/// servers, web fetch, web search, URL sources, code execution's container), which would
/// carry the agent's data past the sandbox's egress firewall.
public struct APIPolicy: Sendable, Equatable {
    /// The features `--allow-api-feature` names, and what each lets through.
    public static let features: [(name: String, what: String)] = [
        ("mcp", "MCP servers the API connects to (mcp_servers, mcp_toolset tools, mcp-* betas)"),
        ("web_search", "the API's web search tool (web_search_* tools, web-search-* betas)"),
        ("web_fetch", "the API's web fetch tool (web_fetch_* tools, web-fetch-* betas)"),
        ("code_execution", "the API's code execution tool and its container (code_execution_* tools, container)"),
        ("url_sources", "images and documents the API fetches from a URL (source type url)"),
    ]

    /// Names allowed: features, or `beta:NAME`, `field:NAME`, `tool:TYPE` for what the
    /// proxy does not know.
    public let allowed: Set<String>

    public init(allowed: [String] = []) {
        self.allowed = Set(allowed)
    }

    /// Why `name` is not something `--allow-api-feature` takes, or nil when it is.
    public static func problem(with name: String) -> String? {
        if features.contains(where: { $0.name == name }) { return nil }
        for prefix in ["beta:", "field:", "tool:"] where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            if !rest.isEmpty, rest.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) { return nil }
        }
        return "unknown API feature '\(name)': use one of " + features.map(\.name).joined(separator: ", ")
            + ", or beta:NAME, field:NAME, tool:TYPE"
    }

    public enum Decision: Equatable {
        /// Forward, with this `anthropic-beta` value (nil: none) and these betas taken out.
        case forward(beta: String?, droppedBetas: [String])
        /// Refused: the feature (what `--allow-api-feature` would take) and why.
        case refuse(feature: String, message: String)
    }

    /// Betas Claude Code sends for the Messages API, by name without their date.
    static let knownBetas: Set<String> = [
        "claude-code", "oauth", "interleaved-thinking", "fine-grained-tool-streaming", "context-management",
        "context-1m", "prompt-caching", "prompt-caching-scope", "prompt-caching-evict", "extended-cache-ttl",
        "token-efficient-tools", "token-counting", "output-128k", "effort", "structured-outputs",
        "advanced-tool-use", "tool-search-tool", "tool-examples", "redact-thinking", "thinking-token-count",
        "thinking-display-updates", "thinking-resumption", "thinking-binding-controls", "per-turn-control",
        "mid-conversation-tool-changes", "mid-conversation-system", "mid-conversation-system-clear-at",
        "fast-mode", "task-budgets", "timing", "request-tags", "cache-keepalive", "cache-diagnosis",
        "context-hint", "inline-tools", "claude-code-side-query", "auto-mode-classifier", "server-side-fallback",
        "fallback-credit", "resumption", "tool-provenance", "program-use-case-ids", "dangerous-tool-use",
    ]

    /// Betas of the server-side network features, by name without their date.
    static let networkBetas: [String: String] = [
        "mcp-client": "mcp", "mcp-servers": "mcp", "mcp-tunnels": "mcp",
        "web-search": "web_search", "web-search-results-only": "web_search",
        "web-fetch": "web_fetch", "code-execution": "code_execution",
    ]

    /// Top-level fields of a Messages (or count_tokens) request Claude Code sends.
    static let knownFields: Set<String> = [
        "model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream", "temperature",
        "top_k", "top_p", "tools", "tool_choice", "thinking", "service_tier", "context_management",
        "output_config", "output_format", "speed",
    ]

    static let networkFields: [String: String] = ["mcp_servers": "mcp", "container": "code_execution"]

    /// Tool types the client runs itself (or that never leave the API: tool search).
    static let clientToolPrefixes = ["custom", "bash_", "text_editor_", "computer_", "memory_", "tool_search_tool_"]
    static let networkToolPrefixes: [(String, String)] = [
        ("web_search_", "web_search"), ("web_fetch_", "web_fetch"), ("code_execution_", "code_execution"),
        ("mcp_toolset", "mcp"),
    ]

    /// Judges one request: its `anthropic-beta` header and its JSON body.
    public func judge(beta: String?, body: [String: Any]) -> Decision {
        var kept: [String] = []
        var dropped: [String] = []
        for value in (beta ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !value.isEmpty {
            let name = Self.betaName(value)
            if let feature = Self.networkBetas[name] {
                guard allowed.contains(feature) || allowed.contains("beta:" + name) else {
                    return refusal(feature, "the anthropic-beta '\(value)'")
                }
                kept.append(value)
            } else if Self.knownBetas.contains(name) || allowed.contains("beta:" + name) {
                kept.append(value)
            } else {
                dropped.append(value)
            }
        }
        for key in body.keys.sorted() where !Self.knownFields.contains(key) {
            if let feature = Self.networkFields[key] {
                if !allowed.contains(feature) { return refusal(feature, "the request field '\(key)'") }
            } else if !allowed.contains("field:" + key) {
                return refusal("field:" + key, "the request field '\(key)', which patina does not know")
            }
        }
        for (index, tool) in ((body["tools"] as? [Any]) ?? []).enumerated() {
            guard let type = (tool as? [String: Any])?["type"] as? String else { continue }
            if Self.clientToolPrefixes.contains(where: { type.hasPrefix($0) }) { continue }
            if let feature = Self.networkToolPrefixes.first(where: { type.hasPrefix($0.0) })?.1 {
                if !allowed.contains(feature) { return refusal(feature, "tools[\(index)] of type '\(type)'") }
            } else if !allowed.contains("tool:" + type) {
                return refusal("tool:" + type, "tools[\(index)] of type '\(type)', which patina does not know")
            }
        }
        if !allowed.contains("url_sources"), let path = Self.urlSource(in: body["messages"], path: "messages") {
            return refusal("url_sources", "\(path), a source the API would fetch from a URL")
        }
        return .forward(beta: kept.isEmpty ? nil : kept.joined(separator: ","), droppedBetas: dropped)
    }

    private func refusal(_ feature: String, _ what: String) -> Decision {
        .refuse(feature: feature, message: "patina's model proxy does not forward \(what): the API would reach the network for it, "
                    + "past the sandbox's firewall; allow it with --allow-api-feature \(feature)")
    }

    /// `web-fetch-2025-09-10` → `web-fetch`, `claude-code-20250219` → `claude-code`.
    static func betaName(_ value: String) -> String {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count > 1, let last = parts.last, last.count == 8, last.allSatisfy(\.isNumber) {
            return parts.dropLast().joined(separator: "-")
        }
        guard parts.count > 3 else { return value }
        let tail = parts.suffix(3)
        let isDate = tail.enumerated().allSatisfy { i, part in
            part.count == (i == 0 ? 4 : 2) && part.allSatisfy(\.isNumber)
        }
        return isDate ? parts.dropLast(3).joined(separator: "-") : value
    }

    /// Where in the messages a `source` of type `url` sits (images, documents), if anywhere.
    /// Walks iteratively: a deeply nested body cannot exhaust the stack.
    static func urlSource(in value: Any?, path: String) -> String? {
        var pending: [(Any, String)] = value.map { [($0, path)] } ?? []
        while let (item, at) = pending.popLast() {
            if let object = item as? [String: Any] {
                if let source = object["source"] as? [String: Any], source["type"] as? String == "url" { return at + ".source" }
                for (key, child) in object { pending.append((child, at + "." + key)) }
            } else if let array = item as? [Any] {
                for (index, child) in array.enumerated() { pending.append((child, at + "[\(index)]")) }
            }
        }
        return nil
    }
}
