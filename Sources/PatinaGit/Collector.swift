// Over 450 lines on purpose: the one collection path (the agent's tree into commits, leftovers, ownership) kept whole so it can be read and reviewed as one.
import CGit2
import CPatinaShim
import Foundation

/// What the agent left uncommitted, once committed.
public struct Leftovers: Sendable, Equatable {
    /// The commit holding them; `nil` when the agent left nothing uncommitted.
    public var commit: ObjectID?
    /// Paths left out of it: nested git repositories (shown with a trailing "/"), files
    /// and directories patina cannot read, names git refuses (".git" spelled otherwise, "GIT~1"), and
    /// files inside a submodule's directory. They stay in the worktree, untracked or modified.
    public var skipped: [String]
    /// What a limit kept out (`CollectionLimits`): files too large, directories too deep,
    /// new paths past the limit, what was not read once the time budget ran out. They stay
    /// in the worktree, uncommitted. The first `overLimitListed` only; `overLimitCount` says
    /// how many in all.
    public var overLimit: [SkippedLeftover]
    public var overLimitCount: Int

    public static let overLimitListed = 1000

    public init(commit: ObjectID?, skipped: [String], overLimit: [SkippedLeftover] = [], overLimitCount: Int? = nil) {
        self.commit = commit
        self.skipped = skipped
        self.overLimit = overLimit
        self.overLimitCount = overLimitCount ?? overLimit.count
    }
}

/// What collection reads of the worktree.
public enum WorktreeScope: Sendable, Equatable {
    /// Every file (a `git add -A`).
    case everything
    /// Only these paths (relative, as bytes; a directory stands for everything under it)
    /// can differ from `base`, whose tree and stat data the worktree's index holds: what a
    /// `WorktreeWatch` saw while the agent ran.
    case changed(Set<[UInt8]>, since: ObjectID)
}

/// A worktree's index, opened for collection on a handle of its own: the host's git
/// directory opened bare, the worktree attached as its working directory (so the
/// worktree's `.git` file, which the agent could rewrite, is never followed), change times
/// trusted. The index is patina's, outside the sandbox: it can be opened while the agent's
/// containers are still going (on a big repository, reading it is most of what is left).
public final class WorktreeIndex: Sendable {
    // Its libgit2 handles (Repository, Handle) say why they may be handed on: one task uses them at a time.
    let staging: Repository
    let index: IndexHandle
    let workdir: URL
    let gitDirectory: URL

    public init(host: Repository, worktree: URL) throws(GitError) {
        gitDirectory = host.worktreeGitDirectory(name: try host.worktreeName(at: worktree))
        workdir = worktree.standardizedFileURL
        staging = try Repository.openGitDirectory(host.commonDirectory)
        try staging.trustChangeTimes()
        try check(git_repository_set_workdir(staging.pointer, workdir.path, 0), "attaching the worktree \(workdir.path)")
        let indexPath = gitDirectory.appendingPathComponent("index").path
        index = try IndexHandle.make("opening the worktree's index", parent: staging.handle) {
            git_index_open(&$0, indexPath)
        }
        try check(patina_git_repository_set_index(staging.pointer, index.pointer), "attaching the worktree's index")
    }
}

/// The run's branch after collection.
public struct CollectedBranch: Sendable, Equatable {
    public var branch: String
    public var base: ObjectID
    /// The agent's HEAD, imported; `nil` when its git directory could not be imported.
    public var agentHead: ObjectID?
    /// Why the agent's git directory was not imported (its commits are then missing, but
    /// its files are still committed from the worktree on top of the branch).
    public var importFailure: GitError?
    public var leftovers: Leftovers
    /// Where the branch points now.
    public var head: ObjectID
}

