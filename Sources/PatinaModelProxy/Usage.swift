import Foundation

/// What one Messages API answer says it used, as the API reported it.
public struct APIUsage: Sendable, Equatable, Codable {
    public var inputTokens = 0
    public var outputTokens = 0
    public var cacheReadTokens = 0
    /// Every cache write; `cacheWrite1hTokens` of them were written for an hour (the rest for 5 minutes).
    public var cacheWriteTokens = 0
    public var cacheWrite1hTokens = 0
    public var webSearchRequests = 0
    /// `usage.speed` ("standard", "fast") and `usage.inference_geo` ("us"), when the API said.
    public var speed: String?
    public var inferenceGeo: String?

    public init(inputTokens: Int = 0, outputTokens: Int = 0, cacheReadTokens: Int = 0, cacheWriteTokens: Int = 0,
                cacheWrite1hTokens: Int = 0, webSearchRequests: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadTokens = cacheReadTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.cacheWrite1hTokens = cacheWrite1hTokens
        self.webSearchRequests = webSearchRequests
    }

    /// Every input token of the prompt, cached or not (what long-prompt prices look at).
    public var promptTokens: Int { inputTokens + cacheReadTokens + cacheWriteTokens }

    /// Applies an API `usage` object: every field it carries replaces the one here (a
    /// `message_delta`'s counts are totals for the message so far, not increments).
    mutating func apply(_ usage: [String: Any]) {
        if let v = Self.int(usage["input_tokens"]) { inputTokens = v }
        if let v = Self.int(usage["output_tokens"]) { outputTokens = v }
        if let v = Self.int(usage["cache_read_input_tokens"]) { cacheReadTokens = v }
        if let v = Self.int(usage["cache_creation_input_tokens"]) { cacheWriteTokens = v }
        if let breakdown = usage["cache_creation"] as? [String: Any], let v = Self.int(breakdown["ephemeral_1h_input_tokens"]) {
            cacheWrite1hTokens = v
        }
        if let tools = usage["server_tool_use"] as? [String: Any], let v = Self.int(tools["web_search_requests"]) {
            webSearchRequests = v
        }
        if let v = usage["speed"] as? String { speed = v }
        if let v = usage["inference_geo"] as? String, !v.isEmpty { inferenceGeo = v }
    }

    static func int(_ value: Any?) -> Int? {
        if let i = value as? Int { return i }
        if let d = value as? Double, d.isFinite { return Int(d) }
        return nil
    }

    enum CodingKeys: String, CodingKey {
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case cacheReadTokens = "cache_read_tokens"
        case cacheWriteTokens = "cache_write_tokens"
        case cacheWrite1hTokens = "cache_write_1h_tokens"
        case webSearchRequests = "web_search_requests"
        case speed
        case inferenceGeo = "inference_geo"
    }
}

/// What the proxy learns from one answer's body while passing it on: the model that
/// answered, its usage, and the API error if it was one.
public struct AnswerSummary: Sendable, Equatable {
    public var model: String?
    public var usage: APIUsage?
    public var stopReason: String?
    public var errorType: String?
    public var errorMessage: String?
}

/// Reads an answer's body as it streams past, without holding on to it: Server-Sent
/// Events line by line (only `message_start`, `message_delta` and `error` events are
/// parsed), or a JSON body kept up to a limit and parsed at the end.
public struct AnswerScanner: Sendable {
    public enum Format: Sendable { case eventStream, json }

    public let format: Format
    public private(set) var summary = AnswerSummary()
    private var line: [UInt8] = []
    private var lineTooLong = false
    private var event: String?
    private var json = Data()
    private var jsonTooLong = false
    static let maxLineBytes = 4 << 20
    static let maxJSONBytes = 32 << 20

    public init(contentType: String?) {
        format = (contentType ?? "").lowercased().contains("text/event-stream") ? .eventStream : .json
    }

    public mutating func feed(_ data: Data) {
        switch format {
        case .json:
            if json.count + data.count <= Self.maxJSONBytes { json.append(data) } else { jsonTooLong = true }
        case .eventStream:
            for byte in data {
                if byte == 10 {
                    finishLine()
                } else if line.count < Self.maxLineBytes {
                    line.append(byte)
                } else {
                    lineTooLong = true
                }
            }
        }
    }

    /// Call once the body ended.
    public mutating func finish() -> AnswerSummary {
        switch format {
        case .eventStream:
            if !line.isEmpty { finishLine() }
        case .json:
            if !jsonTooLong, let object = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] {
                read(message: object)
                if let error = object["error"] as? [String: Any] { read(error: error) }
            }
            json = Data()
        }
        return summary
    }

    private mutating func finishLine() {
        defer {
            line.removeAll(keepingCapacity: true)
            lineTooLong = false
        }
        if line.last == 13 { line.removeLast() }
        if line.isEmpty {
            event = nil  // a blank line ends the event
            return
        }
        guard !lineTooLong else { return }
        if line.starts(with: Array("event:".utf8)) {
            event = String(decoding: line.dropFirst(6), as: UTF8.self).trimmingCharacters(in: .whitespaces)
            return
        }
        guard line.starts(with: Array("data:".utf8)) else { return }
        let payload = line.dropFirst(5)
        // Without an `event:` line the type is inside the data; only the few that matter are parsed.
        if let event, !["message_start", "message_delta", "error"].contains(event) { return }
        if event == nil, !Self.mentionsRelevantType(payload) { return }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] else { return }
        switch object["type"] as? String {
        case "message_start":
            if let message = object["message"] as? [String: Any] { read(message: message) }
        case "message_delta":
            if let usage = object["usage"] as? [String: Any] {
                var u = summary.usage ?? APIUsage()
                u.apply(usage)
                summary.usage = u
            }
            if let delta = object["delta"] as? [String: Any], let stop = delta["stop_reason"] as? String { summary.stopReason = stop }
        case "error":
            if let error = object["error"] as? [String: Any] { read(error: error) }
        default:
            break
        }
    }

    private mutating func read(message: [String: Any]) {
        if let model = message["model"] as? String { summary.model = model }
        if let usage = message["usage"] as? [String: Any] {
            var u = summary.usage ?? APIUsage()
            u.apply(usage)
            summary.usage = u
        }
        if let stop = message["stop_reason"] as? String { summary.stopReason = stop }
    }

    private mutating func read(error: [String: Any]) {
        summary.errorType = error["type"] as? String
        summary.errorMessage = error["message"] as? String
    }

    static func mentionsRelevantType<C: Collection<UInt8>>(_ payload: C) -> Bool {
        let text = String(decoding: payload.prefix(64), as: UTF8.self)
        return text.contains("\"message_start\"") || text.contains("\"message_delta\"") || text.contains("\"error\"")
    }
}
