import CGit2
import Foundation

/// One file changed between two commits, with its +/- line counts.
public struct FileChange: Hashable, Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        case added, modified, deleted, renamed, copied, typeChanged = "type_changed"
    }

    public var path: String
    /// The path before a rename or copy.
    public var oldPath: String?
    public var status: Status
    public var additions: Int
    public var deletions: Int
    /// Binary files count no lines.
    public var isBinary: Bool

    public init(path: String, oldPath: String? = nil, status: Status, additions: Int, deletions: Int, isBinary: Bool = false) {
        self.path = path
        self.oldPath = oldPath
        self.status = status
        self.additions = additions
        self.deletions = deletions
        self.isBinary = isBinary
    }

    enum CodingKeys: String, CodingKey {
        case path, oldPath = "old_path", status, additions, deletions, isBinary = "binary"
    }
}

/// One commit, as listed in a run's history.
public struct CommitInfo: Hashable, Sendable, Codable {
    public var id: ObjectID
    /// The first line of the message.
    public var summary: String
    public var authorName: String
    public var authorEmail: String
    public var date: Date

    public init(id: ObjectID, summary: String, authorName: String, authorEmail: String, date: Date) {
        self.id = id
        self.summary = summary
        self.authorName = authorName
        self.authorEmail = authorEmail
        self.date = date
    }

    enum CodingKeys: String, CodingKey {
        case id, summary, authorName = "author_name", authorEmail = "author_email", date
    }
}

extension Repository {
    /// Files changed from `from` to `to` (renames detected), in path order.
    public func diffStat(from: ObjectID, to: ObjectID) throws(GitError) -> [FileChange] {
        let diff = try treeDiff(from: from, to: to)
        var changes = [FileChange]()
        for index in 0..<git_diff_num_deltas(diff.pointer) {
            let patch = try PatchHandle.make("computing the diff of a file", parent: diff) {
                git_patch_from_diff(&$0, diff.pointer, index)
            }
            var context = 0, additions = 0, deletions = 0
            try check(git_patch_line_stats(&context, &additions, &deletions, patch.pointer), "counting changed lines")
            guard let delta = git_patch_get_delta(patch.pointer)?.pointee else { continue }
            let newPath = delta.new_file.path.map { String(cString: $0) } ?? ""
            let oldPath = delta.old_file.path.map { String(cString: $0) } ?? newPath
            let status: FileChange.Status
            switch delta.status {
            case GIT_DELTA_ADDED: status = .added
            case GIT_DELTA_DELETED: status = .deleted
            case GIT_DELTA_RENAMED: status = .renamed
            case GIT_DELTA_COPIED: status = .copied
            case GIT_DELTA_TYPECHANGE: status = .typeChanged
            default: status = .modified
            }
            changes.append(FileChange(
                path: status == .deleted ? oldPath : newPath,
                oldPath: status == .renamed || status == .copied ? oldPath : nil,
                status: status,
                additions: additions,
                deletions: deletions,
                isBinary: delta.flags & GIT_DIFF_FLAG_BINARY.rawValue != 0))
        }
        return changes
    }

