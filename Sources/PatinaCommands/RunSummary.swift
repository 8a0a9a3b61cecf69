import Foundation
import PatinaCore
import PatinaModelProxy
import PatinaSandbox

/// Human-readable renderings of run records for the terminal.
enum RunSummary {
    static func text(_ r: RunRecord) -> String {
        var lines: [String] = []
        lines.append("\(r.status.headline)\(r.discarded != nil ? ", DISCARDED" : "")  \(r.id)")
        if let reason = r.reason { lines.append("  reason:    \(reason)") }
        lines.append("  task:      \(r.task)")
        if let discarded = r.discarded {
            lines.append("  branch:    none (discarded \(HistoryCheck.day(discarded)): \(r.branch), its worktree and tags were removed; was \(short(r.baseCommit))..\(short(r.headCommit ?? r.baseCommit)))")
        } else if let head = r.headCommit {
            lines.append("  branch:    \(r.branch)  (\(short(r.baseCommit))..\(short(head)))")
            lines.append("  worktree:  \(r.worktree)")
        } else if r.status != .running {
            lines.append("  branch:    none (the agent never started; \(r.branch) was removed)")
        }
        lines.append("  duration:  \(r.durationS.map { DurationParser.format($0) } ?? "—")   turns: \(r.numTurns.map(String.init) ?? "—")   cost: \(cost(r.costUSD))"
            + (r.maxCostUSD.map { " (budget \(Money.format($0)))" } ?? ""))
        if let tokens = r.tokens {
            lines.append("  tokens:    in \(tokens.input)  out \(tokens.output)  cache read \(tokens.cacheRead)  cache write \(tokens.cacheCreation)")
        }
        if let requests = r.requests {
            var api = "  model API: \(requests) request\(requests == 1 ? "" : "s") through patina's proxy"
            if let limited = r.rateLimited, limited > 0 { api += ", 429 ×\(limited)" }
            if let overloaded = r.overloaded, overloaded > 0 { api += ", 529 ×\(overloaded)" }
            lines.append(api)
        }
        if let unpriced = r.unpriced, !unpriced.isEmpty {
            lines.append("  cost:      unknown: \(unpriced.joined(separator: "; ")) (add prices under \"model_prices\" in .patina/config.json)")
        }
        if let agent = r.agentReported, agent.costUSD != nil || agent.numTurns != nil {
            lines.append("  agent said: \(agent.numTurns.map { "\($0) turns" } ?? "turns —"), \(cost(agent.costUSD)) (its own count, not used)")
        }
        lines += checkLines(r)
        if !r.firewall { lines.append("  firewall:  OFF (--no-firewall)") }
        lines += sandboxLines(r)
        if !r.seccompRelaxed.isEmpty { lines.append("  seccomp:   relaxed for \(r.seccompRelaxed.joined(separator: ", "))") }
        if let history = r.history {
            if history.rewritten { lines.append("  history:   ! REWRITTEN: the run \(history.rewrittenLine); merge and apply need --yes") }
            if let line = history.backdatedLine { lines.append("  history:   ! \(line)") }
            if let line = history.refsLine { lines.append("  history:   ! \(line)") }
        }
        for note in r.diskNotes { lines.append("  ! disk:    \(note)") }
        lines.append("  files:     \(r.filesChanged.count) changed, +\(r.additions) -\(r.deletions)" + (r.leftoversCommitted ? " (uncommitted changes were committed by patina)" : ""))
        let sensitive = Set(r.sensitiveChanges ?? [])
        for f in r.filesChanged {
            lines.append("  \(sensitive.contains(f.path) ? "!" : " ") \(f.status.prefix(1).uppercased()) \(f.path)  +\(f.additions) -\(f.deletions)")
        }
        if !sensitive.isEmpty {
            lines.append("  ! \(sensitive.count) of them affect later sandboxes or your machine (sandbox, CI, hooks, build files): review with `patina diff \(r.id)`")
        }
        lines.append(r.discarded != nil ? "  logs:      \(r.runDir) (kept)" : "  logs:      \(r.runDir)")
        return lines.joined(separator: "\n")
    }

