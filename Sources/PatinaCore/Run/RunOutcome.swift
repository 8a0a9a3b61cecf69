import Foundation

/// How a run ended, decided from what patina itself observed (the stop it
/// asked for, the container's exit) and the agent's result line.
struct RunOutcome: Equatable {
    var status: RunStatus
    var reason: String?

    static func decide(
        stopReason: StopReason?, result: StreamEvent.ResultSummary?, exitCode: Int?,
        oomKilled: Bool, lastRetryStatus: Int?, lastStderrLine: String, timeout: Double, memoryLimit: String
    ) -> RunOutcome {
        switch (stopReason, result) {
        case (.timeout?, _):
            return RunOutcome(status: .timedOut, reason: "stopped after the \(DurationParser.format(timeout)) timeout")
        case (.interrupted?, _):
            return RunOutcome(status: .interrupted, reason: "interrupted (Ctrl-C or SIGTERM)")
        case (nil, let summary?) where !summary.isError && summary.subtype == "success" && exitCode == 0:
            return RunOutcome(status: .succeeded, reason: nil)
        case (nil, let summary?):
            if let status = summary.apiErrorStatus {
                return RunOutcome(status: .failed, reason: "the model API answered \(status)" + (summary.text.map { ": " + StreamEvent.oneLine($0, limit: 160) } ?? ""))
            }
            return RunOutcome(status: .failed, reason: "agent ended with \(summary.subtype)" + (summary.text.map { ": " + StreamEvent.oneLine($0, limit: 160) } ?? ""))
        case (nil, nil):
            if oomKilled {
                return RunOutcome(status: .failed, reason: "the agent's container was killed for exceeding its \(memoryLimit) memory limit")
            }
            return RunOutcome(status: .failed, reason: "the agent exited with code \(exitCode ?? -1) without a result"
                + (lastStderrLine.isEmpty ? "" : ": \(lastStderrLine)"))
        }
    }

    /// The API status that ended the run when it is one a batch should retry later
    /// (rate limit or overload), not a verdict on the task.
    static func retryableAPIStatus(result: StreamEvent.ResultSummary?, lastRetryStatus: Int?) -> Int? {
        let status = result?.apiErrorStatus ?? (result == nil ? lastRetryStatus : nil)
        guard let status, [429, 529].contains(status) else { return nil }
        return status
    }
}
