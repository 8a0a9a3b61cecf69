import Foundation
import PatinaGit

extension Review {
    /// What `patina merge` / `patina apply` are about to take from a run.
    public struct Take: Sendable {
        public var record: RunRecord
        public var base: ObjectID
        public var head: ObjectID
        public var marked: [SensitivePaths.Match]
        /// How the branch moved after the run ended, when it did.
        public var moved: String?
        /// The history check of exactly base..head, when it found something.
        public var history: HistoryCheck?

        /// " (its branch moved after the run ended, …)" for a refusal, when it did.
        public var movedClause: String {
            moved == nil ? "" : " (its branch moved after the run ended; what is checked and shown is the branch as it is now)"
        }
    }

    /// Checks that the run can be taken (settled, not discarded, collected, changed
    /// something) and names the marked paths it changed.
    public func take(_ query: String, verb: String) throws -> Take {
        let record = try resolve(query)
        try requireSettled(record, to: verb)
        if record.discarded != nil { throw ReviewError("run \(record.id) was discarded; its branch is gone") }
        guard record.headCommit.flatMap(ObjectID.init(hex:)) != nil, let base = ObjectID(hex: record.baseCommit) else {
            throw ReviewError("run \(record.id) has no collected branch (the agent never started): nothing to \(verb)")
        }
        // Take what the branch holds now (a shell or a resume may have moved it on), which
        // is also what `diff` and `show` show: paths and history checked on exactly that.
        let now = try current(record)
        if now.head == base { throw ReviewError("run \(record.id) changed nothing: nothing to \(verb)") }
        let paths = (try? repository.diffStat(from: base, to: now.head).flatMap { [$0.path] + ($0.oldPath.map { [$0] } ?? []) })
            ?? now.record.filesChanged.map(\.path)
        return Take(record: now.record, base: base, head: now.head, marked: paths.compactMap(SensitivePaths.match),
                    moved: now.moved, history: now.record.history)
    }

    /// Refuses (one line, nothing changed) a run whose branch rewrote the history it started
    /// from, unless `yes`.
    public func requireIntactHistory(_ take: Take, verb: String, yes: Bool) throws {
        guard !yes, let history = take.history, history.rewritten else { return }
        throw ReviewError("run \(take.record.id) \(history.rewrittenLine)\(take.movedClause); review it with `patina diff \(take.record.id)` and \(verb) with --yes only if you mean to take those commits")
    }

    /// The message of a squash commit: the task, then what the session did.
    public func squashMessage(_ take: Take) -> String {
        let record = take.record
        let lines = record.task.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var subject = lines.first?.trimmingCharacters(in: .whitespaces) ?? "patina run"
        if subject.count > 72 { subject = String(subject.prefix(71)) + "…" }
        var body: [String] = []
        let rest = lines.dropFirst().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty || subject != record.task { body.append("Task:\n" + record.task.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")) }
        let commits = (try? repository.commits(from: take.base, to: take.head)) ?? []
        if !commits.isEmpty {
            body.append("Commits:\n" + commits.reversed().map { "- \($0.summary)" }.joined(separator: "\n"))
        }
        var facts = ["patina run \(record.id) (\(record.status.rawValue))"]
        if let check = record.check { facts.append("check `\(check.command)` \(check.passed ? "passed" : "failed")") }
        if let turns = record.numTurns { facts.append("\(turns) turns") }
        if let cost = record.costUSD { facts.append(String(format: "$%.4f", cost)) }
        body.append(facts.joined(separator: ", ") + "\nSession: \(record.startTag)..\(record.endTag)")
        return subject + "\n\n" + body.joined(separator: "\n\n") + "\n"
    }

    public func mergeMessage(_ take: Take, into branch: String) -> String {
        let first = take.record.task.split(separator: "\n").first.map(String.init) ?? ""
        return "Merge patina run \(take.record.id) into \(branch)\n\n\(first)\n\nSession: \(take.record.startTag)..\(take.record.endTag)\n"
    }
}
