import CGit2
import Foundation

extension Repository {
    // MARK: Branches

    public func branchExists(_ name: String) -> Bool {
        (try? lookupBranch(name)).flatMap { $0 } != nil
    }

    /// Creates `refs/heads/<name>` at `commit`; fails if the branch exists.
    public func createBranch(_ name: String, at commit: ObjectID) throws(GitError) {
        try validateBranchName(name)
        let target = try self.commit(commit)
        do throws(GitError) {
            _ = try ReferenceHandle.make("creating branch '\(name)'", parent: handle) {
                git_branch_create(&$0, pointer, name, target.pointer, 0)
            }
        } catch {
            if error.libgit2Code == .exists { throw .branchExists(name) }
            throw error
        }
    }

    /// Points `refs/heads/<name>` at `commit`, creating or moving it (reflog: `message`).
    public func setBranch(_ name: String, to commit: ObjectID, message: String) throws(GitError) {
        try validateBranchName(name)
        _ = try self.commit(commit)
        var oid = commit.oid
        _ = try ReferenceHandle.make("moving branch '\(name)' to \(commit.short)", parent: handle) {
            git_reference_create(&$0, pointer, "refs/heads/\(name)", &oid, 1, message)
        }
    }

    /// Moves `refs/heads/<name>` from `expected` to `commit`, failing if it moved meanwhile.
    public func moveBranch(_ name: String, from expected: ObjectID, to commit: ObjectID, message: String) throws(GitError) {
        var oid = commit.oid
        var current = expected.oid
        do throws(GitError) {
            _ = try ReferenceHandle.make("moving branch '\(name)' to \(commit.short)", parent: handle) {
                git_reference_create_matching(&$0, pointer, "refs/heads/\(name)", &oid, 1, &current, message)
            }
        } catch {
            if error.libgit2Code == .modified {
                let actual = (try? branchTip(name))??.hex ?? "nothing"
                throw .branchMoved(branch: name, expected: expected.hex, actual: actual)
            }
            throw error
        }
    }

    public func deleteBranch(_ name: String) throws(GitError) {
        guard let reference = try lookupBranch(name) else { throw .branchNotFound(name) }
        try check(git_branch_delete(reference.pointer), "deleting branch '\(name)'")
    }

    /// The commit `refs/heads/<name>` points to; `nil` if there is no such branch.
    public func branchTip(_ name: String) throws(GitError) -> ObjectID? {
        guard let reference = try lookupBranch(name) else { return nil }
        let resolved = try ReferenceHandle.make("resolving branch '\(name)'", parent: handle) {
            git_reference_resolve(&$0, reference.pointer)
        }
        guard let target = git_reference_target(resolved.pointer) else { return nil }
        return ObjectID(target)
    }

    func lookupBranch(_ name: String) throws(GitError) -> ReferenceHandle? {
        do throws(GitError) {
            return try ReferenceHandle.make("looking up branch '\(name)'", parent: handle) {
                git_branch_lookup(&$0, pointer, name, GIT_BRANCH_LOCAL)
            }
        } catch {
            switch error.libgit2Code {
            case .notFound?: return nil
            case .invalidSpec?: throw .invalidName(name)
            default: throw error
            }
        }
    }

    func validateBranchName(_ name: String) throws(GitError) {
        var valid: Int32 = 0
        try check(git_branch_name_is_valid(&valid, name), "checking the branch name '\(name)'")
        guard valid == 1 else { throw .invalidName(name) }
    }

    // MARK: Tags

    /// Tags `commit` as `name`: annotated with `message` (tagger: user.name/user.email
    /// from the configuration, else patina), lightweight when `message` is nil.
    public func createTag(_ name: String, at commit: ObjectID, message: String?) throws(GitError) {
        var valid: Int32 = 0
        try check(git_tag_name_is_valid(&valid, name), "checking the tag name '\(name)'")
        guard valid == 1 else { throw .invalidName(name) }
        var oid = commit.oid
        let target = try ObjectHandle.make("looking up commit \(commit.short)", parent: handle) {
            git_object_lookup(&$0, pointer, &oid, GIT_OBJECT_COMMIT)
        }
        var created = git_oid()
        let code: Int32
        if let message {
            let tagger: SignatureHandle
            if let configured = SignatureHandle.configured(in: pointer) {
                tagger = configured
            } else {
                tagger = try SignatureHandle.now(.patina)
            }
            code = git_tag_create(&created, pointer, name, target.pointer, tagger.pointer, message.endingInNewline, 0)
        } else {
            code = git_tag_create_lightweight(&created, pointer, name, target.pointer, 0)
        }
        do throws(GitError) {
            try check(code, "creating tag '\(name)'")
        } catch {
            if error.libgit2Code == .exists { throw .tagExists(name) }
            throw error
        }
    }

    /// The commit tag `name` points to; `nil` if there is no such tag.
    public func tagTarget(_ name: String) throws(GitError) -> ObjectID? {
        let reference: ReferenceHandle
        do throws(GitError) {
            reference = try ReferenceHandle.make("looking up tag '\(name)'", parent: handle) {
                git_reference_lookup(&$0, pointer, "refs/tags/\(name)")
            }
        } catch {
            if error.libgit2Code == .notFound || error.libgit2Code == .invalidSpec { return nil }
            throw error
        }
        let commit = try ObjectHandle.make("peeling tag '\(name)'", parent: handle) {
            git_reference_peel(&$0, reference.pointer, GIT_OBJECT_COMMIT)
        }
        return ObjectID(git_object_id(commit.pointer))
    }

    /// Names of the tags starting with `prefix` (plain text, not a pattern), sorted.
    public func tagNames(prefix: String) throws(GitError) -> [String] {
        var names = git_strarray()
        defer { git_strarray_dispose(&names) }
        try check(git_tag_list(&names, pointer), "listing tags")
        return (0..<names.count).compactMap { names.strings[$0].map { String(cString: $0) } }
            .filter { $0.hasPrefix(prefix) }
            .sorted()
    }

    public func deleteTag(_ name: String) throws(GitError) {
        do throws(GitError) {
            try check(git_tag_delete(pointer, name), "deleting tag '\(name)'")
        } catch {
            if error.libgit2Code == .notFound { throw .tagNotFound(name) }
            throw error
        }
    }
}

extension String {
    var endingInNewline: String { hasSuffix("\n") ? self : self + "\n" }
}
