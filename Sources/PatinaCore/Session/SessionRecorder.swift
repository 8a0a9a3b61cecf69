import Foundation
import Synchronization

/// Receives the agent's stream-json lines: writes every line to session.jsonl
/// (unchanged but for credential values, redacted), keeps the agent's own summary
/// (`agent_reported` in the record) and drives the live progress lines. Nothing here
/// decides the run's cost or tokens: the model proxy counts those.
public final class SessionRecorder: Sendable {
    private struct State {
        var sessionID: String?
        var model: String?
        var result: StreamEvent.ResultSummary?
        var malformedLines = 0
        var sawInit = false
        var lastRetryStatus: Int?
        var messageIDs: Set<String> = []
        var written = 0
        var droppedLines = 0
        var cutLines = 0
    }
    /// The one stream reader writes it; the run reads it once the stream ended.
    private let state = Mutex(State())
    private let handle: FileHandle?
    private let progress: Progress?
    private let redactor: Redactor
    private let costSoFar: @Sendable () -> Double
    /// The most session.jsonl holds; later lines are read (the run's result is the last)
    /// but not written, and one marker line says how many were left out.
    public static let sizeLimit = 256 << 20
    private let sizeLimit: Int

    public var sessionID: String? { state.withLock { $0.sessionID } }
    public var model: String? { state.withLock { $0.model } }
    public var result: StreamEvent.ResultSummary? { state.withLock { $0.result } }
    public var malformedLines: Int { state.withLock { $0.malformedLines } }
    public var sawInit: Bool { state.withLock { $0.sawInit } }
    /// Status of the last API error Claude Code retried (429, 529, ...).
    public var lastRetryStatus: Int? { state.withLock { $0.lastRetryStatus } }
    public var droppedLines: Int { state.withLock { $0.droppedLines } }
    /// Lines of the agent's stdout cut at `Command.lineLimit`.
    public var cutLines: Int { state.withLock { $0.cutLines } }

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
    public var turns: Int { state.withLock { $0.messageIDs.count } }

    public func receive(_ raw: String) {
        if raw.hasPrefix(#"{"type":"patina_truncated_line""#) { state.withLock { $0.cutLines += 1 } }
        let line = redactor(raw)
        state.withLock { state in
            let data = Data((line + "\n").utf8)
            if state.written + data.count <= sizeLimit {
                try? handle?.write(contentsOf: data)
                state.written += data.count
            } else {
                state.droppedLines += 1
            }
        }
        let (events, usage) = StreamEvent.decode(line)
        if let usage {
            _ = state.withLock { $0.messageIDs.insert(usage.messageID) }
        }
        for event in events {
            switch event {
            case .initialized(let sessionID, let model, _):
                state.withLock { state in
                    state.sessionID = sessionID
                    state.model = model
                    state.sawInit = true
                }
                progress?.emit(.agentStarted(model: model))
            case .toolUse(_, let name, let summary):
                progress?.tool(turn: max(turns, 1), name: name, summary: summary, cost: costSoFar())
            case .toolResult(_, let isError, let text) where isError:
                progress?.emit(.toolError(StreamEvent.oneLine(text, limit: 80)))
            case .assistantText(let text):
                progress?.emit(.agentText(StreamEvent.oneLine(text, limit: 90)))
            case .result(let summary):
                state.withLock { state in
                    state.result = summary
                    if state.sessionID == nil { state.sessionID = summary.sessionID }
                }
            case .apiRetry(let status):
                // What the API answered is reported by the model proxy; this is the agent's word.
                state.withLock { $0.lastRetryStatus = status }
            case .malformed:
                state.withLock { $0.malformedLines += 1 }
            default:
                break
            }
        }
    }

    public func close() {
        state.withLock { state in
            if state.droppedLines > 0 {
                let marker = #"{"type":"patina_truncated_session","dropped_lines":\#(state.droppedLines),"size_limit":\#(sizeLimit)}"#
                try? handle?.write(contentsOf: Data((marker + "\n").utf8))
            }
            try? handle?.close()
        }
    }
}
