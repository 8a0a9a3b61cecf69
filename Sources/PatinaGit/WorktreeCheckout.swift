import CGit2
import CPatinaShim
import Foundation
import Synchronization

/// Who owns the files of a checkout: patina running as root hands a run's worktree to
/// the agent's uid.
public struct FileOwner: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }
}

/// Writes a commit's files into a new, empty linked worktree, and the worktree's index
/// with every file's stat data as written, so neither git nor collection re-reads a file
/// the agent has not touched.
///
/// What `git worktree add` writes: the same files, modes, symbolic links and empty
/// directories for submodules; files made with 0666/0777 and the umask. Blobs go through
/// libgit2's filters (crlf/eol, ident) exactly as libgit2's own checkout would send them
/// whenever anything could ask for one: a `.gitattributes` in the tree, `info/attributes`,
/// a global or system attributes file, or `core.autocrlf = true`. Without any of those no
/// filter can apply, and the blob is written as it is; libgit2's checkout would still look
/// up every file's attributes, resolving its path twice (realpath), which is most of what
/// it costs over git.
///
/// The work is spread over up to four threads, each with its own repository handle.
enum WorktreeCheckout {
    struct Entry {
        /// Relative to the worktree, NUL-terminated.
        var path: [CChar]
        var mode: UInt32
        var id: git_oid
        /// Outside a sparse checkout's directories: not written, marked skip-worktree.
        var skipped = false
    }

    /// `sparse`: when not empty, only files at the top level and under these directories
    /// are written; every other entry is marked skip-worktree (git then takes it as
    /// unchanged, as in its own sparse checkouts).
    static func write(
        host: Repository, name: String, worktree: URL, commit: ObjectID, sparse: [String] = []
    ) throws(GitError) {
        let root = worktree.standardizedFileURL.path
        let indexPath = host.worktreeGitDirectory(name: name).appendingPathComponent("index").path
        let staging = try Repository.openGitDirectory(host.commonDirectory)
        let tree = try staging.tree(of: staging.commit(commit))
        try? FileManager.default.removeItem(atPath: indexPath)
        // An index of its own (no repository owns it): libgit2 then never re-reads files to
        // smudge racily clean entries when it writes it.
        let index = try IndexHandle.make("creating the worktree's index") { git_index_open(&$0, indexPath) }
        try check(git_index_read_tree(index.pointer, tree.pointer), "reading \(commit.short) into the worktree's index")

        var entries = try readEntries(index)
        if !sparse.isEmpty {
            let prefixes = sparse.map { Array($0.utf8CString.dropLast()) + [CChar(bitPattern: UInt8(ascii: "/"))] }
            let slash = CChar(bitPattern: UInt8(ascii: "/"))
            for position in entries.indices {
                let path = entries[position].path.dropLast()
                let topLevel = !path.contains(slash)
                entries[position].skipped = !topLevel && !prefixes.contains { path.starts(with: $0) }
            }
        }
        let settings = try CheckoutSettings(staging, entries: entries)
        if settings.filters {
            // The filters look attributes up in the index: it must be on disk for the workers.
            try check(git_index_write(index.pointer), "writing the worktree's index")
        }
        try makeDirectories(root: root, entries: entries)

        let workers = entries.count < 2_000 ? 1 : min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 4)
        var handles: [Repository] = []
        for _ in 0..<workers {
            handles.append(try workerHandle(host: host, root: root, indexPath: indexPath, filters: settings.filters))
        }
        let work = Work(entries: entries, handles: handles, root: root, settings: settings)
        defer { work.written.deallocate() }
        DispatchQueue.concurrentPerform(iterations: workers) { work.run(worker: $0) }
        let failures = work.failures
        let written = work.written
        if let failure = failures.error { throw failure }

