import CGit2
import Foundation

/// The agent's own git directory: a standalone repository for the run's branch that
/// borrows the host's objects read-only through `objects/info/alternates`.
///
/// The host repository's `.git` never enters the sandbox: its config, hooks and refs stay
/// out of reach. Whatever the agent writes here (hooks, config, refs, objects) is only ever
/// read back by `Collector`, as data, with no repository opened on it.
public enum SandboxGitDirectory {
    /// Creates the directory for `branch` at `base`.
    ///
    /// - `directory` must not exist, or be an empty directory.
    /// - `hostObjectsPathInContainer`: where the host's objects directory is mounted
    ///   read-only inside the container, e.g. "/patina/host-objects".
    /// - `indexFrom`: an index matching `base`'s tree to copy, ideally the one libgit2 wrote
    ///   when it checked out the worktree (`host.worktreeGitDirectory(name:)/index`): its stat
    ///   data spares git re-reading every file. Without it the index is built from the tree.
    ///
    /// Written: HEAD, refs/heads/<branch>, a minimal config (no hooks, no host config),
    /// empty hooks/ and refs/tags/, objects/ with the alternates file, the index, and,
    /// when the host has them, its info/exclude and shallow files.
    public static func create(
        at directory: URL,
        host: Repository,
        branch: String,
        base: ObjectID,
        hostObjectsPathInContainer: String,
        indexFrom: URL? = nil,
        sparse: [String] = []
    ) throws(GitError) {
        try host.validateBranchName(branch)
        guard AgentHead.isAcceptableBranchReference("refs/heads/\(branch)") else { throw .invalidName(branch) }
        let baseCommit = try host.commit(base)
        guard hostObjectsPathInContainer.hasPrefix("/"),
              !hostObjectsPathInContainer.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw .fileSystem("the host objects path in the container must be an absolute path: '\(hostObjectsPathInContainer)'")
        }
        try prepareEmptyDirectory(directory)

        let branchComponents = branch.split(separator: "/").map(String.init)
        var refDirectory = directory.appendingPathComponent("refs/heads", isDirectory: true)
        for component in branchComponents.dropLast() {
            refDirectory.appendPathComponent(component, isDirectory: true)
        }
        for subdirectory in ["objects/info", "objects/pack", "refs/tags", "hooks", "info"] {
            try FileSystem.createDirectory(directory.appendingPathComponent(subdirectory, isDirectory: true))
        }
        try FileSystem.createDirectory(refDirectory)

        try FileSystem.write("ref: refs/heads/\(branch)\n", to: directory.appendingPathComponent("HEAD"))
        try FileSystem.write("\(base.hex)\n", to: refDirectory.appendingPathComponent(branchComponents.last ?? branch))
        try FileSystem.write(sparse.isEmpty ? config : config + sparseConfig, to: directory.appendingPathComponent("config"))
        if !sparse.isEmpty {
            try FileSystem.write(sparsePatterns(sparse), to: directory.appendingPathComponent("info/sparse-checkout"))
        }
        try FileSystem.write("patina sandbox for \(branch)\n", to: directory.appendingPathComponent("description"))
        try FileSystem.write(
            "\(hostObjectsPathInContainer)\n",
            to: directory.appendingPathComponent("objects/info/alternates"))
        // Plain data the host owns: the user's local ignore rules, and the shallow
        // boundary (without it a shallow clone's history looks broken to the agent's git).
        for name in ["info/exclude", "shallow"] {
            let source = host.commonDirectory.appendingPathComponent(name)
            if FileSystem.isRegularFile(source.path) {
                try FileSystem.write(try FileSystem.read(source), to: directory.appendingPathComponent(name))
            }
        }

        let index = directory.appendingPathComponent("index")
        if let indexFrom {
            guard FileSystem.isRegularFile(indexFrom.path) else {
                throw .fileSystem("cannot copy the index \(indexFrom.path): not a regular file")
            }
            try FileSystem.write(try FileSystem.read(indexFrom), to: index)
        } else {
            let tree = try host.tree(of: baseCommit)
            let built = try IndexHandle.make("creating the sandbox index") { git_index_open(&$0, index.path) }
            try check(git_index_read_tree(built.pointer, tree.pointer), "filling the sandbox index from \(base.short)")
            try check(git_index_write(built.pointer), "writing the sandbox index")
        }
    }

    /// The contents of a gitfile that points git at the sandbox's git directory, for a
    /// `.git` file bind-mounted read-only over the worktree's own.
    public static func gitfile(gitDirectoryInContainer path: String) -> String {
        "gitdir: \(path)\n"
    }

    /// `checkStat = minimal`: the index's stat data was taken on the host, where an
    /// idmapped worktree's files are root's; seen from the sandbox they are the agent's,
    /// and git would otherwise take every file for changed (owner) and re-read it.
    static let config = """
        [core]
        \trepositoryformatversion = 0
        \tfilemode = true
        \tbare = false
        \tlogallrefupdates = true
        \tcheckStat = minimal
        [user]
        \tname = \(Identity.agent.name)
        \temail = \(Identity.agent.email)

        """

    /// A sparse checkout (`--sparse`): the agent's git keeps to the same directories.
    static let sparseConfig = """
        [core]
        \tsparseCheckout = true
        \tsparseCheckoutCone = true

        """

    /// Cone-mode patterns: the top level's files, each directory whole, and the files
    /// directly in each directory on the way to one.
    static func sparsePatterns(_ directories: [String]) -> String {
        var lines = ["/*", "!/*/"]
        for directory in directories {
            let steps = directory.split(separator: "/").map(String.init)
            for depth in 1..<max(steps.count, 1) {
                let parent = steps.prefix(depth).joined(separator: "/")
                for line in ["/\(parent)/", "!/\(parent)/*/"] where !lines.contains(line) { lines.append(line) }
            }
            let line = "/\(directory)/"
            if !lines.contains(line) { lines.append(line) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func prepareEmptyDirectory(_ directory: URL) throws(GitError) {
        let path = directory.path
        if FileSystem.exists(path) {
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [""]
            guard FileSystem.isDirectory(path), contents.isEmpty else {
                throw .fileSystem("cannot create the sandbox git directory at \(path): it exists and is not an empty directory")
            }
        } else {
            try FileSystem.createDirectory(directory)
        }
    }
}

extension FileSystem {
    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }
}
