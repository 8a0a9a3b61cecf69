import CGit2
import Foundation

/// How `Repository.merge` brings a commit into a branch.
public enum MergeMode: Sendable {
    /// Fast-forward when possible, otherwise a merge commit with both parents.
    case merge
    /// One new commit on top of the branch holding the merged result.
    case squash
}

/// What `Repository.merge` did.
public struct MergeResult: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case fastForward = "fast-forward"
        case mergeCommit = "merge-commit"
        case squashed
        case alreadyMerged = "already-merged"
    }

    public var kind: Kind
    /// Where the target branch points afterwards.
    public var commit: ObjectID
    /// Where it pointed before.
    public var previous: ObjectID

    public init(kind: Kind, commit: ObjectID, previous: ObjectID) {
        self.kind = kind
        self.commit = commit
        self.previous = previous
    }
}

extension Repository {
    /// Brings `source` into `branch`.
    ///
    /// - `alreadyMerged` when `source` is the branch tip or one of its ancestors: nothing changes.
    /// - `.merge`: a fast-forward (the branch moves to `source`, no new commit) when the tip
    ///   is an ancestor of `source`, otherwise a merge commit with parents [tip, source].
    /// - `.squash`: one commit on top of the tip holding the merged tree (`source`'s tree
    ///   when it could fast-forward); `alreadyMerged` when that tree is the tip's (the
    ///   work was squashed in before), so no empty commit is made.
    ///
    /// New commits carry `message`, authored and committed by `identity`. A merge that
    /// conflicts throws `mergeConflicts` naming the paths; the merge is done in memory
    /// (libgit2 runs no merge driver, filter or hook), so nothing has changed then.
    ///
    /// When `branch` is checked out in this working tree, its uncommitted changes refuse
    /// the merge (`uncommittedChanges`), then index and files are updated from the old
    /// tip's tree to the new one by a safe checkout before the branch moves; untracked or
    /// ignored files in the way refuse it (`untrackedFilesInTheWay`) before anything is
    /// written (libgit2 counts every conflict before touching a file). A branch checked
    /// out in another worktree is refused (`branchCheckedOutElsewhere`). A branch checked
    /// out nowhere just moves. The move is compare-and-swap: `branchMoved` if the branch
    /// changed meanwhile.
    public func merge(
        _ source: ObjectID, into branch: String, mode: MergeMode, message: String, identity: Identity
    ) throws(GitError) -> MergeResult {
        guard let tip = try branchTip(branch) else { throw .branchNotFound(branch) }
        let sourceCommit = try commit(source)
        let tipCommit = try commit(tip)
        if try isAncestor(source, of: tip) {
            return MergeResult(kind: .alreadyMerged, commit: tip, previous: tip)
        }

        let location = try checkoutLocation(of: branch)
        if case .elsewhere(let path) = location {
            throw .branchCheckedOutElsewhere(branch: branch, path: path)
        }
        if location == .here {
            let changed = try uncommittedChanges()
            guard changed.isEmpty else { throw .uncommittedChanges(branch: branch, paths: changed) }
        }

        let fastForward = try isAncestor(tip, of: source)
        let kind: MergeResult.Kind
        let target: ObjectID
        switch mode {
        case .merge where fastForward:
            kind = .fastForward
            target = source
        case .merge:
            let tree = try mergedTree(ours: tipCommit, theirs: sourceCommit, into: branch)
            kind = .mergeCommit
            target = try createCommit(
                tree: tree, parents: [tipCommit, sourceCommit], message: message, identity: identity)
        case .squash:
            let tree = fastForward
                ? try self.tree(of: sourceCommit)
                : try mergedTree(ours: tipCommit, theirs: sourceCommit, into: branch)
            // Squashing what the branch already holds (a second squash of the same work):
            // no empty commit.
            if ObjectID(git_tree_id(tree.pointer)) == ObjectID(git_tree_id(try self.tree(of: tipCommit).pointer)) {
                return MergeResult(kind: .alreadyMerged, commit: tip, previous: tip)
            }
            kind = .squashed
            target = try createCommit(tree: tree, parents: [tipCommit], message: message, identity: identity)
        }

        if location == .here {
            try checkOut(target, over: tip, branch: branch)
        }
        do throws(GitError) {
            try moveBranch(branch, from: tip, to: target,
                           message: "patina: merge \(source.short) into \(branch) (\(kind.rawValue))")
        } catch {
            // The branch moved meanwhile: put the checkout back where it was (best effort;
            // it holds exactly `target`'s tree, so the safe checkout back cannot conflict).
            if location == .here { try? checkOut(tip, over: target, branch: branch) }
            throw error
        }
        return MergeResult(kind: kind, commit: target, previous: tip)
    }