    /// The unified diff from `from` to `to`, as `git diff from to` prints it (renames detected).
    public func diffPatch(from: ObjectID, to: ObjectID) throws(GitError) -> String {
        let diff = try treeDiff(from: from, to: to)
        var buffer = git_buf()
        defer { git_buf_dispose(&buffer) }
        try check(git_diff_to_buf(&buffer, diff.pointer, GIT_DIFF_FORMAT_PATCH), "formatting the diff")
        guard let text = buffer.ptr else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: buffer.size), as: UTF8.self)
    }

    /// The unified diff from `from` to `to`, one entry per file, in path order.
    public func filePatches(from: ObjectID, to: ObjectID) throws(GitError) -> [(path: String, oldPath: String, patch: String)] {
        let diff = try treeDiff(from: from, to: to)
        var patches: [(String, String, String)] = []
        for index in 0..<git_diff_num_deltas(diff.pointer) {
            let patch = try PatchHandle.make("computing the diff of a file", parent: diff) {
                git_patch_from_diff(&$0, diff.pointer, index)
            }
            guard let delta = git_patch_get_delta(patch.pointer)?.pointee else { continue }
            let newPath = delta.new_file.path.map { String(cString: $0) } ?? ""
            let oldPath = delta.old_file.path.map { String(cString: $0) } ?? newPath
            var buffer = git_buf()
            defer { git_buf_dispose(&buffer) }
            try check(git_patch_to_buf(&buffer, patch.pointer), "formatting the diff of \(newPath)")
            let text = buffer.ptr.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: buffer.size), as: UTF8.self) } ?? ""
            patches.append((delta.status == GIT_DELTA_DELETED ? oldPath : newPath, oldPath, text))
        }
        return patches
    }

    /// Commits reachable from `head` but not from `base`, newest first.
    public func commits(from base: ObjectID, to head: ObjectID) throws(GitError) -> [CommitInfo] {
        let walk = try RevwalkHandle.make("starting a history walk", parent: handle) {
            git_revwalk_new(&$0, pointer)
        }
        try check(git_revwalk_sorting(walk.pointer, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_TIME.rawValue),
                  "sorting the history walk")
        var headOID = head.oid
        var baseOID = base.oid
        try check(git_revwalk_push(walk.pointer, &headOID), "walking from \(head.short)")
        try check(git_revwalk_hide(walk.pointer, &baseOID), "hiding \(base.short)")
        var commits = [CommitInfo]()
        var next = git_oid()
        while try checkNext(git_revwalk_next(&next, walk.pointer), "walking the history") {
            let commit = try self.commit(ObjectID(next))
            let author = git_commit_author(commit.pointer)?.pointee
            commits.append(CommitInfo(
                id: ObjectID(next),
                summary: git_commit_summary(commit.pointer).map { String(cString: $0) } ?? "",
                authorName: author?.name.map { String(cString: $0) } ?? "",
                authorEmail: author?.email.map { String(cString: $0) } ?? "",
                date: Date(timeIntervalSince1970: TimeInterval(author?.when.time ?? 0))))
        }
        return commits
    }

    /// The diff limited to the paths `changedPaths` finds: libgit2's own tree-to-tree diff
    /// reads every entry of both trees, even under subtrees they share.
    private func treeDiff(from: ObjectID, to: ObjectID) throws(GitError) -> DiffHandle {
        let oldTree = try tree(of: commit(from))
        let newTree = try tree(of: commit(to))
        var options = git_diff_options()
        try check(git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION)), "preparing the diff options")
        // An empty pathspec means "every path": equal trees get one path instead, which then
        // matches nothing that differs (nothing does). A name libgit2 would not read as
        // itself: no pathspec, the whole trees are read.
        let changed = try changedPaths(from: oldTree, to: newTree)
        let pathspec = LiteralPathspec(changed.isEmpty ? [[0xFF, 0xFF]] : changed) ?? LiteralPathspec.everything
        if !pathspec.isEmpty { options.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH.rawValue }
        let diff = try pathspec.withStrarray { (paths) throws(GitError) -> DiffHandle in
            options.pathspec = paths
            return try DiffHandle.make("diffing \(from.short)..\(to.short)", parent: handle) {
                git_diff_tree_to_tree(&$0, pointer, oldTree.pointer, newTree.pointer, &options)
            }
        }
        var find = git_diff_find_options()
        try check(git_diff_find_options_init(&find, UInt32(GIT_DIFF_FIND_OPTIONS_VERSION)), "preparing rename detection")
        find.flags = GIT_DIFF_FIND_RENAMES.rawValue
        try check(git_diff_find_similar(diff.pointer, &find), "detecting renames")
        return diff
    }

    /// The paths whose entries differ between two trees, as bytes, never looking inside a
    /// subtree both share (same id). Where one side has a subtree and the other does not,
    /// the subtree's own path stands for everything under it.
    func changedPaths(from old: TreeHandle, to new: TreeHandle) throws(GitError) -> [[UInt8]] {
        var paths: [[UInt8]] = []
        try compareTrees(old.pointer, new.pointer, prefix: [], into: &paths)
        return paths
    }

    private func compareTrees(_ old: OpaquePointer, _ new: OpaquePointer, prefix: [UInt8], into paths: inout [[UInt8]]) throws(GitError) {
        let oldCount = git_tree_entrycount(old), newCount = git_tree_entrycount(new)
        var i = 0, j = 0
        while i < oldCount || j < newCount {
            let a = i < oldCount ? git_tree_entry_byindex(old, i) : nil
            let b = j < newCount ? git_tree_entry_byindex(new, j) : nil
            let order: Int32 = a == nil ? 1 : b == nil ? -1 : git_tree_entry_cmp(a, b)
            if order < 0 {
                paths.append(Self.entryPath(prefix, a!))
                i += 1
            } else if order > 0 {
                paths.append(Self.entryPath(prefix, b!))
                j += 1
            } else {
                i += 1
                j += 1
                let modeA = git_tree_entry_filemode(a), modeB = git_tree_entry_filemode(b)
                guard git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b)) == 0 || modeA != modeB else { continue }
                let path = Self.entryPath(prefix, a!)
                guard modeA == GIT_FILEMODE_TREE, modeB == GIT_FILEMODE_TREE else {
                    paths.append(path)
                    continue
                }
                var oldSub: OpaquePointer?, newSub: OpaquePointer?
                try check(git_tree_lookup(&oldSub, pointer, git_tree_entry_id(a)), "reading the tree \(String(decoding: path, as: UTF8.self))")
                defer { git_tree_free(oldSub) }
                try check(git_tree_lookup(&newSub, pointer, git_tree_entry_id(b)), "reading the tree \(String(decoding: path, as: UTF8.self))")
                defer { git_tree_free(newSub) }
                try compareTrees(oldSub!, newSub!, prefix: path + [UInt8(ascii: "/")], into: &paths)
            }
        }
    }

    private static func entryPath(_ prefix: [UInt8], _ entry: OpaquePointer) -> [UInt8] {
        prefix + Array(UnsafeRawBufferPointer(start: git_tree_entry_name(entry), count: strlen(git_tree_entry_name(entry))))
    }
}

