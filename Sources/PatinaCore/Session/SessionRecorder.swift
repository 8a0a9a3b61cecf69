import Foundation

/// Receives the agent's stream-json lines: writes every line unchanged to
/// session.jsonl, keeps the summary for the run record and drives the live
/// progress lines.
public final class SessionRecorder: @unchecked Sendable {
    public private(set) var sessionID: String?
    public private(set) var model: String?
    public private(set) var result: StreamEvent.ResultSummary?
    public private(set) var malformedLines = 0
    public private(set) var sawInit = false
    /// Status of the last API error Claude Code retried (429, 529, ...).
    public private(set) var lastRetryStatus: Int?
    private var usageByMessage: [String: (String?, TokenCounts)] = [:]
    private var messageOrder: [String] = []
    private let handle: FileHandle?
    private let progress: Progress?
    private let lock = NSLock()

    public init(sessionLog: URL, progress: Progress?) throws {
        _ = FileManager.default.createFile(atPath: sessionLog.path, contents: nil)
        handle = try FileHandle(forWritingTo: sessionLog)
        self.progress = progress
    }

    /// Number of distinct assistant messages so far: the agent's turns.
    public var turns: Int { lock.withLock { messageOrder.count } }

    public var estimatedCost: Double {
        lock.withLock { usageByMessage.values.reduce(0) { $0 + PriceTable.estimate(model: $1.0, $1.1) } }
    }

    public func receive(_ line: String) {
        lock.withLock {
            try? handle?.write(contentsOf: Data((line + "\n").utf8))
        }
        let (events, usage) = StreamEvent.decode(line)
        if let usage {
            lock.withLock {
                if usageByMessage[usage.messageID] == nil { messageOrder.append(usage.messageID) }
                usageByMessage[usage.messageID] = (usage.model, usage.tokens)
            }
        }
        for event in events {
            switch event {
            case .initialized(let sessionID, let model, _):
                self.sessionID = sessionID
                self.model = model
                sawInit = true
                progress?.emit(.agentStarted(model: model))
            case .toolUse(_, let name, let summary):
                progress?.tool(turn: max(turns, 1), name: name, summary: summary, cost: estimatedCost)
            case .toolResult(_, let isError, let text) where isError:
                progress?.emit(.toolError(StreamEvent.oneLine(text, limit: 80)))
            case .assistantText(let text):
                progress?.emit(.agentText(StreamEvent.oneLine(text, limit: 90)))
            case .result(let summary):
                result = summary
                if sessionID == nil { sessionID = summary.sessionID }
            case .apiRetry(let status):
                lastRetryStatus = status
                if let status { progress?.note("model API answered \(status); Claude Code retries") }
            case .malformed:
                malformedLines += 1
            default:
                break
            }
        }
    }

    public func close() {
        lock.withLock { try? handle?.close() }
    }
}
