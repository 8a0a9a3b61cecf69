import Foundation

/// One line of Claude Code's `--output-format stream-json --verbose` output,
/// reduced to what patina shows and records. Unknown and malformed lines are
/// kept as such: the raw line always goes to session.jsonl unchanged.
public enum StreamEvent: Sendable, Equatable {
    case initialized(sessionID: String?, model: String?, tools: Int)
    case assistantText(String)
    case toolUse(id: String?, name: String, summary: String)
    case toolResult(id: String?, isError: Bool, text: String)
    case result(ResultSummary)
    /// Claude Code is retrying a failed API request (it emits this before each retry).
    case apiRetry(status: Int?)
    case other(type: String)
    case malformed(String)

    public struct ResultSummary: Sendable, Equatable {
        public var subtype: String
        public var isError: Bool
        public var numTurns: Int?
        public var costUSD: Double?
        public var durationMS: Double?
        public var tokens: TokenCounts
        public var text: String?
        public var sessionID: String?
        /// HTTP status of the API error the agent gave up on (429 rate limit, 529 overload, ...).
        public var apiErrorStatus: Int? = nil
    }

    /// Token usage reported on one assistant message (Claude Code repeats it on
    /// every line of the message, so it is keyed by the message id).
    public struct MessageUsage: Sendable, Equatable {
        public var messageID: String
        public var model: String?
        public var tokens: TokenCounts
    }

    /// Parses one line. Never throws: a line that is not a JSON object is `.malformed`.
    public static func parse(_ line: String) -> [StreamEvent] {
        decode(line).events
    }

    /// The events of one line and its token usage, from a single JSON parse.
    static func decode(_ line: String) -> (events: [StreamEvent], usage: MessageUsage?) {
        switch object(line) {
        case .blank: return ([], nil)
        case .malformed(let start): return ([.malformed(start)], nil)
        case .object(let object): return (events(object), usage(object))
        }
    }

    /// One line as JSON, parsed once; `events(_:summaryLimit:)` and `timestamp(_:)` read it.
    enum Line {
        case blank
        /// Not a JSON object: its first 200 characters.
        case malformed(String)
        case object([String: Any])
    }

    static func object(_ line: String) -> Line {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return .blank }
        guard let data = trimmed.data(using: .utf8),
              let any = try? JSONSerialization.jsonObject(with: data),
              let object = any as? [String: Any]
        else { return .malformed(String(trimmed.prefix(200))) }
        return .object(object)
    }

    /// The line's own `timestamp` (ISO 8601, Claude Code puts one on most message lines), if any.
    static func timestamp(_ object: [String: Any]) -> Date? {
        guard let text = object["timestamp"] as? String else { return nil }
        return (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle()))
    }

    static func usage(_ object: [String: Any]) -> MessageUsage? {
        guard object["type"] as? String == "assistant",
              let message = object["message"] as? [String: Any],
              let id = message["id"] as? String,
              let usage = message["usage"] as? [String: Any]
        else { return nil }
        return MessageUsage(messageID: id, model: message["model"] as? String, tokens: tokens(usage))
    }

    static func tokens(_ usage: [String: Any]) -> TokenCounts {
        var tokens = TokenCounts()
        tokens.input = int(usage["input_tokens"]) ?? 0
        tokens.output = int(usage["output_tokens"]) ?? 0
        tokens.cacheRead = int(usage["cache_read_input_tokens"]) ?? 0
        tokens.cacheCreation = int(usage["cache_creation_input_tokens"]) ?? 0
        return tokens
    }

    /// `summaryLimit` clips tool summaries to one line of that many characters; `nil` keeps the
    /// tool's input value exactly as given (for the session log, which redacts before it clips).
    static func events(_ object: [String: Any], summaryLimit: Int? = 100) -> [StreamEvent] {
        let type = object["type"] as? String ?? "unknown"
        switch type {
        case "system":
            if object["subtype"] as? String == "init" {
                return [.initialized(
                    sessionID: object["session_id"] as? String,
                    model: object["model"] as? String,
                    tools: (object["tools"] as? [Any])?.count ?? 0)]
            }
            if object["subtype"] as? String == "api_retry" {
                return [.apiRetry(status: int(object["error_status"]))]
            }
            return [.other(type: "system")]
        case "assistant":
            let content = (object["message"] as? [String: Any])?["content"] as? [[String: Any]] ?? []
            return content.compactMap { block in
                switch block["type"] as? String {
                case "text":
                    let text = (block["text"] as? String ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                    return text.isEmpty ? nil : .assistantText(text)
                case "tool_use":
                    let name = block["name"] as? String ?? "tool"
                    return .toolUse(id: block["id"] as? String, name: name,
                                    summary: summarize(tool: name, input: block["input"] as? [String: Any] ?? [:], limit: summaryLimit))
                default:
                    return nil
                }
            }
        case "user":
            let content = (object["message"] as? [String: Any])?["content"] as? [[String: Any]] ?? []
            return content.compactMap { block in
                guard block["type"] as? String == "tool_result" else { return nil }
                return .toolResult(id: block["tool_use_id"] as? String,
                                   isError: block["is_error"] as? Bool ?? false,
                                   text: text(of: block["content"]))
            }
        case "result":
            return [.result(ResultSummary(
                subtype: object["subtype"] as? String ?? "unknown",
                isError: object["is_error"] as? Bool ?? false,
                numTurns: int(object["num_turns"]),
                costUSD: double(object["total_cost_usd"]) ?? double(object["cost_usd"]),
                durationMS: double(object["duration_ms"]),
                tokens: tokens(object["usage"] as? [String: Any] ?? [:]),
                text: object["result"] as? String,
                sessionID: object["session_id"] as? String,
                apiErrorStatus: int(object["api_error_status"])))]
        default:
            return [.other(type: type)]
        }
    }

    /// One short line describing a tool call, e.g. `git commit -m "x"` for Bash; with no
    /// `limit`, the input value itself (it may span lines).
    static func summarize(tool: String, input: [String: Any], limit: Int? = 100) -> String {
        let keys = ["command", "file_path", "path", "pattern", "url", "query", "description", "prompt"]
        for key in keys {
            if let value = input[key] as? String, !value.isEmpty { return limit.map { oneLine(value, limit: $0) } ?? value }
        }
        if let todos = input["todos"] as? [Any] { return "\(todos.count) todos" }
        return ""
    }

    public static func oneLine(_ text: String, limit: Int = 100) -> String {
        let flat = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: " ⏎ ")
        return flat.count > limit ? String(flat.prefix(limit - 1)) + "…" : flat
    }

    static func text(of content: Any?) -> String {
        if let s = content as? String { return s }
        if let blocks = content as? [[String: Any]] {
            return blocks.compactMap { $0["text"] as? String }.joined(separator: "\n")
        }
        return ""
    }

    static func int(_ value: Any?) -> Int? {
        if let i = value as? Int { return i }
        if let d = value as? Double { return Int(d) }
        return nil
    }

    static func double(_ value: Any?) -> Double? {
        if let d = value as? Double { return d }
        if let i = value as? Int { return Double(i) }
        return nil
    }
}