/// Brings a run's work home: the agent's commits from the sandbox's git directory, then
/// whatever it left uncommitted in the worktree. No hook, filter driver, fsmonitor or
/// config of the sandbox's git directory is ever run or read: libgit2 runs no external
/// program at all, the sandbox's git directory is read as plain files, and the worktree is
/// attached to the host's own git directory rather than opened through its `.git` file.
public enum Collector {
    /// The whole of collection, in order: import the agent's commits, point `branch` at
    /// them, commit the leftovers, leave the worktree clean. A sandbox git directory that
    /// cannot be imported (missing, broken, hostile) does not stop it: the branch stays
    /// where it was and the worktree's files are committed on top, the failure reported.
    public static func collect(
        into host: Repository,
        privateGitDirectory: URL,
        worktree: URL,
        branch: String,
        base: ObjectID,
        leftoversMessage: String,
        scope: WorktreeScope = .everything,
        prepared: WorktreeIndex? = nil,
        limits: CollectionLimits = CollectionLimits()
    ) throws(GitError) -> CollectedBranch {
        var agentHead: ObjectID?
        var importFailure: GitError?
        do throws(GitError) {
            agentHead = try importAgentCommits(into: host, privateGitDirectory: privateGitDirectory, base: base, limits: limits)
        } catch {
            importFailure = error
        }
        let current = try host.branchTip(branch)
        let tip = agentHead ?? current ?? base
        if let current {
            if current != tip {
                try host.moveBranch(branch, from: current, to: tip, message: "patina: collect the agent's commits")
            }
        } else {
            try host.setBranch(branch, to: tip, message: "patina: collect the agent's commits")
        }
        let leftovers = try commitLeftovers(
            in: host, worktree: worktree, branch: branch, head: tip, message: leftoversMessage, scope: scope, prepared: prepared,
            limits: limits)
        return CollectedBranch(
            branch: branch, base: base, agentHead: agentHead, importFailure: importFailure,
            leftovers: leftovers, head: leftovers.commit ?? tip)
    }

