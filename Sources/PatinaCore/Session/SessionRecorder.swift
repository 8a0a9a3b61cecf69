import Foundation

/// Receives the agent's stream-json lines: writes every line to session.jsonl
/// (unchanged but for credential values, redacted), keeps the agent's own summary
/// (`agent_reported` in the record) and drives the live progress lines. Nothing here
/// decides the run's cost or tokens: the model proxy counts those.
public final class SessionRecorder: @unchecked Sendable {
    // @unchecked: the one stream reader writes every mutable property under `lock`; the public ones are read after the stream ended.
    public private(set) var sessionID: String?
    public private(set) var model: String?
    public private(set) var result: StreamEvent.ResultSummary?
    public private(set) var malformedLines = 0
    public private(set) var sawInit = false
    /// Status of the last API error Claude Code retried (429, 529, ...).
    public private(set) var lastRetryStatus: Int?
    private var messageIDs: Set<String> = []
    private let handle: FileHandle?
    private let progress: Progress?
    private let redactor: Redactor
    private let costSoFar: @Sendable () -> Double
    private let lock = NSLock()
    /// The most session.jsonl holds; later lines are read (the run's result is the last)
    /// but not written, and one marker line says how many were left out.
    public static let sizeLimit = 256 << 20
    private let sizeLimit: Int
    private var written = 0
    public private(set) var droppedLines = 0
    /// Lines of the agent's stdout cut at `Command.lineLimit`.
    public private(set) var cutLines = 0

    /// `costSoFar`: the run's spending as the model proxy counted it, for the live lines.
    public init(sessionLog: URL, progress: Progress?, redactor: Redactor = Redactor(secrets: []),
                costSoFar: @escaping @Sendable () -> Double = { 0 }, sizeLimit: Int = SessionRecorder.sizeLimit) throws {
        self.sizeLimit = sizeLimit
        _ = FileManager.default.createFile(atPath: sessionLog.path, contents: nil)
        handle = try FileHandle(forWritingTo: sessionLog)
        self.progress = progress
        self.redactor = redactor
        self.costSoFar = costSoFar
    }

    /// Number of distinct assistant messages so far: the agent's turns, for the live lines.
    public var turns: Int { lock.withLock { messageIDs.count } }

    public func receive(_ raw: String) {
        if raw.hasPrefix(#"{"type":"patina_truncated_line""#) { lock.withLock { cutLines += 1 } }
        let line = redactor(raw)
        lock.withLock {
            let data = Data((line + "\n").utf8)
            if written + data.count <= sizeLimit {
                try? handle?.write(contentsOf: data)
                written += data.count
            } else {
                droppedLines += 1
            }
        }
        let (events, usage) = StreamEvent.decode(line)
        if let usage {
            _ = lock.withLock { messageIDs.insert(usage.messageID) }
        }
        for event in events {
            switch event {
            case .initialized(let sessionID, let model, _):
                self.sessionID = sessionID
                self.model = model
                sawInit = true
                progress?.emit(.agentStarted(model: model))
            case .toolUse(_, let name, let summary):
                progress?.tool(turn: max(turns, 1), name: name, summary: summary, cost: costSoFar())
            case .toolResult(_, let isError, let text) where isError:
                progress?.emit(.toolError(StreamEvent.oneLine(text, limit: 80)))
            case .assistantText(let text):
                progress?.emit(.agentText(StreamEvent.oneLine(text, limit: 90)))
            case .result(let summary):
                result = summary
                if sessionID == nil { sessionID = summary.sessionID }
            case .apiRetry(let status):
                // What the API answered is reported by the model proxy; this is the agent's word.
                lastRetryStatus = status
            case .malformed:
                malformedLines += 1
            default:
                break
            }
        }
    }

    public func close() {
        lock.withLock {
            if droppedLines > 0 {
                let marker = #"{"type":"patina_truncated_session","dropped_lines":\#(droppedLines),"size_limit":\#(sizeLimit)}"#
                try? handle?.write(contentsOf: Data((marker + "\n").utf8))
            }
            try? handle?.close()
        }
    }
}
