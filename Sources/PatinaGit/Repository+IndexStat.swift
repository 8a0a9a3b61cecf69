import CGit2
import Foundation

extension Repository {
    /// Hands linked worktree `name`'s files to `owner` and records, in the same pass, the
    /// new stat data of every file that had not changed since its index entry was written,
    /// reading no file's content. "Not changed": same kind, size, modification and change
    /// time and inode as the entry records, checked before the chown; anything else is left
    /// for git to hash when it next looks.
    ///
    /// A chown changes every file's change time, which makes git re-read every file: this
    /// keeps collection (and the agent's git, which starts from a copy of this index)
    /// proportional to what the agent changed. Only for a tree nothing else is writing
    /// (before the agent starts; after its containers are gone). Links are never followed
    /// (`Ownership`). Returns the number of entries refreshed.
    @discardableResult
    public func handOverWorktree(name: String, worktree: URL, to owner: FileOwner) throws(GitError) -> Int {
        let indexPath = worktreeGitDirectory(name: name).appendingPathComponent("index").path
        let index = FileSystem.exists(indexPath)
            ? try IndexHandle.make("opening the worktree's index") { git_index_open(&$0, indexPath) } : nil
        // The walk and its system calls run on two lanes; each lane only reads the index
        // (sorted first, so a lookup never sorts it) and keeps its own list of refreshed
        // entries, which are written into the index afterwards, on this thread.
        if let index { _ = git_index_get_bypath(index.pointer, "", 0) }
        let lanes = 2
        let found = RefreshedEntries(lanes: lanes)
        let indexPointer = index.map { UnsafeSendable($0.pointer) }
        Ownership.change(worktree, uid: owner.uid, gid: owner.gid, lanes: lanes) { lane, directory, name, relative in
            var before = stat()
            let present = fstatat(directory, name, &before, AT_SYMLINK_NOFOLLOW) == 0
            let recorded = indexPointer.flatMap { git_index_get_bypath($0.value, relative, 0)?.pointee }
            _ = fchownat(directory, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW)
            guard present, var entry = recorded, Self.statMatches(entry, before) else { return }
            var after = stat()
            guard fstatat(directory, name, &after, AT_SYMLINK_NOFOLLOW) == 0 else { return }
            entry.ctime.seconds = Int32(truncatingIfNeeded: after.st_ctim.tv_sec)
            entry.ctime.nanoseconds = UInt32(truncatingIfNeeded: after.st_ctim.tv_nsec)
            entry.uid = after.st_uid
            entry.gid = after.st_gid
            found.append(lane: lane, entry: entry, path: relative)
        }
        guard let index else { return 0 }
        var refreshed = 0
        for (entry, path) in found.all {
            var entry = entry
            try path.withUnsafeBufferPointer { (path) throws(GitError) in
                entry.path = path.baseAddress
                try check(git_index_add(index.pointer, &entry), "refreshing the index entry of \(WorktreeCheckout.display(Array(path)))")
            }
            refreshed += 1
        }
        try check(git_index_write(index.pointer), "writing the worktree's index")
        return refreshed
    }

    /// Whether `entry`'s stat data is `info`'s (owner and device aside): git's own test for
    /// "unchanged" without reading the file.
    static func statMatches(_ entry: git_index_entry, _ info: stat) -> Bool {
        let kind = info.st_mode & S_IFMT
        let expected: mode_t = entry.mode == GIT_FILEMODE_LINK.rawValue ? S_IFLNK : S_IFREG
        return kind == expected
            && entry.mode != GIT_FILEMODE_COMMIT.rawValue
            && UInt32(truncatingIfNeeded: info.st_size) == entry.file_size
            && Int32(truncatingIfNeeded: info.st_mtim.tv_sec) == entry.mtime.seconds
            && UInt32(truncatingIfNeeded: info.st_mtim.tv_nsec) == entry.mtime.nanoseconds
            && Int32(truncatingIfNeeded: info.st_ctim.tv_sec) == entry.ctime.seconds
            && UInt32(truncatingIfNeeded: info.st_ctim.tv_nsec) == entry.ctime.nanoseconds
            && UInt32(truncatingIfNeeded: info.st_ino) == entry.ino
    }
}

extension Repository {
    /// Makes this handle compare change times when it decides, from stat data alone,
    /// that a file did not change (`core.trustctime`), whatever the repository's own
    /// configuration says: the agent can set a file's modification time back, never its
    /// change time. Call on a fresh handle, before anything reads the configuration.
    func trustChangeTimes() throws(GitError) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("patina-config-\(UUID().uuidString)")
        try FileSystem.write("[core]\n\ttrustctime = true\n", to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let config = try ConfigHandle.make("reading the repository's configuration") { git_repository_config(&$0, pointer) }
        try check(git_config_add_file_ondisk(config.pointer, file.path, GIT_CONFIG_LEVEL_APP, pointer, 1),
                  "overriding core.trustctime")
    }
}

/// A value handed to the walk's lanes that only read it.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The index entries each lane found unchanged, with their new stat data; each lane
/// appends only to its own list.
/// (Separate storage per lane, reached through a pointer: no lane touches another's.)
final class RefreshedEntries: @unchecked Sendable {
    private let lists: UnsafeMutablePointer<[(git_index_entry, [CChar])]>
    private let lanes: Int
    init(lanes: Int) {
        self.lanes = lanes
        lists = .allocate(capacity: lanes)
        lists.initialize(repeating: [], count: lanes)
    }
    deinit {
        lists.deinitialize(count: lanes)
        lists.deallocate()
    }
    func append(lane: Int, entry: git_index_entry, path: [CChar]) {
        lists[lane].append((entry, path))
    }
    /// Once every lane has finished.
    var all: [(git_index_entry, [CChar])] { (0..<lanes).flatMap { lists[$0] } }
}