    /// Branches (other than `excluding`) that already hold `source`'s changes without
    /// holding the commit itself: merging it would not change their tree (a squash merge, a
    /// cherry-pick or the same edits made by hand). Computed in memory; nothing changes.
    public func branchesHoldingChanges(of source: ObjectID, excluding: (String) -> Bool) throws(GitError) -> [String] {
        let sourceCommit = try commit(source)
        var names: [String] = []
        for branch in try localBranches() where !excluding(branch.name) {
            if try isAncestor(source, of: branch.tip) {
                names.append(branch.name)
                continue
            }
            let tipCommit = try commit(branch.tip)
            guard let merged = try? mergedTree(ours: tipCommit, theirs: sourceCommit, into: branch.name) else { continue }
            if ObjectID(git_tree_id(merged.pointer)) == ObjectID(git_tree_id(try tree(of: tipCommit).pointer)) {
                names.append(branch.name)
            }
        }
        return names
    }

    /// The tree of merging `theirs` into `ours`, computed in memory (renames detected,
    /// recursive merge base). Throws `mergeConflicts` listing every conflicting path.
    private func mergedTree(ours: CommitHandle, theirs: CommitHandle, into branch: String) throws(GitError) -> TreeHandle {
        var options = git_merge_options()
        try check(git_merge_options_init(&options, UInt32(GIT_MERGE_OPTIONS_VERSION)), "preparing the merge options")
        let index = try IndexHandle.make("merging into '\(branch)'", parent: handle) {
            git_merge_commits(&$0, pointer, ours.pointer, theirs.pointer, &options)
        }
        if git_index_has_conflicts(index.pointer) == 1 {
            throw .mergeConflicts(branch: branch, paths: try conflictPaths(in: index))
        }
        var treeOID = git_oid()
        try check(git_index_write_tree_to(&treeOID, index.pointer, pointer), "writing the merged tree")
        return try TreeHandle.make("reading the merged tree", parent: handle) {
            git_tree_lookup(&$0, pointer, &treeOID)
        }
    }

    private func conflictPaths(in index: IndexHandle) throws(GitError) -> [String] {
        let iterator = try ConflictIteratorHandle.make("listing the conflicts", parent: index) {
            git_index_conflict_iterator_new(&$0, index.pointer)
        }
        var paths = Set<String>()
        while true {
            var ancestor: UnsafePointer<git_index_entry>?
            var ours: UnsafePointer<git_index_entry>?
            var theirs: UnsafePointer<git_index_entry>?
            guard try checkNext(git_index_conflict_next(&ancestor, &ours, &theirs, iterator.pointer),
                                "listing the conflicts") else { break }
            for entry in [ancestor, ours, theirs] {
                if let path = entry?.pointee.path { paths.insert(String(cString: path)) }
            }
        }
        return paths.sorted()
    }

    private func createCommit(
        tree: TreeHandle, parents: [CommitHandle], message: String, identity: Identity
    ) throws(GitError) -> ObjectID {
        let signature = try SignatureHandle.now(identity)
        var parentPointers: [OpaquePointer?] = parents.map(\.pointer)
        var oid = git_oid()
        let code = parentPointers.withUnsafeMutableBufferPointer { buffer in
            git_commit_create(
                &oid, pointer, nil, signature.pointer, signature.pointer, nil, message.endingInNewline,
                tree.pointer, buffer.count, buffer.baseAddress)
        }
        withExtendedLifetime(parents) {}
        try check(code, "committing the merge")
        return ObjectID(oid)
    }

    /// Updates this working tree and index from `previous`'s tree to `target`'s, refusing
    /// (before writing anything) to overwrite what is not in `previous`: untracked and
    /// ignored files in the way.
    private func checkOut(_ target: ObjectID, over previous: ObjectID, branch: String) throws(GitError) {
        let newTree = try tree(of: commit(target))
        let oldTree = try tree(of: commit(previous))
        var options = git_checkout_options()
        try check(git_checkout_options_init(&options, UInt32(GIT_CHECKOUT_OPTIONS_VERSION)), "preparing the checkout options")
        options.checkout_strategy = GIT_CHECKOUT_SAFE.rawValue | GIT_CHECKOUT_DONT_OVERWRITE_IGNORED.rawValue
        options.baseline = oldTree.pointer
        options.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT.rawValue
        options.notify_cb = checkoutConflictCallback
        let conflicts = PathCollector()
        options.notify_payload = Unmanaged.passUnretained(conflicts).toOpaque()
        let code = withExtendedLifetime((conflicts, oldTree, newTree)) {
            git_checkout_tree(pointer, newTree.pointer, &options)
        }
        do throws(GitError) {
            try check(code, "updating the checkout of '\(branch)' to \(target.short)")
        } catch {
            if error.libgit2Code == .conflict, !conflicts.paths.isEmpty {
                throw .untrackedFilesInTheWay(branch: branch, paths: Array(Set(conflicts.paths)).sorted())
            }
            throw error
        }
    }
}

/// Paths a libgit2 callback reports.
final class PathCollector {
    var paths: [String] = []
}

private let checkoutConflictCallback: git_checkout_notify_cb = { _, path, _, _, _, payload in
    guard let path, let payload else { return 0 }
    Unmanaged<PathCollector>.fromOpaque(payload).takeUnretainedValue().paths.append(String(cString: path))
    return 0
}
