import Foundation
import PatinaModelProxy

/// session.md of a run with rounds: after the run's own log (round 1's activity), a
/// section per round — the follow-up that opened it, its activity (from its own session.md),
/// its check with the failing tests.
enum RoundsMarkdown {
    static func append(record: RunRecord, to sessionMarkdown: URL) throws {
        guard let rounds = record.rounds, !rounds.isEmpty else { return }
        var text = (try? String(contentsOf: sessionMarkdown, encoding: .utf8)) ?? ""
        text += "\n## Rounds\n\n"
        text += "\(rounds.count) of \(record.options?.rounds ?? rounds.count) rounds; stopped: \(record.stopReason?.rawValue ?? "?")"
        text += record.passedAtRound.map { "; the check passed at round \($0)" } ?? "; the check never passed"
        text += "\n"
        for round in rounds {
            text += "\n### Round \(round.round)\n\n"
            if round.round > 1 {
                text += "#### Previous Session Context\n\n"
                let before = rounds.filter { $0.round < round.round }
                for earlier in before {
                    text += "- round \(earlier.round): head \(earlier.head.map { String($0.prefix(12)) } ?? "none"), \(earlier.commits) commit\(earlier.commits == 1 ? "" : "s"), check "
                        + (earlier.check.map { $0.passed ? "passed" : "failed" + ($0.failures.map { f in " (\(f.count) failing test\(f.count == 1 ? "" : "s"))" } ?? "") } ?? "not run") + "\n"
                }
                if let dir = round.dir, let followUp = try? String(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent("follow-up.md"), encoding: .utf8) {
                    text += "\n#### Follow-up\n\n" + quoted(followUp) + "\n"
                }
                if let dir = round.dir, let log = try? String(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent("session.md"), encoding: .utf8),
                   let activity = section("Activity Log", of: log) {
                    // Its headings go two levels down, under this round's.
                    let demoted = activity.split(separator: "\n", omittingEmptySubsequences: false)
                        .map { $0.hasPrefix("#") ? "##" + $0 : String($0) }.joined(separator: "\n")
                    text += "\n#### Activity Log\n\n" + demoted + "\n"
                }
            } else {
                text += "The task; its activity is the Activity Log above.\n"
            }
            text += "\n#### Check\n\n"
            text += "- head \(round.head.map { String($0.prefix(12)) } ?? "none") (`\(RunRecord.roundTag(record.id, round.round))`), \(round.commits) commit\(round.commits == 1 ? "" : "s"), "
                + (round.costUSD.map { Money.format($0) } ?? "cost unknown") + ", \(DurationParser.format(round.durationS))\n"
            if let check = round.check {
                text += "- " + Escaping.markdownLine(check.summary, limit: 300) + "\n"
                if let tests = check.tests { text += "- tests: \(tests.total), failed \(tests.failed), skipped \(tests.skipped)\n" }
                for failure in (check.failures ?? []).prefix(20) {
                    let location = failure.file.map { f in failure.line.map { "\(f):\($0)" } ?? f }
                    text += "  - [ ] " + Escaping.markdownLine(failure.name + (location.map { " (\($0))" } ?? "") + (failure.message.map { ": \($0)" } ?? ""), limit: 300) + "\n"
                }
                if let note = check.reportNote { text += "- note: " + Escaping.markdownLine(note, limit: 300) + "\n" }
            } else {
                text += "- no check ran\n"
            }
        }
        try Data(text.utf8).write(to: sessionMarkdown, options: .atomic)
    }

    /// What the run a resumed run continues did: its task, ending, head, commits and check.
    static func context(of earlier: RunRecord) -> [String] {
        var lines = [
            "- continues run `\(earlier.id)` on `\(earlier.branch)`: " + Escaping.markdownLine(earlier.task, limit: 200),
            "- it ended \(earlier.status.rawValue) at \(earlier.headCommit.map { String($0.prefix(12)) } ?? "its base"), "
                + "\(earlier.commits ?? 0) commit\((earlier.commits ?? 0) == 1 ? "" : "s"), \(earlier.filesChanged.count) file\(earlier.filesChanged.count == 1 ? "" : "s") changed",
        ]
        if let check = earlier.check { lines.append("- its check: " + Escaping.markdownLine(check.summary, limit: 300)) }
        if let rounds = earlier.roundsText { lines.append("- " + Escaping.markdownLine(rounds, limit: 200)) }
        if let message = earlier.lastMessage { lines.append("- its last message: " + Escaping.markdownLine(message, limit: 300)) }
        return lines
    }

    /// A "Previous Session Context" section before the first section of a session.md.
    static func insertPreviousContext(_ lines: [String], into url: URL) throws {
        var text = try String(contentsOf: url, encoding: .utf8)
        let section = "## Previous Session Context\n\n" + lines.joined(separator: "\n") + "\n\n"
        if let first = text.range(of: "\n## ") {
            text.insert(contentsOf: section, at: text.index(after: first.lowerBound))
        } else {
            text += "\n" + section
        }
        try Data(text.utf8).write(to: url, options: .atomic)
    }

    /// Agent-written text as a quote block, each line escaped.
    static func quoted(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "> " + Escaping.markdownLine(String($0), limit: 500) }.joined(separator: "\n")
    }

    /// The body of `## title` in a session.md, up to the next `## `.
    static func section(_ title: String, of markdown: String) -> String? {
        guard let start = markdown.range(of: "## \(title)\n") else { return nil }
        let rest = markdown[start.upperBound...]
        let end = rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex
        return String(rest[..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
