import Foundation
import Synchronization

/// One line of api.jsonl: one request the proxy answered.
public struct APILogEntry: Codable, Sendable, Equatable {
    public var time: Date
    public var seq: Int
    public var method: String
    public var path: String
    /// The model the request asked for, and the one that answered.
    public var requestedModel: String?
    public var model: String?
    public var stream: Bool?
    /// Tools the request offered (a request with tools is a turn of the agent loop).
    public var tools: Int?
    public var status: Int
    /// Time to the first byte of the answer's body, and to its end, from when the request was read.
    public var firstByteMS: Double?
    public var latencyMS: Double
    public var usage: APIUsage?
    public var costUSD: Double?
    /// Why `costUSD` is null for an answer with usage.
    public var unpriced: String?
    public var stopReason: String?
    public var errorType: String?
    public var errorMessage: String?
    /// Set when the proxy answered itself instead of forwarding: "budget", "credential", "route", "unreachable",
    /// "bad_request", "api_feature", "too_large", "timeout", "in_flight", "connections".
    public var refused: String?
    /// With `refused` "api_feature": the feature `--allow-api-feature` would allow.
    public var feature: String?
    /// `anthropic-beta` values not forwarded (unknown to patina).
    public var droppedBetas: [String]?

    public init(time: Date, seq: Int, method: String, path: String, status: Int, latencyMS: Double) {
        self.time = time
        self.seq = seq
        self.method = method
        self.path = path
        self.status = status
        self.latencyMS = latencyMS
    }

    enum CodingKeys: String, CodingKey {
        case time, seq, method, path, model, stream, tools, status, usage, unpriced, refused, feature
        case droppedBetas = "dropped_betas"
        case requestedModel = "requested_model"
        case firstByteMS = "first_byte_ms"
        case latencyMS = "latency_ms"
        case costUSD = "cost_usd"
        case stopReason = "stop_reason"
        case errorType = "error_type"
        case errorMessage = "error_message"
    }

    /// The lines of an api.jsonl file (lines that do not parse are skipped).
    public static func read(_ url: URL) -> [APILogEntry] {
        guard let data = try? Data(contentsOf: url) else { return [] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return data.split(separator: 10).compactMap { try? decoder.decode(APILogEntry.self, from: Data($0)) }
    }
}

/// Appends api.jsonl lines, one per request, each written whole and at once; every
/// known credential value is redacted first.
final class APILog: Sendable {
    private let handle: Mutex<FileHandle?>
    private let secrets: [String]
    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    init(url: URL?, secrets: [String]) throws {
        self.secrets = secrets.filter { !$0.isEmpty }
        guard let url else {
            handle = Mutex(nil)
            return
        }
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let h = try FileHandle(forWritingTo: url)
        h.seekToEndOfFile()
        handle = Mutex(h)
    }

    func append(_ entry: APILogEntry) {
        guard var line = try? Self.encoder.encode(entry) else { return }
        if !secrets.isEmpty {
            var text = String(decoding: line, as: UTF8.self)
            for secret in secrets { text = text.replacingOccurrences(of: secret, with: "[redacted]") }
            line = Data(text.utf8)
        }
        line.append(10)
        handle.withLock { try? $0?.write(contentsOf: line) }
    }

    func close() {
        handle.withLock {
            try? $0?.close()
            $0 = nil
        }
    }
}
