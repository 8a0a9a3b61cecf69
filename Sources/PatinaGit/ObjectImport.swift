import CGit2
import Foundation

/// Moves the objects of the agent's commits from its git directory into the host's
/// object store, treating everything in that directory as hostile data.
enum ObjectImport {
    /// Copies the agent's loose objects and packs into `destination`, a directory only
    /// patina can reach, so nothing the agent still does (or planted: symbolic links,
    /// FIFOs, `objects/info/alternates`) is read later. Only names git itself uses for
    /// objects and packs are copied; `objects/info/` is never read.
    /// At most `limit` bytes are copied (`CollectionLimits.importBytes`: compressed objects
    /// never take much more room than inflated ones).
    static func quarantine(_ objects: UntrustedDirectory, into destination: URL, limit: Int = .max) throws(GitError) {
        try FileSystem.createDirectory(destination.appendingPathComponent("pack", isDirectory: true))
        var left = limit
        for name in try objects.entryNames() {
            if name.utf8.count == 2, name.utf8.allSatisfy(\.isLowercaseHexDigit) {
                guard let fanout = try objects.directory(name) else { continue }
                let target = destination.appendingPathComponent(name, isDirectory: true)
                try FileSystem.createDirectory(target)
                for file in try fanout.entryNames()
                where file.utf8.count == 38 && file.utf8.allSatisfy(\.isLowercaseHexDigit) {
                    left -= try fanout.copyFile(file, to: target.appendingPathComponent(file).path, limit: left)
                }
            } else if name == "pack" {
                guard let packs = try objects.directory(name) else { continue }
                let target = destination.appendingPathComponent("pack", isDirectory: true)
                for file in try packs.entryNames() where isPackFileName(file) {
                    left -= try packs.copyFile(file, to: target.appendingPathComponent(file).path, limit: left)
                }
            }
        }
    }

    private static func isPackFileName(_ name: String) -> Bool {
        for suffix in [".pack", ".idx"] where name.hasPrefix("pack-") && name.hasSuffix(suffix) {
            let hex = name.dropFirst("pack-".count).dropLast(suffix.count)
            return hex.utf8.count == 40 && hex.utf8.allSatisfy(\.isLowercaseHexDigit)
        }
        return false
    }

    /// Adds the quarantined objects to `odb` as alternates: a loose and a pack backend made
    /// by hand, so no alternates file is ever followed.
    static func attach(_ quarantine: URL, to odb: OdbHandle) throws(GitError) {
        var loose: UnsafeMutablePointer<git_odb_backend>?
        try check(git_odb_backend_loose(&loose, quarantine.path, -1, 0, 0, 0), "reading the agent's loose objects")
        if let loose {
            try OdbBackendHandle(loose).addAsAlternate(to: odb, priority: 1, "adding the agent's loose objects")
        }
        var packed: UnsafeMutablePointer<git_odb_backend>?
        try check(git_odb_backend_pack(&packed, quarantine.path), "reading the agent's packs")
        if let packed {
            try OdbBackendHandle(packed).addAsAlternate(to: odb, priority: 1, "adding the agent's packs")
        }
    }

    private enum Kind { case commit, tree, blob }

    /// The largest object accepted from the agent (inflated size): a zlib bomb stops here.
    static let maximumObjectSize = 1 << 30

