import Foundation
import PatinaGit

extension Repository {
    /// Removes the run's branch, worktree and session tags (what exists of them).
    /// Returns what was removed; a part that could not be removed throws.
    @discardableResult
    public func removeRunGitState(of record: RunRecord) throws -> [String] {
        var removed: [String] = []
        let worktree = URL(fileURLWithPath: record.worktree)
        let name = worktree.lastPathComponent
        if FileManager.default.fileExists(atPath: worktree.path) || ((try? worktreeNames()) ?? []).contains(name) {
            try removeWorktree(name: name, path: worktree)
            removed.append("worktree \(worktree.path)")
        }
        if branchExists(record.branch) {
            try deleteBranch(record.branch)
            removed.append("branch \(record.branch)")
        }
        for tag in record.sessionRefs {
            if (try? sessionRefTarget(tag)) != nil {
                try deleteSessionRef(tag)
                removed.append("ref \(tag)")
            }
            // A tag an older patina made and no command moved yet.
            if (try? tagTarget(tag)) != nil {
                try deleteTag(tag)
                removed.append("tag \(tag)")
            }
        }
        return removed
    }
}
