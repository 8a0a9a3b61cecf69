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
    /// (`Ownership`).
    public func handOverWorktree(name: String, worktree: URL, to owner: FileOwner) throws(GitError) {
        let indexPath = worktreeGitDirectory(name: name).appendingPathComponent("index").path
        let index = FileSystem.exists(indexPath)
            ? try IndexHandle.make("opening the worktree's index") { git_index_open(&$0, indexPath) } : nil
        // The walk and its system calls run on two lanes. Each lane updates the entries of
        // the files it meets in place (sorted first, so a lookup never sorts it; no two lanes
        // meet the same file): git_index_add would invalidate the tree cache.
        if let index { _ = git_index_get_bypath(index.pointer, "", 0) }
        let shared = UnsafeSendable(index?.pointer)
        Ownership.change(worktree, uid: owner.uid, gid: owner.gid, lanes: 2) { _, directory, name, relative in
            var before = stat()
            let present = fstatat(directory, name, &before, AT_SYMLINK_NOFOLLOW) == 0
            let stored = shared.value.flatMap { git_index_get_bypath($0, relative, 0) }
            _ = fchownat(directory, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW)
            guard present, let stored, Self.statMatches(stored.pointee, before) else { return }
            var after = stat()
            guard fstatat(directory, name, &after, AT_SYMLINK_NOFOLLOW) == 0 else { return }
            WorktreeCheckout.record(after, in: UnsafeMutablePointer(mutating: stored))
        }
        guard let index else { return }
        try check(git_index_write(index.pointer), "writing the worktree's index")
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

/// A value handed to the walk's lanes (each writes only the entries of the files it meets).
/// `@unchecked`: the lanes write disjoint entries and the caller reads only after all lanes joined.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
