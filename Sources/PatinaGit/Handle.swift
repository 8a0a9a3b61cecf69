import CGit2

/// One kind of libgit2 handle and the function that frees it.
protocol HandleKind {
    static func free(_ pointer: OpaquePointer)
}

/// The owner of one libgit2 handle: frees it in `deinit`. `parent` keeps alive the owner
/// the handle borrows from (objects borrow their repository).
///
/// `@unchecked Sendable`: libgit2 handles are not safe for concurrent use; each owner is
/// used from one task at a time (a run's collection, a command), never shared concurrently.
final class Handle<Kind: HandleKind>: @unchecked Sendable {
    let pointer: OpaquePointer
    private let parent: AnyObject?

    init(_ pointer: OpaquePointer, parent: AnyObject? = nil) {
        self.pointer = pointer
        self.parent = parent
    }

    deinit {
        Kind.free(pointer)
    }

    /// Calls a libgit2 constructor that fills an out-pointer and takes ownership of the result.
    static func make(
        _ operation: @autoclosure () -> String,
        parent: AnyObject? = nil,
        _ create: (inout OpaquePointer?) -> Int32
    ) throws(GitError) -> Handle<Kind> {
        Libgit2.initialize()
        var out: OpaquePointer?
        let code = create(&out)
        try check(code, operation())
        guard let out else {
            throw .libgit2(operation: operation(), code: .other(code), message: "libgit2 returned no handle")
        }
        return Handle(out, parent: parent)
    }
}

enum RepositoryKind: HandleKind { static func free(_ p: OpaquePointer) { git_repository_free(p) } }
enum ObjectKind: HandleKind { static func free(_ p: OpaquePointer) { git_object_free(p) } }
enum CommitKind: HandleKind { static func free(_ p: OpaquePointer) { git_commit_free(p) } }
enum TreeKind: HandleKind { static func free(_ p: OpaquePointer) { git_tree_free(p) } }
enum ReferenceKind: HandleKind { static func free(_ p: OpaquePointer) { git_reference_free(p) } }
enum IndexKind: HandleKind { static func free(_ p: OpaquePointer) { git_index_free(p) } }
enum OdbKind: HandleKind { static func free(_ p: OpaquePointer) { git_odb_free(p) } }
enum DiffKind: HandleKind { static func free(_ p: OpaquePointer) { git_diff_free(p) } }
enum PatchKind: HandleKind { static func free(_ p: OpaquePointer) { git_patch_free(p) } }
enum RevwalkKind: HandleKind { static func free(_ p: OpaquePointer) { git_revwalk_free(p) } }
enum PackbuilderKind: HandleKind { static func free(_ p: OpaquePointer) { git_packbuilder_free(p) } }
enum WorktreeKind: HandleKind { static func free(_ p: OpaquePointer) { git_worktree_free(p) } }
enum BranchIteratorKind: HandleKind { static func free(_ p: OpaquePointer) { git_branch_iterator_free(p) } }
enum ConflictIteratorKind: HandleKind { static func free(_ p: OpaquePointer) { git_index_conflict_iterator_free(p) } }
enum StatusListKind: HandleKind { static func free(_ p: OpaquePointer) { git_status_list_free(p) } }
enum ConfigKind: HandleKind { static func free(_ p: OpaquePointer) { git_config_free(p) } }
enum OdbObjectKind: HandleKind { static func free(_ p: OpaquePointer) { git_odb_object_free(p) } }

typealias RepositoryHandle = Handle<RepositoryKind>
typealias ObjectHandle = Handle<ObjectKind>
typealias CommitHandle = Handle<CommitKind>
typealias TreeHandle = Handle<TreeKind>
typealias ReferenceHandle = Handle<ReferenceKind>
typealias IndexHandle = Handle<IndexKind>
typealias OdbHandle = Handle<OdbKind>
typealias DiffHandle = Handle<DiffKind>
typealias PatchHandle = Handle<PatchKind>
typealias RevwalkHandle = Handle<RevwalkKind>
typealias PackbuilderHandle = Handle<PackbuilderKind>
typealias WorktreeHandle = Handle<WorktreeKind>
typealias BranchIteratorHandle = Handle<BranchIteratorKind>
typealias ConflictIteratorHandle = Handle<ConflictIteratorKind>
typealias StatusListHandle = Handle<StatusListKind>
typealias ConfigHandle = Handle<ConfigKind>
typealias OdbObjectHandle = Handle<OdbObjectKind>

/// The owner of a `git_signature` (a plain struct pointer, not an opaque handle).
final class SignatureHandle {
    let pointer: UnsafeMutablePointer<git_signature>

    private init(_ pointer: UnsafeMutablePointer<git_signature>) {
        self.pointer = pointer
    }

    deinit {
        git_signature_free(pointer)
    }

    /// A signature dated now.
    static func now(_ identity: Identity) throws(GitError) -> SignatureHandle {
        Libgit2.initialize()
        var out: UnsafeMutablePointer<git_signature>?
        try check(git_signature_now(&out, identity.name, identity.email), "making the signature \(identity)")
        guard let out else { throw .fileSystem("libgit2 returned no signature") }
        return SignatureHandle(out)
    }

    /// user.name / user.email from the repository's configuration, if set.
    static func configured(in repository: OpaquePointer) -> SignatureHandle? {
        var out: UnsafeMutablePointer<git_signature>?
        guard (try? check(git_signature_default(&out, repository), "reading user.name")) != nil,
              let out else { return nil }
        return SignatureHandle(out)
    }
}

/// The owner of an odb backend until an object database takes it over.
final class OdbBackendHandle {
    private var pointer: UnsafeMutablePointer<git_odb_backend>?

    init(_ pointer: UnsafeMutablePointer<git_odb_backend>) {
        self.pointer = pointer
    }

    deinit {
        if let pointer { pointer.pointee.free?(pointer) }
    }

    /// Hands the backend to `odb` as an alternate (searched after the odb's own backends);
    /// the odb frees it from then on.
    func addAsAlternate(to odb: OdbHandle, priority: Int32, _ operation: String) throws(GitError) {
        guard let backend = pointer else { return }
        try check(git_odb_add_alternate(odb.pointer, backend, priority), operation)
        pointer = nil
    }
}
