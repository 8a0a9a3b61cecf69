import Foundation
import PatinaCore

/// Human-readable renderings of run records for the terminal.
enum RunSummary {
    static func text(_ r: RunRecord) -> String {
        var lines: [String] = []
        lines.append("\(r.status.rawValue.uppercased())  \(r.id)")
        if let reason = r.reason { lines.append("  reason:    \(reason)") }
        lines.append("  task:      \(r.task)")
        if let head = r.headCommit {
            lines.append("  branch:    \(r.branch)  (\(short(r.baseCommit))..\(short(head)))")
            lines.append("  worktree:  \(r.worktree)")
        } else if r.status != .running {
            lines.append("  branch:    none (the agent never started; \(r.branch) was removed)")
        }
        lines.append("  duration:  \(r.durationS.map { DurationParser.format($0) } ?? "—")   turns: \(r.numTurns.map(String.init) ?? "—")   cost: \(cost(r.costUSD))")
        if let tokens = r.tokens {
            lines.append("  tokens:    in \(tokens.input)  out \(tokens.output)  cache read \(tokens.cacheRead)  cache write \(tokens.cacheCreation)")
        }
        if !r.firewall { lines.append("  firewall:  OFF (--no-firewall)") }
        if !r.seccompRelaxed.isEmpty { lines.append("  seccomp:   relaxed for \(r.seccompRelaxed.joined(separator: ", "))") }
        lines.append("  files:     \(r.filesChanged.count) changed, +\(r.additions) -\(r.deletions)" + (r.leftoversCommitted ? " (uncommitted changes were committed by patina)" : ""))
        let sensitive = Set(r.sensitiveChanges ?? [])
        for f in r.filesChanged {
            lines.append("  \(sensitive.contains(f.path) ? "!" : " ") \(f.status.prefix(1).uppercased()) \(f.path)  +\(f.additions) -\(f.deletions)")
        }
        if !sensitive.isEmpty {
            lines.append("  ! \(sensitive.count) of them affect later sandboxes or your machine (sandbox, CI, hooks, build files): review with `patina diff \(r.id)`")
        }
        lines.append("  logs:      \(r.runDir)")
        return lines.joined(separator: "\n")
    }

    static func row(_ r: RunRecord, branch: Review.BranchState) -> String {
        let files = "\(r.filesChanged.count) files +\(r.additions) -\(r.deletions)"
        return [
            r.status.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0),
            r.id.padding(toLength: 48, withPad: " ", startingAt: 0),
            (r.durationS.map { DurationParser.format($0) } ?? "—").padding(toLength: 8, withPad: " ", startingAt: 0),
            cost(r.costUSD).padding(toLength: 9, withPad: " ", startingAt: 0),
            (branch == .none ? "—" : branch.rawValue).padding(toLength: 10, withPad: " ", startingAt: 0),
            files,
        ].joined(separator: " ")
    }

    static func cost(_ value: Double?) -> String {
        value.map { String(format: "$%.4f", $0) } ?? "—"
    }

    static func short(_ sha: String) -> String { String(sha.prefix(8)) }
}