/// Paths handed to libgit2 as a literal pathspec (`*_DISABLE_PATHSPEC_MATCH`), as
/// NUL-terminated C strings in a `git_strarray` that lives as long as the call. libgit2
/// still parses each as a pattern: it ends one at a newline, reads a leading "!" as a
/// negation and "#" as a comment, a backslash as an escape, and trims trailing blanks; a
/// path with any of those is refused (nil), and the caller reads everything instead.
struct LiteralPathspec {
    private var storage: [[CChar]]

    /// No path: libgit2 takes an empty pathspec for "every path".
    static let everything = LiteralPathspec(storage: [])

    var isEmpty: Bool { storage.isEmpty }

    private init(storage: [[CChar]]) { self.storage = storage }

    init?(_ paths: [[UInt8]]) {
        for path in paths {
            guard let first = path.first, let last = path.last, first != UInt8(ascii: "!"), first != UInt8(ascii: "#"),
                  last != UInt8(ascii: " "), last != UInt8(ascii: "\t"),
                  !path.contains(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\\") })
            else { return nil }
        }
        storage = paths.map { $0.map { CChar(bitPattern: $0) } + [0] }
    }

    /// One path as a C string, for the length of `body`.
    static func withCString<T>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
        (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    func withStrarray<T, E: Error>(_ body: (git_strarray) throws(E) -> T) throws(E) -> T {
        let pointers = UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: max(storage.count, 1))
        for (position, path) in storage.enumerated() {
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: path.count)
            copy.initialize(from: path, count: path.count)
            pointers[position] = copy
        }
        defer {
            for position in storage.indices { pointers[position]?.deallocate() }
            pointers.deallocate()
        }
        return try body(git_strarray(strings: pointers.baseAddress, count: storage.count))
    }
}
