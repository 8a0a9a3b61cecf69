import CGit2

/// Everything that can go wrong in PatinaGit, each printing as one clear line.
public enum GitError: Error, Equatable, Sendable, CustomStringConvertible {
    case notARepository(String)
    case notOwnedByCurrentUser(String)
    case noCommits
    case unknownRevision(String)
    case notACommit(String)
    case invalidName(String)
    case branchExists(String)
    case branchNotFound(String)
    case branchMoved(branch: String, expected: String, actual: String)
    case tagExists(String)
    case tagNotFound(String)
    case worktreePathExists(String)
    case worktreeNotFound(String)
    /// The sandbox's git directory holds something collection refuses to follow or import.
    case unsafeSandboxGitDirectory(String)
    /// The worktree holds something libgit2 would follow or block on while collecting.
    case unsafeWorktree(String)
    /// The sandbox's HEAD cannot be resolved to a commit.
    case agentHeadUnreadable(String)
    case fileSystem(String)
    /// Collection stopped at one of its limits (`CollectionLimits`).
    case collectionLimit(String)
    /// Merging into `branch` conflicts in `paths`; nothing was changed.
    case mergeConflicts(branch: String, paths: [String])
    /// `branch` is checked out in this working tree, which has uncommitted changes to `paths`.
    case uncommittedChanges(branch: String, paths: [String])
    /// Updating the checkout of `branch` would overwrite untracked or ignored `paths`.
    case untrackedFilesInTheWay(branch: String, paths: [String])
    /// `branch` is checked out in another worktree (at `path`), which patina does not update.
    case branchCheckedOutElsewhere(branch: String, path: String)
    /// The changes do not apply to the working tree at `paths` (`reason`: libgit2's message).
    case patchDoesNotApply(paths: [String], reason: String)
    /// The run and the working tree changed the same lines of `paths`; nothing was changed.
    case applyConflicts(paths: [String])
    /// Applying would create `paths`, which already exist in the working tree.
    case filesInTheWay(paths: [String])
    /// `operation` needs a working tree and the repository is bare.
    case noWorkingTree(operation: String)
    /// A libgit2 call failed; `message` is libgit2's own (`git_error_last()`).
    case libgit2(operation: String, code: Libgit2Code, message: String)

    public var description: String {
        switch self {
        case .notARepository(let path):
            "not a git repository (or any parent): \(path)"
        case .notOwnedByCurrentUser(let path):
            "the repository at \(path) is owned by another user; trust it with `git config --global --add safe.directory \(path)`"
        case .noCommits:
            "the repository has no commits yet; commit something first"
        case .unknownRevision(let revision):
            "unknown revision '\(revision)': no commit, branch or tag has that name"
        case .notACommit(let revision):
            "'\(revision)' does not name a commit"
        case .invalidName(let name):
            "'\(name)' is not a valid git name"
        case .branchExists(let name):
            "branch '\(name)' already exists"
        case .branchNotFound(let name):
            "no branch named '\(name)'"
        case .branchMoved(let branch, let expected, let actual):
            "branch '\(branch)' moved to \(actual) while collecting (expected \(expected))"
        case .tagExists(let name):
            "tag '\(name)' already exists"
        case .tagNotFound(let name):
            "no tag named '\(name)'"
        case .worktreePathExists(let path):
            "cannot create a worktree at \(path): the path already exists"
        case .worktreeNotFound(let what):
            "no worktree \(what) in this repository"
        case .unsafeSandboxGitDirectory(let reason):
            "refusing the sandbox's git directory: \(reason)"
        case .unsafeWorktree(let reason):
            "refusing to commit the worktree's leftovers: \(reason)"
        case .agentHeadUnreadable(let reason):
            "cannot read the agent's HEAD: \(reason)"
        case .fileSystem(let message):
            message
        case .collectionLimit(let reason):
            "collection stopped at a limit: \(reason)"
        case .mergeConflicts(let branch, let paths):
            "cannot merge into '\(branch)': conflicts in \(paths.listed); nothing was changed — merge by hand with git, or bring the run up to date with '\(branch)' first"
        case .uncommittedChanges(let branch, let paths):
            "'\(branch)' is checked out here with uncommitted changes to \(paths.listed); commit or stash them first (nothing was changed)"
        case .untrackedFilesInTheWay(let branch, let paths):
            "cannot update the checkout of '\(branch)': untracked or ignored \(paths.listed) would be overwritten; move or remove them first (nothing was changed)"
        case .branchCheckedOutElsewhere(let branch, let path):
            "branch '\(branch)' is checked out in the worktree at \(path); merge there, or switch that worktree to another branch first (nothing was changed)"
        case .patchDoesNotApply(let paths, let reason):
            "the changes do not apply to the working tree at \(paths.listed) (\(reason)); nothing was changed — commit, stash or undo your edits to those files, or merge instead"
        case .applyConflicts(let paths):
            "cannot apply the changes: they conflict with the working tree in \(paths.listed); nothing was changed — merge instead, or apply with --3way to leave conflict markers"
        case .filesInTheWay(let paths):
            "cannot apply the changes: \(paths.listed) already exist in the working tree; move or remove them first (nothing was changed)"
        case .noWorkingTree(let operation):
            "cannot \(operation): the repository has no working tree"
        case .libgit2(let operation, _, let message):
            "\(operation): \(message)"
        }
    }

