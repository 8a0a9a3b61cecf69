import CGit2
import Foundation

/// What a run's branch did to the history it started from, and commits whose dates claim
/// they were made before the run began.
public struct HistoryFindings: Sendable, Equatable {
    /// The head does not descend from the base: the agent rewrote, rebased or reset
    /// below the commit it started from.
    public var rewritten: Bool
    /// Base commits missing from the head's history, newest first (at most `limit`).
    public var missing: [CommitInfo]
    /// How many base commits are missing in all.
    public var missingCount: Int
    /// The head's commits that are not in the base's history (what replaced them), newest
    /// first (at most `limit`).
    public var replacing: [CommitInfo]
    /// Commits of the branch (base..head) authored or committed before `since`.
    public var backdated: [CommitInfo]

    public init(rewritten: Bool, missing: [CommitInfo], missingCount: Int, replacing: [CommitInfo], backdated: [CommitInfo]) {
        self.rewritten = rewritten
        self.missing = missing
        self.missingCount = missingCount
        self.replacing = replacing
        self.backdated = backdated
    }

    public var isClean: Bool { !rewritten && backdated.isEmpty }
}

extension Repository {
    /// Checks `head` against the `base` it was started from: does it descend from it, and
    /// which of its own commits (those not in `base`'s history) carry an author or
    /// committer date before `since` (with `slack` seconds for commit times, which git
    /// stores in whole seconds). Lists at most `limit` commits of each kind.
    public func historyFindings(
        base: ObjectID, head: ObjectID, since: Date?, slack: TimeInterval = 2, limit: Int = 20
    ) throws(GitError) -> HistoryFindings {
        var rewritten = false
        if head != base { rewritten = try !isAncestor(base, of: head) }
        var missing: [ObjectID] = []
        var missingCount = 0
        if rewritten {
            try walk(from: base, hiding: head) { (id: ObjectID) throws(GitError) -> Bool in
                if missing.count < limit { missing.append(id) }
                missingCount += 1
                return true
            }
        }
        var own: [ObjectID] = []
        var backdated: [CommitInfo] = []
        let cutoff = since.map { $0.timeIntervalSince1970 - slack }
        try walk(from: head, hiding: base) { (id: ObjectID) throws(GitError) -> Bool in
            if own.count < limit { own.append(id) }
            if let cutoff {
                let commit = try self.commit(id)
                let authored = TimeInterval(git_commit_author(commit.pointer)?.pointee.when.time ?? 0)
                let committed = TimeInterval(git_commit_time(commit.pointer))
                if (authored < cutoff || committed < cutoff) && backdated.count < limit { backdated.append(try info(id)) }
            } else if own.count >= limit {
                return false
            }
            return true
        }
        return HistoryFindings(
            rewritten: rewritten,
            missing: try missing.map { (id) throws(GitError) in try info(id) },
            missingCount: missingCount,
            replacing: rewritten ? try own.map { (id) throws(GitError) in try info(id) } : [],
            backdated: backdated)
    }

    /// One commit's id, subject, author and author date.
    public func info(_ id: ObjectID) throws(GitError) -> CommitInfo {
        let commit = try self.commit(id)
        let author = git_commit_author(commit.pointer)?.pointee
        return CommitInfo(
            id: id,
            summary: git_commit_summary(commit.pointer).map { String(cString: $0) } ?? "",
            authorName: author?.name.map { String(cString: $0) } ?? "",
            authorEmail: author?.email.map { String(cString: $0) } ?? "",
            date: Date(timeIntervalSince1970: TimeInterval(author?.when.time ?? 0)))
    }

    /// Commits reachable from `start` and not from `hidden`, newest first, until `body`
    /// returns false.
    private func walk(from start: ObjectID, hiding hidden: ObjectID, _ body: (ObjectID) throws(GitError) -> Bool) throws(GitError) {
        let walk = try RevwalkHandle.make("starting a history walk", parent: handle) {
            git_revwalk_new(&$0, pointer)
        }
        try check(git_revwalk_sorting(walk.pointer, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_TIME.rawValue), "sorting the history walk")
        var startOID = start.oid
        var hiddenOID = hidden.oid
        try check(git_revwalk_push(walk.pointer, &startOID), "walking from \(start.short)")
        try check(git_revwalk_hide(walk.pointer, &hiddenOID), "hiding \(hidden.short)")
        var next = git_oid()
        while try checkNext(git_revwalk_next(&next, walk.pointer), "walking the history") {
            guard try body(ObjectID(next)) else { return }
        }
    }
}