        // The stat data goes into the entries in place: git_index_add would invalidate the
        // tree cache read_tree built, and without it every `git commit` in the sandbox
        // writes every tree again (and collection imports them all).
        for position in entries.indices where entries[position].mode != GIT_FILEMODE_COMMIT.rawValue {
            guard let stored = git_index_get_byindex(index.pointer, position) else { continue }
            let entry = UnsafeMutablePointer(mutating: stored)
            if entries[position].skipped {
                entry.pointee.flags_extended |= UInt16(GIT_INDEX_ENTRY_SKIP_WORKTREE.rawValue)
            } else {
                Self.record(written[position], in: entry)
            }
        }
        try check(git_index_write(index.pointer), "writing the worktree's index")
    }

    /// Writes a file's stat data into its index entry (path, id, mode and flags untouched).
    static func record(_ info: stat, in entry: UnsafeMutablePointer<git_index_entry>) {
        entry.pointee.ctime.seconds = Int32(truncatingIfNeeded: info.st_ctim.tv_sec)
        entry.pointee.ctime.nanoseconds = UInt32(truncatingIfNeeded: info.st_ctim.tv_nsec)
        entry.pointee.mtime.seconds = Int32(truncatingIfNeeded: info.st_mtim.tv_sec)
        entry.pointee.mtime.nanoseconds = UInt32(truncatingIfNeeded: info.st_mtim.tv_nsec)
        entry.pointee.dev = UInt32(truncatingIfNeeded: info.st_dev)
        entry.pointee.ino = UInt32(truncatingIfNeeded: info.st_ino)
        entry.pointee.uid = info.st_uid
        entry.pointee.gid = info.st_gid
        entry.pointee.file_size = UInt32(truncatingIfNeeded: info.st_size)
    }

    /// One checkout's shared state. `@unchecked Sendable`: `entries`, `root` and `settings`
    /// are only read; worker `n` uses only `handles[n]` and writes only the
    /// positions of `written` of its own chunks; `failures` has its own lock.
    private final class Work: @unchecked Sendable {
        let entries: [Entry]
        let handles: [Repository]
        let root: String
        let settings: CheckoutSettings
        let written: UnsafeMutableBufferPointer<stat>
        let failures = Failures()
        static let chunk = 256

        init(entries: [Entry], handles: [Repository], root: String, settings: CheckoutSettings) {
            self.entries = entries
            self.handles = handles
            self.root = root
            self.settings = settings
            written = .allocate(capacity: max(entries.count, 1))
            written.initialize(repeating: stat())
        }

        func run(worker: Int) {
            let repository = handles[worker]
            var start = worker * Self.chunk
            while start < entries.count, !failures.any {
                for position in start..<min(start + Self.chunk, entries.count) {
                    do throws(GitError) {
                        if let info = try writeEntry(entries[position], root: root, repository: repository, settings: settings) {
                            written[position] = info
                        }
                    } catch {
                        failures.add(error)
                        return
                    }
                }
                start += handles.count * Self.chunk
            }
        }
    }

    /// The index's entries, every path checked the way git checks a path before writing it.
    private static func readEntries(_ index: IndexHandle) throws(GitError) -> [Entry] {
        let count = git_index_entrycount(index.pointer)
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        for position in 0..<count {
            guard let entry = git_index_get_byindex(index.pointer, position)?.pointee, let cPath = entry.path else {
                throw .fileSystem("the worktree's index has no entry at \(position)")
            }
            let length = strlen(cPath)
            let path = Array(UnsafeBufferPointer(start: cPath, count: length + 1))
            let components = path.dropLast().split(separator: CChar(bitPattern: UInt8(ascii: "/")), omittingEmptySubsequences: false)
            for (number, component) in components.enumerated() where PathRules.mayBeRefused(component) {
                let name = String(decoding: component.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if PathRules.isRefused(name, isSymbolicLink: entry.mode == GIT_FILEMODE_LINK.rawValue && number == components.count - 1) {
                    throw .fileSystem("refusing to check out '\(String(cString: cPath))': git refuses that path")
                }
            }
            entries.append(Entry(path: path, mode: entry.mode, id: entry.id))
        }
        return entries
    }

    /// Every directory the entries need (and a submodule's own, left empty as git leaves it),
    /// parents first.
    private static func makeDirectories(root: String, entries: [Entry]) throws(GitError) {
        let slash = CChar(bitPattern: UInt8(ascii: "/"))
        var made = Set<ArraySlice<CChar>>()
        let rootBytes = Array(root.utf8CString.dropLast()) + [slash]
        for entry in entries where !entry.skipped {
            let relative = entry.path.dropLast()
            var ends = relative.indices.filter { relative[$0] == slash }
            if entry.mode == GIT_FILEMODE_COMMIT.rawValue { ends.append(relative.endIndex) }
            for end in ends {
                let directory = relative[..<end]
                guard !made.contains(directory) else { continue }
                let full = rootBytes + directory + [0]
                if mkdir(full, 0o777) != 0 && errno != EEXIST {
                    throw failure("create the directory", full)
                }
                made.insert(directory)
            }
        }
    }

    private static func workerHandle(host: Repository, root: String, indexPath: String, filters: Bool) throws(GitError) -> Repository {
        let repository = try Repository.openGitDirectory(host.commonDirectory)
        guard filters else { return repository }
        try check(git_repository_set_workdir(repository.pointer, root, 0), "attaching the worktree \(root)")
        let index = try IndexHandle.make("opening the worktree's index", parent: repository.handle) { git_index_open(&$0, indexPath) }
        try check(patina_git_repository_set_index(repository.pointer, index.pointer), "attaching the worktree's index")
        return repository
    }

    /// Writes one entry; returns its stat once written (nil for a submodule).
    private static func writeEntry(
        _ entry: Entry, root: String, repository: Repository, settings: CheckoutSettings
    ) throws(GitError) -> stat? {
        guard entry.mode != GIT_FILEMODE_COMMIT.rawValue, !entry.skipped else { return nil }
        let full = Array(root.utf8CString.dropLast()) + [CChar(bitPattern: UInt8(ascii: "/"))] + entry.path
        var id = entry.id
        let blob = try Handle<BlobKind>.make("reading the blob of \(display(entry.path))", parent: repository.handle) {
            git_blob_lookup(&$0, repository.pointer, &id)
        }
        let raw = UnsafeRawBufferPointer(start: git_blob_rawcontent(blob.pointer), count: Int(git_blob_rawsize(blob.pointer)))
        var info = stat()
        if entry.mode == GIT_FILEMODE_LINK.rawValue, settings.symbolicLinks {
            let target = Array(raw.prefix { $0 != 0 }.map { CChar(bitPattern: $0) }) + [0]
            guard symlink(target, full) == 0 else { throw failure("create the symbolic link", full) }
            guard lstat(full, &info) == 0 else { throw failure("stat", full) }
            return info
        }
        let executable = entry.mode == GIT_FILEMODE_BLOB_EXECUTABLE.rawValue
        let fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, executable ? 0o777 : 0o666)
        guard fd >= 0 else { throw failure("create", full) }
        defer { close(fd) }
        if settings.filters && entry.mode != GIT_FILEMODE_LINK.rawValue {
            var filtered = git_buf()
            defer { git_buf_dispose(&filtered) }
            var options = git_blob_filter_options()
            try check(git_blob_filter_options_init(&options, UInt32(GIT_BLOB_FILTER_OPTIONS_VERSION)), "preparing the filter options")
            options.flags = 0
            try check(git_blob_filter(&filtered, blob.pointer, entry.path, &options), "filtering \(display(entry.path))")
            try writeAll(fd, UnsafeRawBufferPointer(start: filtered.ptr, count: filtered.size), full)
        } else {
            try writeAll(fd, raw, full)
        }
        guard fstat(fd, &info) == 0 else { throw failure("stat", full) }
        return info
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: [CChar]) throws(GitError) {
        var offset = 0
        while offset < bytes.count {
            let count = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("write", path)
            }
            offset += count
        }
    }

    private static func failure(_ what: String, _ path: [CChar]) -> GitError {
        .fileSystem("cannot \(what) \(display(path)): \(String(cString: strerror(errno)))")
    }

    /// A NUL-terminated path, for messages.
    static func display(_ path: [CChar]) -> String {
        String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The first failure of the workers; the others stop at their next chunk.
    private final class Failures: Sendable {
        private let errors = Mutex<[GitError]>([])

        func add(_ error: GitError) { errors.withLock { $0.append(error) } }
        var any: Bool { errors.withLock { !$0.isEmpty } }
        var error: GitError? {
            errors.withLock { errors in
                guard let first = errors.first else { return nil }
                guard errors.count > 1 else { return first }
                return .fileSystem("checking out failed: " + errors.map(\.description).joined(separator: "; "))
            }
        }
    }
}

