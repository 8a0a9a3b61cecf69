import Foundation
import PatinaGit

/// A commit named in a record: id, subject, author and author date.
public struct CommitNote: Codable, Sendable, Equatable {
    public var id: String
    public var summary: String
    public var author: String
    public var date: Date

    public init(_ info: CommitInfo) {
        id = info.id.hex
        summary = info.summary
        author = info.authorEmail.isEmpty ? info.authorName : "\(info.authorName) <\(info.authorEmail)>"
        date = info.date
    }

    public var short: String { String(id.prefix(8)) }
}

/// What the run's branch did to the history it started from (run.json `history`): present
/// only when something was found.
public struct HistoryCheck: Codable, Sendable, Equatable {
    /// The head does not descend from the base commit (rewritten, rebased, reset below it).
    public var rewritten: Bool
    /// Base commits the head's history no longer holds, newest first (at most 20).
    public var missingBaseCommits: [CommitNote]
    public var missingCount: Int
    /// The head's own commits that replaced them, newest first (at most 20).
    public var replacedBy: [CommitNote]
    /// The branch's commits authored or committed before the run started (forged or
    /// copied authorship): flagged, not refused.
    public var backdated: [CommitNote]
    /// Refs the agent made outside its branch in its own view of the repository (branches,
    /// tags, HEAD pointing elsewhere), found at collection. They never reach the repository.
    public var refsOutsideBranch: [String]?

    public init(_ findings: HistoryFindings, refsOutsideBranch: [String]? = nil) {
        rewritten = findings.rewritten
        missingBaseCommits = findings.missing.map(CommitNote.init)
        missingCount = findings.missingCount
        replacedBy = findings.replacing.map(CommitNote.init)
        backdated = findings.backdated.map(CommitNote.init)
        self.refsOutsideBranch = refsOutsideBranch.flatMap { $0.isEmpty ? nil : $0 }
    }

    enum CodingKeys: String, CodingKey {
        case rewritten
        case missingBaseCommits = "missing_base_commits"
        case missingCount = "missing_count"
        case replacedBy = "replaced_by"
        case backdated = "backdated_commits"
        case refsOutsideBranch = "refs_outside_branch"
    }

    /// One line for a refusal or a warning: what was rewritten and the commits concerned.
    public var rewrittenLine: String {
        let missing = missingBaseCommits.prefix(3).map { "\($0.short) \"\($0.summary)\"" }.joined(separator: ", ")
            + (missingCount > 3 ? " and \(missingCount - 3) more" : "")
        let replaced = replacedBy.prefix(3).map { "\($0.short) \"\($0.summary)\"" }.joined(separator: ", ")
            + (replacedBy.count > 3 ? " and more" : "")
        return "rewrote history that existed before it: its head does not descend from its base; "
            + "\(missingCount == 1 ? "base commit" : "base commits") \(missing) \(missingCount == 1 ? "is" : "are") missing"
            + (replaced.isEmpty ? "" : ", replaced by \(replaced)")
    }

    /// One line for commits dated before the run started.
    public var backdatedLine: String? {
        guard !backdated.isEmpty else { return nil }
        let list = backdated.prefix(3).map { "\($0.short) \"\($0.summary)\" (\($0.author), \(Self.day($0.date)))" }.joined(separator: ", ")
            + (backdated.count > 3 ? " and more" : "")
        return "\(backdated.count == 1 ? "a commit" : "\(backdated.count) commits") dated before the run started (forged or copied authorship): \(list)"
    }

    /// One line for refs made outside the run's branch in the sandbox.
    public var refsLine: String? {
        guard let refs = refsOutsideBranch, !refs.isEmpty else { return nil }
        return "in its sandbox the agent made refs outside its branch (not brought home): "
            + refs.prefix(5).joined(separator: ", ") + (refs.count > 5 ? " and \(refs.count - 5) more" : "")
    }

    public static func day(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return formatter.string(from: date) + " UTC"
    }
}

extension RunRecord {
    /// The history check of the branch from `base` to `head`, into the record:
    /// `history_rewritten` always, `history` when something was found. `refsOutsideBranch`:
    /// what collection found in the sandbox's view (nil: keep what the record says).
    public mutating func checkHistory(in repository: Repository, base: ObjectID, head: ObjectID, refsOutsideBranch: [String]? = nil) {
        guard let findings = try? repository.historyFindings(base: base, head: head, since: started) else { return }
        let refs = refsOutsideBranch ?? history?.refsOutsideBranch ?? []
        historyRewritten = findings.rewritten
        history = findings.isClean && refs.isEmpty ? nil : HistoryCheck(findings, refsOutsideBranch: refs)
    }
}
