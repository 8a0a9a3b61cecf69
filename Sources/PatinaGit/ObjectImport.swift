import CGit2
import Foundation

/// Moves the objects of the agent's commits from its git directory into the host's
/// object store, treating everything in that directory as hostile data.
enum ObjectImport {
    /// Copies the agent's loose objects and packs into `destination`, a directory only
    /// patina can reach, so nothing the agent still does (or planted: symbolic links,
    /// FIFOs, `objects/info/alternates`) is read later. Only names git itself uses for
    /// objects and packs are copied; `objects/info/` is never read.
    static func quarantine(_ objects: UntrustedDirectory, into destination: URL) throws(GitError) {
        try FileSystem.createDirectory(destination.appendingPathComponent("pack", isDirectory: true))
        for name in try objects.entryNames() {
            if name.utf8.count == 2, name.utf8.allSatisfy(\.isLowercaseHexDigit) {
                guard let fanout = try objects.directory(name) else { continue }
                let target = destination.appendingPathComponent(name, isDirectory: true)
                try FileSystem.createDirectory(target)
                for file in try fanout.entryNames()
                where file.utf8.count == 38 && file.utf8.allSatisfy(\.isLowercaseHexDigit) {
                    try fanout.copyFile(file, to: target.appendingPathComponent(file).path)
                }
            } else if name == "pack" {
                guard let packs = try objects.directory(name) else { continue }
                let target = destination.appendingPathComponent("pack", isDirectory: true)
                for file in try packs.entryNames() where isPackFileName(file) {
                    try packs.copyFile(file, to: target.appendingPathComponent(file).path)
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
    static func missingObjects(
        from head: ObjectID, staging: Repository, stagingObjects: OdbHandle, hostObjects: OdbHandle
    ) throws(GitError) -> [(id: ObjectID, path: String)] {
        // Packs written since the host's handle was opened (a `git gc` meanwhile moves loose
        // objects into one): without them every object would look missing and be copied.
        try check(git_odb_refresh(hostObjects.pointer), "rereading the host's packs")
        var pending: [(id: ObjectID, kind: Kind, path: String)] = [(head, .commit, "")]
        var seen = Set<ObjectID>()
        var missing = [(id: ObjectID, path: String)]()
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
                    case GIT_FILEMODE_TREE: pending.append((ObjectID(entryID), .tree, entryPath))
                    case GIT_FILEMODE_COMMIT: continue  // a submodule's commit lives elsewhere
                    default: pending.append((ObjectID(entryID), .blob, entryPath))
                    }
                }
            case .blob:
                guard type == GIT_OBJECT_BLOB else {
                    throw .unsafeSandboxGitDirectory("\(path) (\(id.short)) is not a file's contents")
                }
            }
            missing.append((id, path))
        }
        return missing
    }

    static func validateEntry(_ name: String, mode: git_filemode_t, path: String) throws(GitError) {
        let known = mode == GIT_FILEMODE_TREE || mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE
            || mode == GIT_FILEMODE_LINK || mode == GIT_FILEMODE_COMMIT
        guard known, !PathRules.isRefused(name, isSymbolicLink: mode == GIT_FILEMODE_LINK) else {
            throw .unsafeSandboxGitDirectory("the agent's commits hold a path git refuses: '\(path)'")
        }
    }

    /// Writes `objects` into one new pack in the staging repository's objects/pack (the host's).
    static func writePack(_ objects: [(id: ObjectID, path: String)], staging: Repository) throws(GitError) {
        let builder = try PackbuilderHandle.make("starting a pack", parent: staging.handle) {
            git_packbuilder_new(&$0, staging.pointer)
        }
        for (id, path) in objects {
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
