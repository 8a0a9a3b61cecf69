import CGit2
import Foundation

/// A file a commit added or changed that is larger than a limit.
public struct LargeFile: Sendable, Equatable, Codable {
    public var commit: String
    public var path: String
    public var size: Int

    public init(commit: String, path: String, size: Int) {
        self.commit = commit
        self.path = path
        self.size = size
    }

    enum CodingKeys: String, CodingKey {
        case commit, path
        case size = "size_bytes"
    }
}

extension Repository {
    /// Files larger than `limit` bytes that the commits from `base` to `head` (except
    /// `excluding`) added or changed, sized from their object headers (nothing is inflated).
    /// Only the entries each commit changed against its first parent are looked at; at most
    /// `listed` are returned.
    public func largeFiles(from base: ObjectID, to head: ObjectID, over limit: Int, excluding: Set<ObjectID> = [],
                           listed: Int = 20) throws(GitError) -> [LargeFile] {
        let objects = try objectDatabase()
        var found: [LargeFile] = []
        for info in try commits(from: base, to: head) where !excluding.contains(info.id) {
            let commit = try self.commit(info.id)
            let newTree = try tree(of: commit)
            var changed: [[UInt8]]
            if git_commit_parentcount(commit.pointer) > 0, let parentID = git_commit_parent_id(commit.pointer, 0)?.pointee {
                let parent = try self.commit(ObjectID(parentID))
                changed = try changedPaths(from: tree(of: parent), to: newTree)
            } else {
                changed = [[]]
            }
            for path in changed {
                try sizes(at: path, in: newTree, objects: objects) { file, size in
                    if size > limit, found.count < listed {
                        found.append(LargeFile(commit: info.id.hex, path: String(decoding: file, as: UTF8.self), size: size))
                    }
                }
                if found.count >= listed { return found }
            }
        }
        return found
    }

    /// Calls `body` with each blob at `path` in `tree` (everything under it for a subtree;
    /// the whole tree for an empty path) and its size from the object's header.
    private func sizes(at path: [UInt8], in tree: TreeHandle, objects: OdbHandle,
                       _ body: ([UInt8], Int) -> Void) throws(GitError) {
        if path.isEmpty { return try walk(tree.pointer, prefix: [], objects: objects, body) }
        var entry: OpaquePointer?
        let found = LiteralPathspec.withCString(path) { git_tree_entry_bypath(&entry, tree.pointer, $0) } == 0
        guard found, let entry else { return }  // removed by the commit
        defer { git_tree_entry_free(entry) }
        guard var id = git_tree_entry_id(entry)?.pointee else { return }
        switch git_tree_entry_type(entry) {
        case GIT_OBJECT_BLOB:
            var size = 0
            var type = GIT_OBJECT_INVALID
            if git_odb_read_header(&size, &type, objects.pointer, &id) == 0 { body(path, size) }
        case GIT_OBJECT_TREE:
            let subtree = try TreeHandle.make("reading the tree \(String(decoding: path, as: UTF8.self))", parent: handle) {
                git_tree_lookup(&$0, pointer, &id)
            }
            try walk(subtree.pointer, prefix: path + [UInt8(ascii: "/")], objects: objects, body)
        default:
            return
        }
    }

    private func walk(_ tree: OpaquePointer, prefix: [UInt8], objects: OdbHandle, _ body: ([UInt8], Int) -> Void) throws(GitError) {
        for index in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, index), var id = git_tree_entry_id(entry)?.pointee else { continue }
            let name = prefix + Array(UnsafeRawBufferPointer(start: git_tree_entry_name(entry), count: strlen(git_tree_entry_name(entry))))
            switch git_tree_entry_type(entry) {
            case GIT_OBJECT_BLOB:
                var size = 0
                var type = GIT_OBJECT_INVALID
                if git_odb_read_header(&size, &type, objects.pointer, &id) == 0 { body(name, size) }
            case GIT_OBJECT_TREE:
                let subtree = try TreeHandle.make("reading the tree \(String(decoding: name, as: UTF8.self))", parent: handle) {
                    git_tree_lookup(&$0, pointer, &id)
                }
                try walk(subtree.pointer, prefix: name + [UInt8(ascii: "/")], objects: objects, body)
            default:
                continue
            }
        }
    }
}