    /// The objects reachable from `head` that the host lacks, checked on the way: commits
    /// must be commits, trees must be trees with safe entry names, blobs must be blobs.
    /// The walk stops at any object the host already has (git's connectivity rule: what the
    /// host has, it has completely).
    ///
    /// Their sizes come from the objects' headers (a packed delta's too), before any object
    /// is inflated: past `limits.importBytes` in all, or `limits.deadline`, the walk stops
    /// with `collectionLimit`.
    static func missingObjects(
        from head: ObjectID, staging: Repository, stagingObjects: OdbHandle, hostObjects: OdbHandle,
        limits: CollectionLimits = .none
    ) throws(GitError) -> [Missing] {
        // Packs written since the host's handle was opened (a `git gc` meanwhile moves loose
        // objects into one): without them every object would look missing and be copied.
        try check(git_odb_refresh(hostObjects.pointer), "rereading the host's packs")
        var pending: [(id: ObjectID, kind: Kind, path: String)] = [(head, .commit, "")]
        var seen = Set<ObjectID>()
        var missing = [Missing]()
        var total = 0
        let noRefresh = GIT_ODB_LOOKUP_NO_REFRESH.rawValue
        while let (id, kind, path) = pending.popLast() {
            guard seen.insert(id).inserted else { continue }
            var oid = id.oid
            if git_odb_exists_ext(hostObjects.pointer, &oid, noRefresh) == 1 { continue }
            guard git_odb_exists_ext(stagingObjects.pointer, &oid, noRefresh) == 1 else {
                throw .unsafeSandboxGitDirectory(
                    "the agent's history is incomplete: object \(id.short)\(path.isEmpty ? "" : " (\(path))") is missing")
            }
            // The size from the header, before libgit2 inflates a whole object into memory.
            var size = 0
            var type = GIT_OBJECT_INVALID
            try check(git_odb_read_header(&size, &type, stagingObjects.pointer, &oid), "reading the agent's object \(id.short)")
            guard size <= maximumObjectSize else {
                throw .unsafeSandboxGitDirectory(
                    "object \(id.short)\(path.isEmpty ? "" : " (\(path))") is \(size) bytes, more than the \(maximumObjectSize) accepted")
            }
            let (sum, overflow) = total.addingReportingOverflow(size)
            total = overflow ? .max : sum
            guard !overflow, total <= limits.importBytes else {
                throw .collectionLimit(
                    "the agent's commits hold more than \(limits.importBytes) bytes of objects (inflated; at \(id.short)\(path.isEmpty ? "" : " (\(path))"), \(size) bytes); they were not imported")
            }
            if limits.expired {
                throw .collectionLimit("the time budget ran out while the agent's objects were read; its commits were not imported")
            }
            switch kind {
            case .commit:
                let commit = try CommitHandle.make("reading the agent's commit \(id.short)", parent: staging.handle) {
                    git_commit_lookup(&$0, staging.pointer, &oid)
                }
                pending.append((ObjectID(git_commit_tree_id(commit.pointer)), .tree, ""))
                for index in 0..<git_commit_parentcount(commit.pointer) {
                    if let parent = git_commit_parent_id(commit.pointer, index) {
                        pending.append((ObjectID(parent), .commit, ""))
                    }
                }
            case .tree:
                let tree = try TreeHandle.make("reading the agent's tree \(id.short)", parent: staging.handle) {
                    git_tree_lookup(&$0, staging.pointer, &oid)
                }
                for index in 0..<git_tree_entrycount(tree.pointer) {
                    guard let entry = git_tree_entry_byindex(tree.pointer, index),
                          let namePointer = git_tree_entry_name(entry),
                          let entryID = git_tree_entry_id(entry) else { continue }
                    let name = String(cString: namePointer)
                    let mode = git_tree_entry_filemode(entry)
                    let entryPath = path.isEmpty ? name : path + "/" + name
                    try validateEntry(name, mode: mode, path: entryPath)
                    switch mode {
                    case GIT_FILEMODE_TREE:
                        // The worktree could not hold it for libgit2 (see `CollectionLimits.maximumDepth`).
                        if WorktreeCheck.isTooDeep(entryPath) {
                            throw .collectionLimit("the agent's commits hold a directory too deep to check out: '\(String(entryPath.prefix(200)))…'; they were not imported")
                        }
                        pending.append((ObjectID(entryID), .tree, entryPath))
                    case GIT_FILEMODE_COMMIT: continue  // a submodule's commit lives elsewhere
                    default: pending.append((ObjectID(entryID), .blob, entryPath))
                    }
                }
            case .blob:
                guard type == GIT_OBJECT_BLOB else {
                    throw .unsafeSandboxGitDirectory("\(path) (\(id.short)) is not a file's contents")
                }
            }
            missing.append(Missing(id: id, path: path, size: size, isBlob: kind == .blob))
        }
        return missing
    }

    /// An object the host lacks: its size from its header.
    struct Missing {
        let id: ObjectID
        let path: String
        let size: Int
        let isBlob: Bool
    }