    /// Imports the commits the agent made in its git directory into the host repository
    /// and returns the agent's HEAD (`base` when it made none). Does not move any branch.
    ///
    /// HEAD is read as plain files (symbolic "ref: refs/heads/x" through the loose ref file
    /// or packed-refs, or a detached id), strictly validated, no symbolic link followed.
    /// The agent's objects are copied into a quarantine directory, read through hand-made
    /// loose and pack backends (never its alternates), checked (types, tree entry names,
    /// hashes: strict hash verification is on) and written as one pack into the host's
    /// objects/pack, so the branch stands alone once the sandbox's directory is deleted.
    public static func importAgentCommits(
        into host: Repository, privateGitDirectory: URL, base: ObjectID, limits: CollectionLimits = .none
    ) throws(GitError) -> ObjectID {
        let root = try UntrustedDirectory.open(privateGitDirectory)
        let head = try AgentHead.read(root)
        if head == base { return base }

        let quarantine = FileManager.default.temporaryDirectory
            .appendingPathComponent("patina-import-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileSystem.removeTree(quarantine) }
        try FileSystem.createPrivateDirectory(quarantine)
        if let objects = try root.directory("objects") {
            try ObjectImport.quarantine(objects, into: quarantine, limit: limits.importBytes)
        }

        // A second handle on the host's git directory carries the quarantine as an
        // alternate, so the caller's handle never sees the agent's objects.
        let staging = try Repository.openGitDirectory(host.commonDirectory)
        let stagingObjects = try staging.objectDatabase()
        try ObjectImport.attach(quarantine, to: stagingObjects)
        let hostObjects = try host.objectDatabase()

        do throws(GitError) {
            _ = try staging.commit(head)
        } catch {
            if case .unknownRevision = error {
                throw .agentHeadUnreadable("HEAD names \(head.hex), which is not in the agent's objects")
            }
            throw error
        }
        let missing = try ObjectImport.missingObjects(
            from: head, staging: staging, stagingObjects: stagingObjects, hostObjects: hostObjects, limits: limits)
        guard !missing.isEmpty else { return head }
        let large = missing.filter { $0.isBlob && $0.size > ObjectImport.streamedBlobSize }
        for blob in large {
            if limits.expired {
                throw .collectionLimit("the time budget ran out while the agent's objects were copied; its commits were not imported")
            }
            try ObjectImport.copyLargeBlob(blob, from: stagingObjects, to: hostObjects)
        }
        let packed = missing.filter { !($0.isBlob && $0.size > ObjectImport.streamedBlobSize) }
        if !packed.isEmpty { try ObjectImport.writePack(packed, staging: staging) }

        try check(git_odb_refresh(hostObjects.pointer), "rereading the host's packs")
        for id in missing.map(\.id) {
            var oid = id.oid
            guard git_odb_exists(hostObjects.pointer, &oid) == 1 else {
                throw .fileSystem("object \(id.hex) is not in the host repository after writing the pack")
            }
        }
        return head
    }

    /// Commits what the agent left uncommitted in the worktree of `branch`, on top of
    /// `head`, and moves the branch there (only if it is still at `head`); the worktree
    /// ends clean at the branch head. `Leftovers.commit` is `nil` when nothing was left.
    ///
    /// The index is reset to `head`'s tree (keeping the stat data of entries that did not
    /// change, so only files whose stat changed are read), then every file is added as
    /// `git add -A` would (.gitignore honoured, deletions included), except what
    /// `Leftovers.skipped` lists. Submodule entries stay as in `head`. Author: the agent (`Identity.agent`),
    /// which wrote these changes; not the user, whose config would otherwise name them.
    /// Committer: patina (`Identity.patina`).
    ///
    /// Nothing in the worktree can make this run or block on anything: libgit2 runs no
    /// filter driver or hook; the worktree is attached to a fresh bare handle on the
    /// host's own git directory, so its `.git` file (which the agent could rewrite) is
    /// never followed and libgit2's ownership check never looks at the worktree (it may
    /// still belong to the container's user); `.gitignore`/`.gitattributes` that are not
    /// plain files are refused first (`unsafeWorktree`); `.gitmodules` is never parsed;
    /// FIFOs and nested repositories are never opened. A `.git` the agent replaced is
    /// restored to point to the host. Call it once the agent's container has stopped.
    public static func commitLeftovers(
        in host: Repository,
        worktree: URL,
        branch: String,
        head: ObjectID,
        message: String,
        scope: WorktreeScope = .everything,
        prepared: WorktreeIndex? = nil,
        limits: CollectionLimits = CollectionLimits(),
        author: Identity = .agent,
        committer: Identity = .patina
    ) throws(GitError) -> Leftovers {
        let opened: WorktreeIndex
        if let prepared { opened = prepared } else { opened = try WorktreeIndex(host: host, worktree: worktree) }
        let (staging, index, workdir) = (opened.staging, opened.index, opened.workdir)
        restoreGitfile(in: workdir, pointingTo: opened.gitDirectory)
        let headCommit = try staging.commit(head)
        let headTree = try staging.tree(of: headCommit)

        // Only what changed, when the watch knows it: the index stays as the checkout wrote
        // it (base's tree, every file's stat data) and the worktree is read at the paths the
        // agent touched and those its commits changed, nowhere else.
        var filter: LeftoverFilter
        var scoped = try scopedRead(scope, staging: staging, index: index, headTree: headTree)
        if let read = scoped {
            filter = try stage(index, in: staging, workdir: workdir, scoped: read, head: headTree, limits: limits)
            if filter.sawHardLink {
                // A file with two names: a write through one is reported under that one only.
                scoped = nil
                try resetIndex(index, to: headTree, head)
                filter = try stage(index, in: staging, workdir: workdir, scoped: nil, head: headTree, limits: limits)
            }
        } else {
            try resetIndex(index, to: headTree, head)
            filter = try stage(index, in: staging, workdir: workdir, scoped: nil, head: headTree, limits: limits)
        }

        // After a scoped stage, the tree is base's with those changes (libgit2 would read
        // every tree of the result again to rebuild the index's tree cache).
        var treeOID = git_oid()
        if let scoped, let applied = filter.applied,
           let updated = updatedTree(scoped.base, with: applied, from: index, in: staging) {
            treeOID = updated
        } else {
            try check(git_index_write_tree(&treeOID, index.pointer), "writing the leftovers tree")
        }
        guard ObjectID(treeOID) != ObjectID(git_tree_id(headTree.pointer)) else {
            try check(git_index_write(index.pointer), "writing the worktree's index")
            return filter.leftovers(commit: nil)
        }

        let tree = try TreeHandle.make("reading the leftovers tree", parent: staging.handle) {
            git_tree_lookup(&$0, staging.pointer, &treeOID)
        }
        let authorSignature = try SignatureHandle.now(author)
        let committerSignature = try SignatureHandle.now(committer)
        var parents: [OpaquePointer?] = [headCommit.pointer]
        var commitOID = git_oid()
        let code = parents.withUnsafeMutableBufferPointer { parents in
            git_commit_create(
                &commitOID, staging.pointer, nil, authorSignature.pointer, committerSignature.pointer,
                nil, message.endingInNewline, tree.pointer, 1, parents.baseAddress)
        }
        try check(code, "committing the leftovers")
        let commit = ObjectID(commitOID)
        try staging.moveBranch(branch, from: head, to: commit, message: "patina: commit the agent's leftovers")
        try check(git_index_write(index.pointer), "writing the worktree's index")
        return filter.leftovers(commit: commit)
    }

    /// The paths to read in `scoped` mode, or nil to read everything: when the index does
    /// not hold `base`'s tree (its tree cache says so at no cost) or a submodule changed.
    /// What a scoped stage reads: the paths (sorted; a directory stands for everything
    /// under it), as libgit2 takes them, and `base`'s tree, which the index holds elsewhere.
    private struct ScopedRead {
        let paths: [[UInt8]]
        let pathspec: LiteralPathspec
        let base: TreeHandle
    }

    /// The paths to read in `scoped` mode, or nil to read everything: when the index does
    /// not hold `base`'s tree (its tree cache says so at no cost), a submodule changed, or
    /// a name libgit2 would not read as itself.
    private static func scopedRead(
        _ scope: WorktreeScope, staging: Repository, index: IndexHandle, headTree: TreeHandle
    ) throws(GitError) -> ScopedRead? {
        guard case .changed(let touched, let base) = scope else { return nil }
        let baseTree = try staging.tree(of: staging.commit(base))
        var indexTree = git_oid()
        guard git_index_write_tree(&indexTree, index.pointer) == 0,
              ObjectID(indexTree) == ObjectID(git_tree_id(baseTree.pointer)) else { return nil }
        let committed = try staging.changedPaths(from: baseTree, to: headTree)
        for path in committed {
            for tree in [baseTree, headTree] {
                var entry: OpaquePointer?
                let found = LiteralPathspec.withCString(path) { git_tree_entry_bypath(&entry, tree.pointer, $0) } == 0
                defer { git_tree_entry_free(entry) }
                if found, git_tree_entry_filemode(entry) == GIT_FILEMODE_COMMIT { return nil }
            }
        }
        let paths = touched.union(committed).sorted { $0.lexicographicallyPrecedes($1) }
        guard let pathspec = LiteralPathspec(paths) else { return nil }
        return ScopedRead(paths: paths, pathspec: pathspec, base: baseTree)
    }

    /// `git add -A`, at `scoped`'s paths only when given (a directory stands for everything
    /// under it). Submodule entries stay as the index has them: they are out of it while the
    /// worktree is read (with one in it, libgit2 parses the worktree's .gitmodules as a
    /// config file, includes followed, FIFOs blocked on). What must hold first (rule files,
    /// unreadable directories) is checked where libgit2 will read.
    private static func stage(
        _ index: IndexHandle, in repository: Repository, workdir: URL, scoped: ScopedRead?, head: TreeHandle, limits: CollectionLimits
    ) throws(GitError) -> LeftoverFilter {
        let findings = try WorktreeCheck.verify(workdir, only: scoped?.paths)
        let gitlinks = try removeGitlinks(from: index)
        let objects = try repository.objectDatabase()
        let filter = LeftoverFilter(
            workdir: workdir.path, gitlinks: gitlinks.map(\.path), unreadable: findings.unreadable, index: index.pointer,
            head: head, objects: objects, limits: limits)
        // Too deep for libgit2's walk: ignored, so it never enters them (an ignore rule
        // added here wins over every .gitignore); they stay in the worktree.
        for directory in findings.tooDeep {
            filter.limited(SkippedLeftover(
                path: directory, size: nil,
                reason: "deeper than \(CollectionLimits.maximumDepth) levels or longer than \(CollectionLimits.maximumPathBytes) bytes"))
            guard let rule = ignoreRule(for: directory) else {
                throw .collectionLimit("'\(directory)' is too deep to read and its name cannot be left out")
            }
            try check(git_ignore_add_rule(repository.pointer, rule), "leaving \(directory) out")
        }
        let payload = Unmanaged.passUnretained(filter).toOpaque()
        try withExtendedLifetime(filter) { () throws(GitError) in
            // One walk: libgit2's add-all also removes what the worktree no longer has.
            guard let scoped else {
                _ = try check(
                    git_index_add_all(index.pointer, nil, GIT_INDEX_ADD_DEFAULT.rawValue, leftoverFilterCallback, payload),
                    "adding the worktree's files")
                return
            }
            if !scoped.paths.isEmpty { try addChanged(index, in: repository, at: scoped.pathspec, filter: filter, head: head) }
        }
        try restore(gitlinks, to: index)
        return filter
    }

    /// An ignore rule matching exactly the directory `path` ("a/b/"), its glob characters
    /// escaped; nil for a name a rule cannot hold (a line break).
    static func ignoreRule(for path: String) -> String? {
        guard !path.contains(where: { $0 == "\n" || $0 == "\r" }) else { return nil }
        var rule = "/"
        for character in path {
            if "\\*?[]!# \t".contains(character) { rule.append("\\") }
            rule.append(character)
        }
        return rule
    }

    /// What `git_index_add_all` does for `paths`, with the worktree read at those paths only
    /// (libgit2's own add-all reads the whole worktree and applies its pathspec afterwards):
    /// the index-to-worktree diff limited to them, then each change added or removed.
    private static func addChanged(
        _ index: IndexHandle, in repository: Repository, at paths: LiteralPathspec, filter: LeftoverFilter, head: TreeHandle
    ) throws(GitError) {
        filter.applied = []
        var options = git_diff_options()
        try check(git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION)), "preparing the diff options")
        options.flags = GIT_DIFF_INCLUDE_TYPECHANGE.rawValue | GIT_DIFF_INCLUDE_UNTRACKED.rawValue
            | GIT_DIFF_RECURSE_UNTRACKED_DIRS.rawValue | GIT_DIFF_DISABLE_PATHSPEC_MATCH.rawValue
        let diff = try paths.withStrarray { (strings) throws(GitError) -> DiffHandle in
            options.pathspec = strings
            return try DiffHandle.make("reading the changed files", parent: repository.handle) {
                git_diff_index_to_workdir(&$0, repository.pointer, index.pointer, &options)
            }
        }
        var left: [[CChar]] = []
        for position in 0..<git_diff_num_deltas(diff.pointer) {
            guard let delta = git_diff_get_delta(diff.pointer, position)?.pointee, let path = delta.new_file.path else { continue }
            guard filter.decide(String(cString: path)) == 0 else {
                left.append(Array(UnsafeBufferPointer(start: path, count: strlen(path) + 1)))
                continue
            }
            let exists = delta.new_file.flags & GIT_DIFF_FLAG_EXISTS.rawValue != 0
            if exists {
                try check(git_index_add_bypath(index.pointer, path), "adding \(String(cString: path))")
            } else {
                try check(git_index_remove_bypath(index.pointer, path), "removing \(String(cString: path)) from the index")
            }
            filter.applied?.append((Array(UnsafeBufferPointer(start: path, count: strlen(path) + 1)), exists))
        }
        // What was left out keeps the branch head's version, as after a full stage (whose
        // index starts at head): the index here holds the base, and the agent's own
        // commits must not be undone by a leftover that was not read.
        for path in left where path.count > 1 && path[path.count - 2] != CChar(UInt8(ascii: "/")) {
            let name = String(decoding: path.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var entry: OpaquePointer?
            if path.withUnsafeBufferPointer({ git_tree_entry_bypath(&entry, head.pointer, $0.baseAddress!) }) == 0, let entry {
                defer { git_tree_entry_free(entry) }
                let mode = git_tree_entry_filemode(entry)
                guard mode != GIT_FILEMODE_TREE, mode != GIT_FILEMODE_COMMIT, let id = git_tree_entry_id(entry) else { continue }
                var indexEntry = git_index_entry()
                indexEntry.mode = mode.rawValue
                indexEntry.id = id.pointee
                let code = path.withUnsafeBufferPointer { pointer in
                    indexEntry.path = pointer.baseAddress
                    return git_index_add(index.pointer, &indexEntry)
                }
                try check(code, "keeping the branch's version of \(name)")
                filter.applied?.append((path, true))
            } else if git_index_get_bypath(index.pointer, path, 0) != nil {
                try check(git_index_remove_bypath(index.pointer, path), "removing \(name) from the index")
                filter.applied?.append((path, false))
            }
        }
    }

