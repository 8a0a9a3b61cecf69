import Foundation
import PatinaModelProxy

/// How a run ended, decided from what patina itself observed (the stop it asked for,
/// the container's exit, what its model proxy saw) and the agent's result line.
struct RunOutcome: Equatable {
    var status: RunStatus
    var reason: String?

    static func decide(
        stopReason: StopReason?, result: StreamEvent.ResultSummary?, exitCode: Int?,
        oomKilled: Bool, lastRetryStatus: Int?, lastStderrLine: String, timeout: Double, memoryLimit: String,
        model: ModelUsage? = nil
    ) -> RunOutcome {
        // What the proxy saw outranks what the agent said: it cannot be forged from the sandbox.
        if stopReason == nil || stopReason == .modelUnreachable, let unreachable = model?.unreachable {
            return RunOutcome(status: .error, reason: "the model API at \(unreachable)")
        }
        if stopReason == nil, let budget = model?.budgetExceeded {
            return RunOutcome(status: .budgetExceeded, reason: budget)
        }
        if stopReason == nil, let unpriced = model?.refusedUnpriced {
            return RunOutcome(status: .error, reason: unpriced)
        }
        switch (stopReason, result) {
        case (.timeout?, _):
            return RunOutcome(status: .timedOut, reason: "stopped after the \(DurationParser.format(timeout)) timeout")
        case (.interrupted?, _):
            return RunOutcome(status: .interrupted, reason: "interrupted (Ctrl-C or SIGTERM)")
        case (.modelUnreachable?, _):
            return RunOutcome(status: .error, reason: "the model API could not be reached")
        case (.diskLow(let shortage)?, _):
            return RunOutcome(status: .error, reason: "stopped the agent: \(shortage)")
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

    /// The API status that ended a run that did not succeed, when it is one a batch should
    /// retry later (rate limit or overload), not a verdict on the task: the last status the
    /// model API answered the run's proxy with.
    static func retryableAPIStatus(status: RunStatus, model: ModelUsage?) -> Int? {
        guard status == .failed || status == .error, let last = model?.lastStatus, [429, 529].contains(last) else { return nil }
        return last
    }
}