/// What decides how blobs are written: whether any filter could apply, whether symbolic
/// links are made as links.
struct CheckoutSettings: Sendable {
    var filters: Bool
    var symbolicLinks: Bool

    init(_ repository: Repository, entries: [WorktreeCheckout.Entry]) throws(GitError) {
        let config = try ConfigHandle.make("reading the repository's configuration") {
            git_repository_config_snapshot(&$0, repository.pointer)
        }
        func flag(_ name: String) -> Bool? {
            var value: Int32 = 0
            return git_config_get_bool(&value, config.pointer, name) == 0 ? value != 0 : nil
        }
        symbolicLinks = flag("core.symlinks") ?? true
        let attributes = Array(".gitattributes".utf8CString)
        let slash = CChar(bitPattern: UInt8(ascii: "/"))
        let inTree = entries.contains { entry in
            entry.path.count >= attributes.count && entry.path.suffix(attributes.count).elementsEqual(attributes)
                && (entry.path.count == attributes.count || entry.path[entry.path.count - attributes.count - 1] == slash)
        }
        var files = [repository.commonDirectory.appendingPathComponent("info/attributes").path, "/etc/gitattributes"]
        var configured = git_buf()
        defer { git_buf_dispose(&configured) }
        if git_config_get_path(&configured, config.pointer, "core.attributesfile") == 0, let path = configured.ptr {
            files.append(String(cString: path))
        }
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty { files.append(xdg + "/git/attributes") }
        if let home = environment["HOME"], !home.isEmpty { files.append(home + "/.config/git/attributes") }
        filters = inTree || flag("core.autocrlf") == true || files.contains { FileSystem.exists($0) }
    }
}

enum BlobKind: HandleKind { static func free(_ p: OpaquePointer) { git_blob_free(p) } }