    /// Blobs larger than this are copied one by one, streamed where the agent's object is
    /// loose, rather than packed: the pack builder holds up to ten objects whole while it
    /// looks for deltas (eight 400 MB blobs took it to 4 GB).
    static let streamedBlobSize = 16 << 20

    /// Copies one large blob into `host` as a loose object: streamed from a loose object
    /// in bounded memory, read whole (one object at a time) from a pack. The hash of what
    /// was written must be `missing.id`.
    static func copyLargeBlob(_ missing: Missing, from staging: OdbHandle, to host: OdbHandle) throws(GitError) {
        var oid = missing.id.oid
        var written = git_oid()
        var reader: UnsafeMutablePointer<git_odb_stream>?
        var length = 0
        var type = GIT_OBJECT_INVALID
        if git_odb_open_rstream(&reader, &length, &type, staging.pointer, &oid) == 0, let reader {
            defer { git_odb_stream_free(reader) }
            guard type == GIT_OBJECT_BLOB, length == missing.size else {
                throw .unsafeSandboxGitDirectory("\(missing.path) (\(missing.id.short)) changed while it was read")
            }
            var writer: UnsafeMutablePointer<git_odb_stream>?
            try check(git_odb_open_wstream(&writer, host.pointer, git_object_size_t(length), type), "writing \(missing.path)")
            guard let writer else { throw .fileSystem("libgit2 gave no stream to write \(missing.path)") }
            defer { git_odb_stream_free(writer) }
            var chunk = [CChar](repeating: 0, count: 1 << 20)
            var copied = 0
            while true {
                let count = chunk.withUnsafeMutableBufferPointer { git_odb_stream_read(reader, $0.baseAddress, $0.count) }
                try check(count, "reading the agent's object \(missing.id.short)")
                if count == 0 { break }
                copied += Int(count)
                guard copied <= length else {
                    throw .unsafeSandboxGitDirectory("\(missing.path) (\(missing.id.short)) is longer than its header says")
                }
                try check(chunk.withUnsafeBufferPointer { git_odb_stream_write(writer, $0.baseAddress, Int(count)) },
                          "writing \(missing.path)")
            }
            try check(git_odb_stream_finalize_write(&written, writer), "writing \(missing.path)")
        } else {
            let object = try OdbObjectHandle.make("reading the agent's object \(missing.id.short)") {
                git_odb_read(&$0, staging.pointer, &oid)
            }
            try check(git_odb_write(&written, host.pointer, git_odb_object_data(object.pointer),
                                    git_odb_object_size(object.pointer), GIT_OBJECT_BLOB), "writing \(missing.path)")
        }
        guard ObjectID(written) == missing.id else {
            throw .unsafeSandboxGitDirectory("\(missing.path) (\(missing.id.short)) does not hash to its name")
        }
    }

    static func validateEntry(_ name: String, mode: git_filemode_t, path: String) throws(GitError) {
        let known = mode == GIT_FILEMODE_TREE || mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE
            || mode == GIT_FILEMODE_LINK || mode == GIT_FILEMODE_COMMIT
        guard known, !PathRules.isRefused(name, isSymbolicLink: mode == GIT_FILEMODE_LINK) else {
            throw .unsafeSandboxGitDirectory("the agent's commits hold a path git refuses: '\(path)'")
        }
    }

    /// Writes `objects` into one new pack in the staging repository's objects/pack (the host's).
    static func writePack(_ objects: [Missing], staging: Repository) throws(GitError) {
        let builder = try PackbuilderHandle.make("starting a pack", parent: staging.handle) {
            git_packbuilder_new(&$0, staging.pointer)
        }
        for object in objects {
            let (id, path) = (object.id, object.path)
            var oid = id.oid
            try check(
                git_packbuilder_insert(builder.pointer, &oid, path.isEmpty ? nil : path),
                "packing the agent's object \(id.short)")
        }
        try check(git_packbuilder_write(builder.pointer, nil, 0, nil, nil),
                  "writing the agent's objects into \(staging.objectsDirectory.path)/pack")
    }
}

extension UInt8 {
    var isLowercaseHexDigit: Bool { (0x30...0x39).contains(self) || (0x61...0x66).contains(self) }
}