    /// `tree` with the index's entries at `changes` (or without them): the leftovers tree
    /// when the index held `tree` everywhere else. Nil when libgit2 refuses (a file became
    /// a directory, say): the caller then writes the whole index.
    private static func updatedTree(
        _ tree: TreeHandle, with changes: [(path: [CChar], added: Bool)], from index: IndexHandle, in repository: Repository
    ) -> git_oid? {
        var updates: [git_tree_update] = []
        var copies: [UnsafeMutablePointer<CChar>] = []
        defer { for copy in copies { copy.deallocate() } }
        for change in changes {
            var update = git_tree_update()
            let path = UnsafeMutablePointer<CChar>.allocate(capacity: change.path.count)
            path.initialize(from: change.path, count: change.path.count)
            copies.append(path)
            update.path = UnsafePointer(path)
            if change.added {
                guard let entry = git_index_get_bypath(index.pointer, path, 0) else { return nil }
                update.action = GIT_TREE_UPDATE_UPSERT
                update.id = entry.pointee.id
                update.filemode = git_filemode_t(entry.pointee.mode)
            } else {
                update.action = GIT_TREE_UPDATE_REMOVE
            }
            updates.append(update)
        }
        var result = git_oid()
        let code = git_tree_create_updated(&result, repository.pointer, tree.pointer, updates.count, updates)
        return code == 0 ? result : nil
    }

