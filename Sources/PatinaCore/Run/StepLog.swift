import Foundation

/// patina's own step log with timings: `steps.log` in the run directory,
/// appended as each step ends, so even an interrupted run keeps what happened.
public final class StepLog: @unchecked Sendable {
    public private(set) var steps: [StepTiming] = []
    private var url: URL?
    private let lock = NSLock()
    /// What was written before the log had a file: written first once it has one.
    private var pending = ""
    private let redactor: Redactor

    /// Starts writing to `url`, including what was recorded so far.
    public func attach(_ url: URL) {
        lock.withLock {
            self.url = url
            try? Data(pending.utf8).write(to: url)
            pending = ""
        }
    }

    static func line(_ step: StepTiming) -> String {
        String(format: "%@ %-10@ %8.3fs", ISO8601DateFormatter().string(from: Date()), step.name, step.seconds)
            + (step.detail.map { "  \($0)" } ?? "") + "\n"
    }

    public init(url: URL?, redactor: Redactor = Redactor(secrets: [])) {
        self.url = url
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
        lock.withLock {
            let step = StepTiming(name: name, seconds: seconds, detail: detail.map { redactor($0) })
            steps.append(step)
            append(Self.line(step))
        }
    }

    /// A line of text that is not a step (what was found, a command's output), indented.
    public func note(_ text: String) {
        lock.withLock { append("    " + text + "\n") }
    }

    // Called with the lock held.
    private func append(_ text: String) {
        guard let url else {
            pending += text
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
