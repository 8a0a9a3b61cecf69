import CGit2
import Foundation

extension Repository {
    /// Checks out `branch` into a new linked worktree at `path` (which must not exist),
    /// registered as `<common>/worktrees/<name>`. libgit2 registers the worktree; patina writes the files and the
    /// index with their stat data itself (`WorktreeCheckout`).
    /// `sparse`: only these directories (and the top level's files) are written
    /// (`WorktreeCheckout`).
    public func addWorktree(name: String, path: URL, branch: String, sparse: [String] = []) throws(GitError) {
        try Self.validateWorktreeName(name)
        let target = path.standardizedFileURL
        if FileSystem.exists(target.path) { throw .worktreePathExists(target.path) }
        guard let reference = try lookupBranch(branch) else { throw .branchNotFound(branch) }
        try FileSystem.createDirectory(target.deletingLastPathComponent())
        // libgit2 creates <common>/worktrees itself and fails when another run (another
        // process) created it a moment before: make sure it exists first.
        try FileSystem.createDirectory(commonDirectory.appendingPathComponent("worktrees", isDirectory: true))
        var options = git_worktree_add_options()
        try check(
            git_worktree_add_options_init(&options, UInt32(GIT_WORKTREE_ADD_OPTIONS_VERSION)),
            "preparing the worktree options")
        options.ref = reference.pointer
        // Registered only: libgit2's checkout looks up every file's attributes (two
        // realpath calls a file) even when no filter can apply.
        options.checkout_options.checkout_strategy = GIT_CHECKOUT_NONE.rawValue
        options.checkout_options.checkout_strategy |= GIT_CHECKOUT_DONT_WRITE_INDEX.rawValue
        _ = try withExtendedLifetime(reference) { () throws(GitError) -> WorktreeHandle in
            try WorktreeHandle.make("adding worktree '\(name)' at \(target.path)", parent: handle) {
                git_worktree_add(&$0, pointer, name, target.path, &options)
            }
        }
        guard let tip = git_reference_target(reference.pointer) else { throw .branchNotFound(branch) }
        try WorktreeCheckout.write(host: self, name: name, worktree: target, commit: ObjectID(tip.pointee), sparse: sparse)
    }

    /// Deletes the worktree's directory and its metadata in `<common>/worktrees/<name>`.
    /// Refuses when the worktree `name` is registered at another path.
    public func removeWorktree(name: String, path: URL) throws(GitError) {
        let target = path.standardizedFileURL
        let worktree = try lookupWorktree(name)
        if let worktree, let registered = git_worktree_path(worktree.pointer) {
            let registeredPath = URL(fileURLWithPath: String(cString: registered)).standardizedFileURL
            guard FileSystem.samePath(registeredPath.path, target.path) else {
                throw .fileSystem("worktree '\(name)' is at \(registeredPath.path), not \(target.path); nothing removed")
            }
        }
        try FileSystem.removeTree(target)
        guard let worktree else { return }
        var options = git_worktree_prune_options()
        try check(
            git_worktree_prune_options_init(&options, UInt32(GIT_WORKTREE_PRUNE_OPTIONS_VERSION)),
            "preparing the prune options")
        options.flags = GIT_WORKTREE_PRUNE_VALID.rawValue | GIT_WORKTREE_PRUNE_LOCKED.rawValue
            | GIT_WORKTREE_PRUNE_WORKING_TREE.rawValue
        try check(git_worktree_prune(worktree.pointer, &options), "pruning worktree '\(name)'")
    }

    /// `<common>/worktrees/<name>`: the worktree's private git directory (HEAD, index).
    public func worktreeGitDirectory(name: String) -> URL {
        commonDirectory.appendingPathComponent("worktrees", isDirectory: true)
            .appendingPathComponent(name, isDirectory: true)
    }

    /// Names of the linked worktrees.
    public func worktreeNames() throws(GitError) -> [String] {
        var names = git_strarray()
        defer { git_strarray_dispose(&names) }
        try check(git_worktree_list(&names, pointer), "listing worktrees")
        return (0..<names.count).compactMap { names.strings[$0].map { String(cString: $0) } }
    }

    /// The name of the linked worktree checked out at `path`.
    func worktreeName(at path: URL) throws(GitError) -> String {
        let target = path.standardizedFileURL.path
        for name in try worktreeNames() {
            guard let worktree = try lookupWorktree(name),
                  let registered = git_worktree_path(worktree.pointer) else { continue }
            if FileSystem.samePath(String(cString: registered), target) { return name }
        }
        throw .worktreeNotFound("at \(target)")
    }

    func lookupWorktree(_ name: String) throws(GitError) -> WorktreeHandle? {
        do throws(GitError) {
            return try WorktreeHandle.make("looking up worktree '\(name)'", parent: handle) {
                git_worktree_lookup(&$0, pointer, name)
            }
        } catch {
            if error.libgit2Code == .notFound { return nil }
            throw error
        }
    }

    static func validateWorktreeName(_ name: String) throws(GitError) {
        let allowed = name.utf8.allSatisfy { byte in
            byte.isASCIIAlphanumeric || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ".")
        }
        guard !name.isEmpty, allowed, !name.hasPrefix("."), !name.hasSuffix(".lock") else {
            throw .invalidName(name)
        }
    }
}

extension UInt8 {
    var isASCIIAlphanumeric: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5a).contains(self) || (0x61...0x7a).contains(self)
    }
}