    /// The worktree's index reset to `head`'s tree (`git reset --mixed`): once commits made
    /// in the sandbox moved its branch, what they committed no longer shows as changed in
    /// the worktree. No file is touched; read as `commitLeftovers` reads the worktree.
    public static func resetWorktreeIndex(in host: Repository, worktree: URL, to head: ObjectID) throws(GitError) {
        let opened = try WorktreeIndex(host: host, worktree: worktree)
        restoreGitfile(in: opened.workdir, pointingTo: opened.gitDirectory)
        let tree = try opened.staging.tree(of: try opened.staging.commit(head))
        try resetIndex(opened.index, to: tree, head)
        try check(git_index_write(opened.index.pointer), "writing the worktree's index")
    }

    /// The index reset to `tree` (stat data kept where the entry did not change), with the
    /// skip-worktree marks of a sparse checkout kept too: libgit2's read-tree drops them,
    /// and a file left out of the checkout would then look deleted.
    private static func resetIndex(_ index: IndexHandle, to tree: TreeHandle, _ head: ObjectID) throws(GitError) {
        var skipped: [[CChar]] = []
        let mark = UInt16(GIT_INDEX_ENTRY_SKIP_WORKTREE.rawValue)
        for position in 0..<git_index_entrycount(index.pointer) {
            guard let entry = git_index_get_byindex(index.pointer, position), entry.pointee.flags_extended & mark != 0,
                  let path = entry.pointee.path else { continue }
            skipped.append(Array(UnsafeBufferPointer(start: path, count: strlen(path) + 1)))
        }
        try check(git_index_read_tree(index.pointer, tree.pointer), "resetting the index to \(head.short)")
        for path in skipped {
            guard let entry = git_index_get_bypath(index.pointer, path, 0) else { continue }
            UnsafeMutablePointer(mutating: entry).pointee.flags_extended |= mark
        }
    }

