import Foundation

/// The step a run is in, for live progress lines.
public enum RunPhase: String, Sendable, Codable {
    case queued, planning, image, branch, render, sandbox, agent, collect, check, done
}

/// Something that happened in a run. The core emits these; only the command
/// layer decides how (and whether) they are shown.
public enum RunEvent: Sendable {
    /// A step began or a milestone was reached (one human line).
    case step(String)
    /// Safety-relevant: shown even with --quiet.
    case warning(String)
    case note(String)
    case phase(RunPhase)
    case agentStarted(model: String?)
    case tool(turn: Int, name: String, summary: String, cost: Double)
    case toolError(String)
    case agentText(String)
    /// The agent stopped on an API error it could not retry past (429/529: rate limit, overload).
    case apiError(status: Int)
    /// The model API answered the run's proxy with 429 (rate limit) or 529 (overload): the
    /// status and the run's counts so far.
    case modelAPI(status: Int, rateLimited: Int, overloaded: Int)
    /// Where an executor placed the run, when it changes: the scheduler's state (Slurm's
    /// `PENDING`, `RUNNING`…), the node it is on, why it waits (Slurm's reason).
    case placement(state: String, node: String?, reason: String?)
    /// The run will not finish as the item's run: its item starts over as run `by` (a
    /// requeue: the model API's pushback, Slurm's requeue of a lost node's task).
    case replaced(by: String)
    case finished(RunRecord)
}

extension RunEvent {
    /// `pending (Resources)`, `running on node12`: a placement as one short phrase.
    public static func placementText(state: String, node: String?, reason: String?) -> String {
        state.lowercased() + (reason.map { " (\($0))" } ?? "") + (node.map { " on \($0)" } ?? "")
    }
}

/// An event with the run it belongs to and when it happened.
public struct RunEventEnvelope: Sendable {
    public let runID: String
    public let elapsed: Double
    public let event: RunEvent
}

/// Where a run's events go. One observer may serve many runs at once, so it
/// must be safe to call from any thread.
public typealias RunEventHandler = @Sendable (RunEventEnvelope) -> Void

/// A run's event emitter: stamps each event with the run's id and elapsed time.
public final class Progress: Sendable {
    public let runID: String
    private let start: Date
    private let handler: RunEventHandler

    public init(runID: String, handler: @escaping RunEventHandler) {
        self.runID = runID
        self.handler = handler
        self.start = Date()
    }

    private init(runID: String, start: Date, handler: @escaping RunEventHandler) {
        self.runID = runID
        self.start = start
        self.handler = handler
    }

    /// The same progress, every event's text redacted before anyone sees it.
    public func redacting(_ redactor: Redactor) -> Progress {
        guard !redactor.isEmpty else { return self }
        let handler = self.handler
        return Progress(runID: runID, start: start) { envelope in
            handler(RunEventEnvelope(runID: envelope.runID, elapsed: envelope.elapsed, event: redactor.event(envelope.event)))
        }
    }

    public var elapsed: Double { Date().timeIntervalSince(start) }

    public func emit(_ event: RunEvent) {
        handler(RunEventEnvelope(runID: runID, elapsed: elapsed, event: event))
    }

    public func step(_ text: String) { emit(.step(text)) }
    public func warn(_ text: String) { emit(.warning(text)) }
    public func note(_ text: String) { emit(.note(text)) }
    public func phase(_ phase: RunPhase) { emit(.phase(phase)) }

    public func tool(turn: Int, name: String, summary: String, cost: Double) {
        emit(.tool(turn: turn, name: name, summary: summary, cost: cost))
    }
}

extension Redactor {
    /// The event with every secret in its text replaced.
    public func event(_ event: RunEvent) -> RunEvent {
        guard !secrets.isEmpty else { return event }
        switch event {
        case .step(let s): return .step(self(s))
        case .warning(let s): return .warning(self(s))
        case .note(let s): return .note(self(s))
        case .tool(let turn, let name, let summary, let cost): return .tool(turn: turn, name: self(name), summary: self(summary), cost: cost)
        case .toolError(let s): return .toolError(self(s))
        case .agentText(let s): return .agentText(self(s))
        case .finished(let record): return .finished(self(record))
        case .phase, .agentStarted, .apiError, .modelAPI, .placement, .replaced: return event
        }
    }
}
