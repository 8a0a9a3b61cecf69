import Foundation
import Synchronization

/// patina's own step log with timings: `steps.log` in the run directory,
/// appended as each step ends, so even an interrupted run keeps what happened.
public final class StepLog: Sendable {
    private struct State {
        var steps: [StepTiming] = []
        var url: URL?
        /// What was written before the log had a file: written first once it has one.
        var pending = ""
    }
    private let state: Mutex<State>
    private let redactor: Redactor

    public var steps: [StepTiming] { state.withLock { $0.steps } }

    /// Starts writing to `url`, including what was recorded so far.
    public func attach(_ url: URL) {
        state.withLock { state in
            state.url = url
            try? Data(state.pending.utf8).write(to: url)
            state.pending = ""
        }
    }

    static func line(_ step: StepTiming) -> String {
        String(format: "%@ %-10@ %8.3fs", ISO8601DateFormatter().string(from: Date()), step.name, step.seconds)
            + (step.detail.map { "  \($0)" } ?? "") + "\n"
    }

    public init(url: URL?, redactor: Redactor = Redactor(secrets: [])) {
        state = Mutex(State(url: url))
        self.redactor = redactor
    }

    /// Times `body` and records it under `name`, also when it throws.
    public func time<T>(_ name: String, detail: String? = nil, _ body: () async throws -> T) async throws -> T {
        let start = Date()
        do {
            let value = try await body()
            record(name, Date().timeIntervalSince(start), detail)
            return value
        } catch {
            record(name, Date().timeIntervalSince(start), "failed: \(error)")
            throw error
        }
    }

    public func record(_ name: String, _ seconds: Double, _ detail: String?) {
        let step = StepTiming(name: name, seconds: seconds, detail: detail.map { redactor($0) })
        state.withLock { state in
            state.steps.append(step)
            Self.append(Self.line(step), to: &state)
        }
    }

    /// A line of text that is not a step (what was found, a command's output), indented.
    public func note(_ text: String) {
        state.withLock { Self.append("    " + text + "\n", to: &$0) }
    }

    // Called with the lock held.
    private static func append(_ text: String, to state: inout State) {
        guard let url = state.url else {
            state.pending += text
            return
        }
        if let handle = try? FileHandle(forWritingTo: url) {
            handle.seekToEndOfFile()
            try? handle.write(contentsOf: Data(text.utf8))
            try? handle.close()
        } else {
            try? Data(text.utf8).write(to: url)
        }
    }
}