    private static func removeGitlinks(from index: IndexHandle) throws(GitError) -> [(path: String, id: ObjectID)] {
        var gitlinks = [(path: String, id: ObjectID)]()
        for position in 0..<git_index_entrycount(index.pointer) {
            guard let entry = git_index_get_byindex(index.pointer, position)?.pointee,
                  entry.mode == GIT_FILEMODE_COMMIT.rawValue, let path = entry.path else { continue }
            gitlinks.append((String(cString: path), ObjectID(entry.id)))
        }
        for (path, _) in gitlinks {
            try check(git_index_remove(index.pointer, path, 0), "setting the submodule \(path) aside")
        }
        return gitlinks
    }

    private static func restore(_ gitlinks: [(path: String, id: ObjectID)], to index: IndexHandle) throws(GitError) {
        for (path, id) in gitlinks {
            var entry = git_index_entry()
            entry.mode = GIT_FILEMODE_COMMIT.rawValue
            entry.id = id.oid
            let code = path.withCString { cPath in
                entry.path = cPath
                return git_index_add(index.pointer, &entry)
            }
            try check(code, "restoring the submodule \(path)")
        }
    }

    /// Makes `<worktree>/.git` the gitfile libgit2 wrote, whatever the agent put there
    /// (best effort: collection itself never reads it).
    private static func restoreGitfile(in worktree: URL, pointingTo gitDirectory: URL) {
        let gitfile = worktree.appendingPathComponent(".git")
        if FileSystem.isRegularFile(gitfile.path), let data = try? FileSystem.read(gitfile) {
            let text = String(decoding: data, as: UTF8.self).trimmingTrailingWhitespace()
            if text.hasPrefix("gitdir: "),
               FileSystem.samePath(String(text.dropFirst("gitdir: ".count)), gitDirectory.path) {
                return
            }
        }
        try? FileSystem.removeTree(gitfile)
        try? FileSystem.write("gitdir: \(gitDirectory.path)\n", to: gitfile)
    }
}