    /// The check: command, exit, duration, and the last lines of its output when it failed.
    static func checkLines(_ r: RunRecord) -> [String] {
        guard let check = r.check else { return [] }
        var lines = ["  check:     \(check.summary)"]
        if let rounds = r.roundsText { lines.append("  rounds:    \(rounds)") }
        if let tests = check.tests {
            lines.append("  tests:     \(tests.total), \(tests.failed) failed, \(tests.skipped) skipped")
            for failure in (check.failures ?? []).prefix(10) {
                let location = failure.file.map { f in failure.line.map { "\(f):\($0)" } ?? f }
                lines.append("    ✗ " + Escaping.visible(failure.name + (location.map { " (\($0))" } ?? "")
                    + (failure.message.map { ": \($0.prefix(200))" } ?? "")))
            }
        }
        if let note = check.reportNote { lines.append("  report:    " + Escaping.visible(note)) }
        if !check.passed {
            let tail = check.outputTail.split(separator: "\n", omittingEmptySubsequences: false).suffix(12)
            if !tail.isEmpty && !(tail.count == 1 && tail[tail.startIndex].isEmpty) {
                lines.append("  check output (last lines; all of it in \(r.runDir)/check.log):")
                lines += tail.map { "    | \($0)" }
            }
        }
        return lines
    }

    /// What the sandbox was made of: devcontainer, toolchains, presets, caches, Claude Code, CA, proxy, DNS.
    static func sandboxLines(_ r: RunRecord) -> [String] {
        var lines: [String] = []
        if let devcontainer = r.devcontainer {
            let ignored = r.devcontainerNotActedOn ?? []
            lines.append("  sandbox:   \(devcontainer)" + (ignored.isEmpty ? "" : " (not acted on: \(ignored.map { $0.split(separator: " ").first.map(String.init) ?? $0 }.joined(separator: ", ")))"))
        }
        if let toolchains = r.toolchains, !toolchains.isEmpty {
            lines.append("  toolchain: " + toolchains.map { $0.name + ($0.provides.map { " \($0)" } ?? "") }.joined(separator: ", "))
        }
        if let presets = r.autoPresets { lines.append("  presets:   \(presets.joined(separator: ", ")) (for the toolchains)") }
        if let unresolved = r.unresolvedPresetNames {
            lines.append("  note:      \(unresolved.joined(separator: ", ")) did not resolve: left out of the allow-list, the run went on")
        }
        if let caches = r.caches, !caches.isEmpty { lines.append("  caches:    \(caches.joined(separator: ", "))") }
        if let source = r.claudeSource {
            let version = r.claudeVersion ?? "version unknown"
            lines.append("  claude:    \(version) (\(source == "npm" ? "npm" : source + (r.claudeBinary.map { ", \($0)" } ?? "")))")
        }
        if let ca = r.hostCA { lines.append("  host CA:   \(ca.joined(separator: ", "))") }
        if let proxies = r.proxies { lines.append("  proxy:     \(proxies.joined(separator: ", "))") }
        for pin in r.dnsPinned ?? [] { lines.append("  dns:       \(pin.name) → \(pin.addresses.joined(separator: ", ")): \(pin.reason)") }
        if let lifecycle = r.lifecycle {
            lines.append("  commands:  " + lifecycle.map { "\($0.label) " + ($0.exitCode.map { $0 == 0 ? "ok" : "exit \($0)" } ?? "not run") }.joined(separator: ", "))
        }
        return lines
    }

    /// `patina runs`: a header and one line per run, every cell whole (statuses and ids are
    /// never cut: the columns are as wide as their longest value).
    static func table(_ listed: [(record: RunRecord, branch: Review.BranchState, disk: Int?)]) -> [String] {
        let rows = [["STATUS", "RUN", "TIME", "COST", "BRANCH", "DISK", "CHANGES"]] + listed.map { r, branch, disk in
            var files = "\(counted(r.filesChanged.count, "file")) +\(r.additions) -\(r.deletions)"
            if r.history?.rewritten == true { files += "  ! history rewritten" }
            if r.history?.backdated.isEmpty == false { files += "  ! backdated commits" }
            if let rounds = r.roundsText { files += "  " + rounds }
            return [r.status.rawValue, r.id, r.durationS.map { DurationParser.format($0) } ?? "—", cost(r.costUSD),
                    branch == .none ? "—" : branch.rawValue, disk.map(ByteSize.format) ?? "—", files]
        }
        return TextTable.lines(rows)
    }

    /// One line for a 429/529 answer and the run's counts so far.
    static func apiPushback(status: Int, rateLimited: Int, overloaded: Int) -> String {
        "the model API answered \(status) (\(status == 429 ? "rate limited" : "overloaded")); so far 429 ×\(rateLimited), 529 ×\(overloaded)"
    }

    static func cost(_ value: Double?) -> String {
        value.map { String(format: "$%.4f", $0) } ?? "—"
    }

    static func short(_ sha: String) -> String { String(sha.prefix(8)) }
}
