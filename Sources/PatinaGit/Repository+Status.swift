import CGit2
import Foundation

/// A local branch and the commit it points to.
public struct LocalBranch: Sendable, Hashable {
    public var name: String
    public var tip: ObjectID

    public init(name: String, tip: ObjectID) {
        self.name = name
        self.tip = tip
    }
}

extension Repository {
    // MARK: Checkout state

    /// The short name of the branch HEAD of this repository's working tree points at;
    /// `nil` when HEAD is detached or unborn, or the repository is bare.
    public var currentBranch: String? {
        guard workingDirectory != nil,
              git_repository_head_detached(pointer) == 0,
              git_repository_head_unborn(pointer) == 0,
              let head = try? ReferenceHandle.make("reading HEAD", parent: handle, {
                  git_reference_lookup(&$0, pointer, "HEAD")
              }),
              let target = git_reference_symbolic_target(head.pointer) else { return nil }
        return Self.branchName(fromReference: String(cString: target))
    }

    /// Paths of tracked files whose working tree or index content differs from HEAD
    /// (staged or not, deletions included; a rename shows as both its paths), in path
    /// order. Untracked and ignored files are not included, nor are submodules. Reads
    /// the working tree with libgit2's built-in filters only: no filter driver, hook or
    /// fsmonitor is run, and the index on disk is not rewritten.
    public func uncommittedChanges() throws(GitError) -> [String] {
        guard let workdir = workingDirectory else { return [] }
        var options = git_status_options()
        try check(git_status_options_init(&options, UInt32(GIT_STATUS_OPTIONS_VERSION)), "preparing the status options")
        options.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR
        // No INCLUDE_UNTRACKED / INCLUDE_IGNORED, no rename detection.
        options.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES.rawValue
        let list = try StatusListHandle.make("reading the status of \(workdir.path)", parent: handle) {
            git_status_list_new(&$0, pointer, &options)
        }
        var paths = Set<String>()
        for position in 0..<git_status_list_entrycount(list.pointer) {
            guard let entry = git_status_byindex(list.pointer, position)?.pointee,
                  entry.status.rawValue & ~(GIT_STATUS_WT_NEW.rawValue | GIT_STATUS_IGNORED.rawValue) != 0
            else { continue }
            for delta in [entry.head_to_index, entry.index_to_workdir] {
                guard let delta = delta?.pointee, delta.status != GIT_DELTA_UNTRACKED,
                      delta.status != GIT_DELTA_IGNORED else { continue }
                if let path = delta.old_file.path { paths.insert(String(cString: path)) }
                if let path = delta.new_file.path { paths.insert(String(cString: path)) }
            }
        }
        return paths.sorted()
    }

    /// Where `branch` is checked out: in this handle's working tree, in another worktree
    /// (the main one or a linked one; its path), or nowhere. HEAD files of other
    /// worktrees are read as plain files: opening them as repositories would fail on a
    /// worktree directory that is gone or owned by the container's user.
    func checkoutLocation(of branch: String) throws(GitError) -> CheckoutLocation {
        if currentBranch == branch { return .here }
        let reference = "refs/heads/\(branch)"
        if git_repository_is_worktree(pointer) == 1,
           let main = try? Repository.open(at: commonDirectory), let mainTree = main.workingDirectory,
           main.currentBranch == branch {
            return .elsewhere(mainTree.path)
        }
        for name in try worktreeNames() {
            let directory = worktreeGitDirectory(name: name)
            if FileSystem.samePath(directory.path, gitDirectory.path) { continue }
            guard let data = try? FileSystem.read(directory.appendingPathComponent("HEAD")) else { continue }
            let head = String(decoding: data, as: UTF8.self).trimmingTrailingWhitespace()
            guard head == "ref: \(reference)" else { continue }
            var path = directory.path
            if let worktree = (try? lookupWorktree(name)) ?? nil {
                withExtendedLifetime(worktree) {
                    if let registered = git_worktree_path(worktree.pointer) { path = String(cString: registered) }
                }
            }
            return .elsewhere(path)
        }
        return .nowhere
    }

    enum CheckoutLocation: Equatable {
        case here, elsewhere(String), nowhere
    }

    static func branchName(fromReference name: String) -> String? {
        name.hasPrefix("refs/heads/") ? String(name.dropFirst("refs/heads/".count)) : nil
    }

    // MARK: History relations

    /// Whether `ancestor` is `commit` or one of its ancestors.
    public func isAncestor(_ ancestor: ObjectID, of commit: ObjectID) throws(GitError) -> Bool {
        _ = try self.commit(ancestor)
        _ = try self.commit(commit)
        if ancestor == commit { return true }
        var descendant = commit.oid
        var candidate = ancestor.oid
        let result = try check(git_graph_descendant_of(pointer, &descendant, &candidate),
                               "checking whether \(commit.short) descends from \(ancestor.short)")
        return result == 1
    }

    /// The local branches and their tips, in name order. A symbolic branch is listed
    /// with the commit it resolves to; one that resolves to nothing is left out.
    public func localBranches() throws(GitError) -> [LocalBranch] {
        let iterator = try BranchIteratorHandle.make("listing branches", parent: handle) {
            git_branch_iterator_new(&$0, pointer, GIT_BRANCH_LOCAL)
        }
        var branches = [LocalBranch]()
        var type = GIT_BRANCH_LOCAL
        while true {
            var out: OpaquePointer?
            guard try checkNext(git_branch_next(&out, &type, iterator.pointer), "listing branches"),
                  let out else { break }
            let reference = ReferenceHandle(out, parent: handle)
            guard let name = git_reference_name(reference.pointer).map({ String(cString: $0) }),
                  let short = Self.branchName(fromReference: name) else { continue }
            let resolved: ReferenceHandle
            do throws(GitError) {
                resolved = try ReferenceHandle.make("resolving branch '\(short)'", parent: handle) {
                    git_reference_resolve(&$0, reference.pointer)
                }
            } catch {
                if error.libgit2Code == .notFound { continue }
                throw error
            }
            guard let target = git_reference_target(resolved.pointer) else { continue }
            branches.append(LocalBranch(name: short, tip: ObjectID(target)))
        }
        return branches.sorted { $0.name < $1.name }
    }

    /// Local branches, other than `excluding`, whose tip is `commit` or descends from it:
    /// the branches that already hold that commit. In name order.
    public func branchesContaining(_ commit: ObjectID, excluding: Set<String> = []) throws(GitError) -> [String] {
        _ = try self.commit(commit)
        var names = [String]()
        for branch in try localBranches() where !excluding.contains(branch.name) {
            if try isAncestor(commit, of: branch.tip) { names.append(branch.name) }
        }
        return names
    }

    // MARK: Identity

    /// user.name / user.email from the repository's configuration (local, global, XDG,
    /// system), or `Identity.patina` when either is missing or empty. No environment
    /// variable is read.
    public func userIdentity() -> Identity {
        guard let signature = SignatureHandle.configured(in: pointer),
              let name = signature.pointer.pointee.name, let email = signature.pointer.pointee.email
        else { return .patina }
        return Identity(name: String(cString: name), email: String(cString: email))
    }

    /// `repository.userIdentity()`.
    public static func userIdentity(of repository: Repository) -> Identity {
        repository.userIdentity()
    }
}