/// Decides, for `git_index_add_all` / `git_index_update_all`, which paths to leave out.
private final class LeftoverFilter {
    let workdir: String
    let gitlinks: [String]
    let unreadable: [String]
    var skipped: [String] = []
    /// What a scoped stage changed in the index (path with its NUL, added or removed);
    /// nil after a full one.
    var applied: [(path: [CChar], added: Bool)]?
    /// A regular file with more than one name was met (a write through one name is
    /// reported under that name only).
    var sawHardLink = false

    /// The index being staged (its skip-worktree entries are absent on purpose).
    let index: OpaquePointer?
    let limits: CollectionLimits
    private var overLimit: [SkippedLeftover] = []
    private var overLimitCount = 0
    private var newPaths = 0

    /// The branch head's tree: what "new" means, and what a file over the size limit is
    /// compared with (the agent may have committed it; then it is read as usual).
    private let head: TreeHandle
    private let objects: OdbHandle

    init(workdir: String, gitlinks: [String], unreadable: [String], index: OpaquePointer?,
         head: TreeHandle, objects: OdbHandle, limits: CollectionLimits) {
        self.index = index
        self.head = head
        self.objects = objects
        self.limits = limits
        self.workdir = workdir.hasSuffix("/") ? workdir : workdir + "/"
        self.gitlinks = gitlinks
        self.unreadable = unreadable
    }

