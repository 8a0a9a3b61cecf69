import CGit2
import Foundation

extension Repository {
    /// Writes the files of `commit` into `directory` (created, must not exist):
    /// a clean checkout with no git directory, the repository's index and HEAD
    /// untouched. libgit2 runs no hook and no external filter program.
    public func exportTree(of commit: ObjectID, to directory: URL) throws(GitError) {
        let target = directory.standardizedFileURL
        if FileSystem.exists(target.path) { throw .worktreePathExists(target.path) }
        try FileSystem.createDirectory(target)
        let commitHandle = try self.commit(commit)
        let tree = try self.tree(of: commitHandle)
        var options = git_checkout_options()
        try check(git_checkout_options_init(&options, UInt32(GIT_CHECKOUT_OPTIONS_VERSION)), "preparing the checkout options")
        options.checkout_strategy = GIT_CHECKOUT_FORCE.rawValue | GIT_CHECKOUT_DONT_UPDATE_INDEX.rawValue
            | GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH.rawValue
        // A C copy of the path that lives until the checkout is done.
        guard let path = strdup(target.path) else { throw .fileSystem("out of memory") }
        defer { free(path) }
        options.target_directory = UnsafePointer(path)
        let code = git_checkout_tree(pointer, tree.pointer, &options)
        withExtendedLifetime(tree) {}
        try check(code, "checking out \(commit.short) into \(target.path)")
    }
}