    /// The libgit2 error code, when libgit2 reported the failure.
    public var libgit2Code: Libgit2Code? {
        if case .libgit2(_, let code, _) = self { return code }
        return nil
    }
}

/// libgit2's error codes, named.
public enum Libgit2Code: Equatable, Sendable {
    case notFound, exists, ambiguous, unbornBranch, invalidSpec, locked, modified
    case conflict, notOwned, invalid, iterationOver, other(Int32)

    init(_ code: Int32, errorClass: Int32, message: String) {
        switch code {
        // libgit2 1.5.1 reports a repository owned by another user as "config value
        // 'safe.directory' was not found" (GIT_ENOTFOUND, class CONFIG) rather than GIT_EOWNER.
        case GIT_ENOTFOUND.rawValue where errorClass == Int32(GIT_ERROR_CONFIG.rawValue)
            && message.contains("safe.directory"):
            self = .notOwned
        case GIT_ENOTFOUND.rawValue: self = .notFound
        case GIT_EEXISTS.rawValue: self = .exists
        case GIT_EAMBIGUOUS.rawValue: self = .ambiguous
        case GIT_EUNBORNBRANCH.rawValue: self = .unbornBranch
        case GIT_EINVALIDSPEC.rawValue: self = .invalidSpec
        case GIT_ELOCKED.rawValue: self = .locked
        case GIT_EMODIFIED.rawValue: self = .modified
        case GIT_ECONFLICT.rawValue, GIT_EMERGECONFLICT.rawValue: self = .conflict
        case GIT_EOWNER.rawValue: self = .notOwned
        case GIT_EINVALID.rawValue: self = .invalid
        case GIT_ITEROVER.rawValue: self = .iterationOver
        default: self = .other(code)
        }
    }
}

/// The one place a libgit2 return code becomes a `GitError`: negative codes throw,
/// carrying libgit2's own message; other codes are returned.
@discardableResult
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(GitError) -> Int32 {
    guard code < 0 else { return code }
    var message = "unknown libgit2 error (\(code))"
    var errorClass: Int32 = 0
    if let last = git_error_last() {
        errorClass = last.pointee.klass
        if let text = last.pointee.message {
            message = String(cString: text).trimmingTrailingWhitespace()
        }
    }
    throw .libgit2(
        operation: operation(),
        code: Libgit2Code(code, errorClass: errorClass, message: message),
        message: message)
}

/// For iterators: `true` while there is a next item, `false` at the end, throws on failure.
func checkNext(_ code: Int32, _ operation: @autoclosure () -> String) throws(GitError) -> Bool {
    do {
        try check(code, operation())
        return true
    } catch where error.libgit2Code == .iterationOver {
        return false
    }
}

extension [String] {
    /// Paths for a one-line message: quoted, at most ten, then how many more.
    var listed: String {
        let shown = prefix(10).map { "'\($0)'" }.joined(separator: ", ")
        return count > 10 ? "\(shown) and \(count - 10) more" : shown
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var result = Substring(self)
        while let last = result.last, last.isWhitespace { result.removeLast() }
        return String(result)
    }
}