    /// 0: add or update; 1: skip.
    func decide(_ path: String) -> Int32 {
        // Inside a directory patina cannot list: its tracked files keep head's version.
        for directory in unreadable where path.hasPrefix(directory) {
            record(directory)
            return 1
        }
        // A submodule's directory: its checkout is not the superproject's content.
        for gitlink in gitlinks where path == gitlink || path.hasPrefix(gitlink + "/") {
            if path != gitlink + "/" { record(path) }
            return 1
        }
        // libgit2 reports a directory holding its own .git (a nested repository) as "dir/";
        // adding it would open that repository, so it is left untouched.
        if path.hasSuffix("/") {
            record(path)
            return 1
        }
        var info = stat()
        let full = workdir + path
        let found = lstat(full, &info) == 0
        // Left out of a sparse checkout: absent on purpose, not deleted.
        if !found, let index, let entry = git_index_get_bypath(index, path, 0),
           entry.pointee.flags_extended & UInt16(GIT_INDEX_ENTRY_SKIP_WORKTREE.rawValue) != 0 {
            return 1
        }
        let isSymbolicLink = found && (info.st_mode & S_IFMT) == S_IFLNK
        // Names git refuses (libgit2 would abort the whole add on "GIT~1"); kept out so
        // the leftovers never hold what the import would refuse.
        let components = path.split(separator: "/").map(String.init)
        for (position, component) in components.enumerated()
        where PathRules.isRefused(component, isSymbolicLink: isSymbolicLink && position == components.count - 1) {
            record(path)
            return 1
        }
        if found, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink > 1 { sawHardLink = true }
        if found, (info.st_mode & S_IFMT) == S_IFREG, access(full, R_OK) != 0 {
            record(path)
            return 1
        }
        // The limits, on what the file claims before libgit2 reads it: its apparent size
        // (a sparse file counts whole), whether it is new, the clock.
        if limits.expired {
            limited(SkippedLeftover(path: path, size: nil, reason: "the collection's time budget ran out"))
            return 1
        }
        let headSize = found ? sizeInHead(path) : nil
        if found, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) > limits.leftoverFileBytes, headSize != Int(info.st_size) {
            limited(SkippedLeftover(path: path, size: Int(info.st_size), reason: "larger than \(limits.leftoverFileBytes) bytes"))
            return 1
        }
        if found, headSize == nil {
            newPaths += 1
            if newPaths > limits.leftoverNewPaths {
                limited(SkippedLeftover(path: path, size: nil, reason: "more than \(limits.leftoverNewPaths) new paths"))
                return 1
            }
        }
        return 0
    }

    /// The size of the blob at `path` in the branch head's tree (from its header); nil
    /// when head has no file there.
    private func sizeInHead(_ path: String) -> Int? {
        var entry: OpaquePointer?
        guard git_tree_entry_bypath(&entry, head.pointer, path) == 0, let entry else { return nil }
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB, var id = git_tree_entry_id(entry)?.pointee else { return nil }
        var size = 0
        var type = GIT_OBJECT_INVALID
        return git_odb_read_header(&size, &type, objects.pointer, &id) == 0 ? size : -1
    }

    func limited(_ leftover: SkippedLeftover) {
        overLimitCount += 1
        if overLimit.count < Leftovers.overLimitListed { overLimit.append(leftover) }
    }

    func leftovers(commit: ObjectID?) -> Leftovers {
        Leftovers(commit: commit, skipped: skipped, overLimit: overLimit, overLimitCount: overLimitCount)
    }

    private func record(_ path: String) {
        if !skipped.contains(path) { skipped.append(path) }
    }
}

private let leftoverFilterCallback: git_index_matched_path_cb = { path, _, payload in
    guard let path, let payload else { return 0 }
    return Unmanaged<LeftoverFilter>.fromOpaque(payload).takeUnretainedValue().decide(String(cString: path))
}
