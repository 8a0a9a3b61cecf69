import CGit2
import CPatinaShim
import Foundation

/// A git repository opened with libgit2.
///
/// `@unchecked Sendable`: a libgit2 repository handle must not be used by two threads at
/// once; a `Repository` is used from one task at a time (open one per task otherwise).
public final class Repository: @unchecked Sendable {
    let handle: RepositoryHandle
    var pointer: OpaquePointer { handle.pointer }

    init(_ handle: RepositoryHandle) {
        self.handle = handle
    }

    /// The repository containing `directory` (searching parent directories), like git does.
    public static func discover(from directory: URL) throws(GitError) -> Repository {
        Libgit2.initialize()
        let start = directory.standardizedFileURL.path
        var found = git_buf()
        defer { git_buf_dispose(&found) }
        do throws(GitError) {
            try check(git_repository_discover(&found, start, 0, nil), "looking for a repository around \(start)")
        } catch {
            if error.libgit2Code == .notFound { throw .notARepository(start) }
            throw error
        }
        guard let gitDirectory = found.ptr else { throw .notARepository(start) }
        return try open(path: String(cString: gitDirectory), reportedAs: start)
    }

    /// The repository at exactly `directory` (a working tree or a git directory); no search.
    public static func open(at directory: URL) throws(GitError) -> Repository {
        let path = directory.standardizedFileURL.path
        return try open(path: path, reportedAs: path)
    }

    private static func open(path: String, reportedAs reported: String) throws(GitError) -> Repository {
        do throws(GitError) {
            let flags = GIT_REPOSITORY_OPEN_NO_SEARCH.rawValue
            return Repository(try RepositoryHandle.make("opening the repository at \(reported)") {
                git_repository_open_ext(&$0, path, flags, nil)
            })
        } catch {
            switch error.libgit2Code {
            case .notOwned?: throw .notOwnedByCurrentUser(reported)
            case .notFound?: throw .notARepository(reported)
            default: throw error
            }
        }
    }

    /// The repository's git directory opened bare: patina's own second handle for work that
    /// attaches things (a working directory, an index, extra object stores) which must not
    /// leak into the caller's handle.
    static func openGitDirectory(_ directory: URL) throws(GitError) -> Repository {
        let path = directory.path
        return Repository(try RepositoryHandle.make("opening the git directory \(path)") {
            git_repository_open_bare(&$0, path)
        })
    }

    /// Whether `commit`'s tree has a directory at `path` ("src/api").
    public func isDirectory(_ path: String, in commit: ObjectID) throws(GitError) -> Bool {
        let root = try tree(of: self.commit(commit))
        var entry: OpaquePointer?
        guard git_tree_entry_bypath(&entry, root.pointer, path) == 0 else { return false }
        defer { git_tree_entry_free(entry) }
        return git_tree_entry_type(entry) == GIT_OBJECT_TREE
    }

    /// The same repository from its git directory alone (bare, with an empty index of its
    /// own): history read there never loads a checkout's index (libgit2 loads the whole of
    /// it to look for .gitattributes, for every diff it formats) nor its attribute files.
    public func gitDirectoryOnly() throws(GitError) -> Repository {
        let bare = try Self.openGitDirectory(commonDirectory)
        let empty = try IndexHandle.make("creating an empty index", parent: bare.handle) { git_index_new(&$0) }
        try check(patina_git_repository_set_index(bare.pointer, empty.pointer), "attaching an empty index")
        return bare
    }

    // MARK: Paths

    /// The main git directory (`.git`), also when opened from a linked worktree.
    public var commonDirectory: URL { Self.directoryURL(git_repository_commondir(pointer)) }

    /// This checkout's git directory (`.git/worktrees/<name>` for a linked worktree).
    public var gitDirectory: URL { Self.directoryURL(git_repository_path(pointer)) }

    /// The working tree; `nil` for a bare repository.
    public var workingDirectory: URL? {
        git_repository_workdir(pointer).map { Self.directoryURL($0) }
    }

