import CGit2
import Foundation

enum ReferenceIteratorKind: HandleKind { static func free(_ p: OpaquePointer) { git_reference_iterator_free(p) } }
typealias ReferenceIteratorHandle = Handle<ReferenceIteratorKind>

/// One tag of the repository as the sandbox's git sees it (a line of packed-refs).
public struct TagReference: Sendable, Equatable {
    public var name: String
    /// What `refs/tags/<name>` points to: a commit, or an annotated tag object.
    public var target: ObjectID
    /// The commit an annotated tag peels to; nil for a lightweight tag.
    public var peeled: ObjectID?

    public init(name: String, target: ObjectID, peeled: ObjectID? = nil) {
        self.name = name
        self.target = target
        self.peeled = peeled
    }
}

extension Repository {
    // MARK: Session refs

    /// patina's marks of a run's work live at `refs/<name>`, outside `refs/tags/`: git resolves
    /// `<name>` there first (refs/<name>, then refs/tags/<name>, refs/heads/<name>, …), so
    /// `git diff session-<id>-start..session-<id>-end` works, while `git describe --tags`,
    /// setuptools-scm, hatch-vcs, go's pseudo-versions and `git push --tags` never see them.
    public static func sessionReference(_ name: String) -> String { "refs/\(name)" }

    /// Creates `refs/<name>` at `commit` (reflog: `message`); fails if it exists.
    public func createSessionRef(_ name: String, at commit: ObjectID, message: String) throws(GitError) {
        try validateSessionRefName(name)
        _ = try self.commit(commit)
        var oid = commit.oid
        do throws(GitError) {
            _ = try ReferenceHandle.make("creating '\(name)'", parent: handle) {
                git_reference_create(&$0, pointer, Self.sessionReference(name), &oid, 0, message)
            }
        } catch {
            if error.libgit2Code == .exists { throw .tagExists(name) }
            throw error
        }
    }

    /// The commit `refs/<name>` points to; nil when there is none.
    public func sessionRefTarget(_ name: String) throws(GitError) -> ObjectID? {
        try peeledCommit(of: Self.sessionReference(name), what: "'\(name)'")
    }

    public func deleteSessionRef(_ name: String) throws(GitError) {
        try validateSessionRefName(name)
        let reference: ReferenceHandle
        do throws(GitError) {
            reference = try ReferenceHandle.make("looking up '\(name)'", parent: handle) {
                git_reference_lookup(&$0, pointer, Self.sessionReference(name))
            }
        } catch {
            if error.libgit2Code == .notFound { throw .tagNotFound(name) }
            throw error
        }
        try check(git_reference_delete(reference.pointer), "deleting '\(name)'")
    }

    /// Moves `refs/tags/<name>` (a session tag made by an older patina) to `refs/<name>`,
    /// pointing at the commit it peels to. Returns false when there was no such tag; a ref
    /// already at the new place wins and the tag just goes.
    @discardableResult
    public func moveTagToSessionRef(_ name: String, message: String) throws(GitError) -> Bool {
        try validateSessionRefName(name)
        guard let commit = try tagTarget(name) else { return false }
        if try sessionRefTarget(name) == nil {
            try createSessionRef(name, at: commit, message: message)
        }
        try deleteTag(name)
        return true
    }

    /// Every tag under `refs/tags/`, sorted by name, with what annotated ones peel to.
    public func tagReferences() throws(GitError) -> [TagReference] {
        let iterator = try ReferenceIteratorHandle.make("listing tags", parent: handle) {
            git_reference_iterator_glob_new(&$0, pointer, "refs/tags/*")
        }
        var tags: [TagReference] = []
        while true {
            var out: OpaquePointer?
            guard try checkNext(git_reference_next(&out, iterator.pointer), "listing tags"), let out else { break }
            let reference = ReferenceHandle(out, parent: handle)
            // A symbolic tag is odd enough to leave out.
            guard git_reference_type(reference.pointer) == GIT_REFERENCE_DIRECT,
                  let full = git_reference_name(reference.pointer).map({ String(cString: $0) }),
                  let target = git_reference_target(reference.pointer) else { continue }
            let name = String(full.dropFirst("refs/tags/".count))
            let id = ObjectID(target)
            var peeled: ObjectID?
            if let commit = try? ObjectHandle.make("peeling tag '\(name)'", parent: handle, {
                git_reference_peel(&$0, reference.pointer, GIT_OBJECT_ANY)
            }) {
                let object = ObjectID(git_object_id(commit.pointer))
                if object != id { peeled = object }
            }
            tags.append(TagReference(name: name, target: id, peeled: peeled))
        }
        return tags.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    }

    private func validateSessionRefName(_ name: String) throws(GitError) {
        var valid: Int32 = 0
        let full = Self.sessionReference(name)
        try check(git_reference_name_is_valid(&valid, full), "checking the name '\(name)'")
        // One component only: `refs/<name>` must not reach into refs/heads/ or refs/tags/.
        guard valid == 1, !name.contains("/") else { throw .invalidName(name) }
    }

    private func peeledCommit(of reference: String, what: String) throws(GitError) -> ObjectID? {
        let handle: ReferenceHandle
        do throws(GitError) {
            handle = try ReferenceHandle.make("looking up \(what)", parent: self.handle) {
                git_reference_lookup(&$0, pointer, reference)
            }
        } catch {
            if error.libgit2Code == .notFound || error.libgit2Code == .invalidSpec { return nil }
            throw error
        }
        let commit = try ObjectHandle.make("peeling \(what)", parent: self.handle) {
            git_reference_peel(&$0, handle.pointer, GIT_OBJECT_COMMIT)
        }
        return ObjectID(git_object_id(commit.pointer))
    }
}

extension SandboxGitDirectory {
    /// The host's tags, readable to the sandbox's git as its packed-refs (`git describe --tags`
    /// there says what it says on the host); their objects come through the alternates.
    /// Only plain data is written: the sandbox's git reads it, collection never does.
    public static func writeTags(_ tags: [TagReference], into directory: URL) throws(GitError) {
        guard !tags.isEmpty else { return }
        try FileSystem.write(packedRefs(tags), to: directory.appendingPathComponent("packed-refs"))
    }

    /// `tags` as packed-refs lines (a tag whose name holds a newline or NUL is left out).
    public static func packedRefs(_ tags: [TagReference]) -> String {
        var text = "# pack-refs with: peeled fully-peeled sorted \n"
        for tag in tags where !tag.name.contains(where: { $0.isNewline || $0 == "\0" }) {
            text += "\(tag.target.hex) refs/tags/\(tag.name)\n"
            if let peeled = tag.peeled { text += "^\(peeled.hex)\n" }
        }
        return text
    }

    /// The tags of packed-refs text written by `packedRefs` (patina's own file, not the agent's).
    public static func tags(inPackedRefs text: String) -> [TagReference] {
        text.split(separator: "\n").compactMap { line -> TagReference? in
            guard !line.hasPrefix("#"), !line.hasPrefix("^") else { return nil }
            let fields = line.split(separator: " ", maxSplits: 1)
            guard fields.count == 2, fields[1].hasPrefix("refs/tags/"), let target = ObjectID(hex: String(fields[0])) else { return nil }
            return TagReference(name: String(fields[1].dropFirst("refs/tags/".count)), target: target)
        }
    }
}
