import Foundation

/// Live progress for the terminal. Goes to stderr so stdout stays clean for
/// `--json` and for the final summary.
public final class Progress: @unchecked Sendable {
    private let quiet: Bool
    private let start = Date()
    private let lock = NSLock()

    public init(quiet: Bool) {
        self.quiet = quiet
    }

    public var elapsed: Double { Date().timeIntervalSince(start) }

    public func step(_ text: String) {
        emit("• \(text)")
    }

    public func warn(_ text: String) {
        // Warnings show even with --quiet: they are about safety.
        lock.withLock { try? FileHandle.standardError.write(contentsOf: Data("warning: \(text)\n".utf8)) }
    }

    public func tool(turn: Int, name: String, summary: String, cost: Double) {
        emit(String(format: "  [%@] turn %d · %@%@ · ~$%.4f", clock(), turn, name, summary.isEmpty ? "" : " · " + summary, cost))
    }

    public func note(_ text: String) {
        emit("  [\(clock())] \(text)")
    }

    private func clock() -> String {
        let s = Int(elapsed)
        return String(format: "%02d:%02d", s / 60, s % 60)
    }

    private func emit(_ line: String) {
        guard !quiet else { return }
        lock.withLock { try? FileHandle.standardError.write(contentsOf: Data((line + "\n").utf8)) }
    }
}
