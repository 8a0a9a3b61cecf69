import CGit2
import Foundation

extension Repository {
    /// Brings the stat data of linked worktree `name`'s index up to date with its files,
    /// reading no file's content: each entry whose file is still the same kind, size and
    /// modification time takes the file's inode, device, change time and owner from
    /// `lstat`. Anything else is left for git to hash when it next looks.
    ///
    /// Handing a checkout to the agent's uid and back (patina running as root) changes
    /// every file's owner and ctime, which makes git re-read every file: this keeps
    /// collection proportional to what the agent changed. Only for a tree nothing else
    /// is writing (before the agent starts; after its containers are gone). Returns the
    /// number of entries refreshed.
    @discardableResult
    public func refreshWorktreeIndexStat(name: String, worktree: URL) throws(GitError) -> Int {
        let indexPath = worktreeGitDirectory(name: name).appendingPathComponent("index").path
        guard FileSystem.exists(indexPath) else { return 0 }
        let index = try IndexHandle.make("opening the worktree's index") { git_index_open(&$0, indexPath) }
        let root = worktree.standardizedFileURL.path
        var refreshed = 0
        for position in 0..<git_index_entrycount(index.pointer) {
            guard var entry = git_index_get_byindex(index.pointer, position)?.pointee, let cPath = entry.path else { continue }
            let path = root + "/" + String(cString: cPath)
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let kind = info.st_mode & S_IFMT
            let expected: mode_t = entry.mode == GIT_FILEMODE_LINK.rawValue ? S_IFLNK : S_IFREG
            guard kind == expected,
                  UInt64(info.st_size) == UInt64(entry.file_size),
                  Int64(info.st_mtim.tv_sec) == Int64(entry.mtime.seconds),
                  entry.mtime.nanoseconds == 0 || Int64(info.st_mtim.tv_nsec) == Int64(entry.mtime.nanoseconds)
            else { continue }
            entry.ctime.seconds = Int32(truncatingIfNeeded: info.st_ctim.tv_sec)
            entry.ctime.nanoseconds = UInt32(truncatingIfNeeded: info.st_ctim.tv_nsec)
            entry.ino = UInt32(truncatingIfNeeded: info.st_ino)
            entry.dev = UInt32(truncatingIfNeeded: info.st_dev)
            entry.uid = info.st_uid
            entry.gid = info.st_gid
            try check(git_index_add(index.pointer, &entry), "refreshing the index entry of \(String(cString: cPath))")
            refreshed += 1
        }
        try check(git_index_write(index.pointer), "writing the worktree's index")
        return refreshed
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