    /// `<common>/objects`, where every object of the repository (and its worktrees) lives.
    public var objectsDirectory: URL {
        commonDirectory.appendingPathComponent("objects", isDirectory: true)
    }

    static func directoryURL(_ path: UnsafePointer<CChar>) -> URL {
        var text = String(cString: path)
        while text.count > 1, text.hasSuffix("/") { text.removeLast() }
        return URL(fileURLWithPath: text, isDirectory: true)
    }

    // MARK: Revisions

    /// The commit a revision names: "HEAD", a branch, a tag, a full or abbreviated id,
    /// or any other revision git understands ("main~2").
    public func resolveCommit(_ revision: String) throws(GitError) -> ObjectID {
        let object: ObjectHandle
        do throws(GitError) {
            object = try ObjectHandle.make("resolving '\(revision)'", parent: handle) {
                git_revparse_single(&$0, pointer, revision)
            }
        } catch {
            switch error.libgit2Code {
            case .notFound?, .invalidSpec?, .unbornBranch?:
                if hasNoCommits(for: revision) { throw .noCommits }
                throw .unknownRevision(revision)
            default:
                throw error
            }
        }
        let commit: ObjectHandle
        do throws(GitError) {
            commit = try ObjectHandle.make("peeling '\(revision)' to a commit", parent: handle) {
                git_object_peel(&$0, object.pointer, GIT_OBJECT_COMMIT)
            }
        } catch {
            throw .notACommit(revision)
        }
        return ObjectID(git_object_id(commit.pointer))
    }

    /// Whether `revision` failed because HEAD's branch has no commit yet. (libgit2's
    /// `git_repository_is_empty` only recognises an unborn branch named like
    /// init.defaultBranch, so "main" in a `git init -b main` repository needs this.)
    private func hasNoCommits(for revision: String) -> Bool {
        if git_repository_is_empty(pointer) == 1 { return true }
        guard git_repository_head_unborn(pointer) == 1 else { return false }
        let unborn = headDescription()
        let namesHead = revision == "HEAD" || revision == "@" || revision.hasPrefix("HEAD~")
            || revision.hasPrefix("HEAD^") || revision.hasPrefix("HEAD@")
        return namesHead || revision == unborn || revision == "refs/heads/\(unborn)"
    }

    /// Where HEAD is, for messages: the branch name, or the short id when detached.
    public func headDescription() -> String {
        if git_repository_head_detached(pointer) == 1, let id = try? resolveCommit("HEAD") {
            return id.short
        }
        if let head = try? ReferenceHandle.make("reading HEAD", parent: handle, { git_repository_head(&$0, pointer) }),
           let name = git_reference_shorthand(head.pointer) {
            return String(cString: name)
        }
        // Unborn: HEAD names a branch that has no commit yet.
        if let head = try? ReferenceHandle.make("reading HEAD", parent: handle, { git_reference_lookup(&$0, pointer, "HEAD") }),
           let target = git_reference_symbolic_target(head.pointer) {
            let name = String(cString: target)
            return name.hasPrefix("refs/heads/") ? String(name.dropFirst("refs/heads/".count)) : name
        }
        return "HEAD"
    }

    // MARK: Objects

    func commit(_ id: ObjectID) throws(GitError) -> CommitHandle {
        var oid = id.oid
        do throws(GitError) {
            return try CommitHandle.make("looking up commit \(id.short)", parent: handle) {
                git_commit_lookup(&$0, pointer, &oid)
            }
        } catch {
            if error.libgit2Code == .notFound { throw .unknownRevision(id.hex) }
            throw error
        }
    }

    func tree(of commit: CommitHandle) throws(GitError) -> TreeHandle {
        try TreeHandle.make("reading the tree of a commit", parent: handle) {
            git_commit_tree(&$0, commit.pointer)
        }
    }

    func objectDatabase() throws(GitError) -> OdbHandle {
        try OdbHandle.make("opening the object database", parent: handle) {
            git_repository_odb(&$0, pointer)
        }
    }
}
