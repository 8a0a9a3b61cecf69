import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File operations PatinaGit needs, with errors as `GitError`.
enum FileSystem {
    /// Whether anything (even a dangling symlink) is at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether two paths name the same place once symlinks are resolved.
    static func samePath(_ a: String, _ b: String) -> Bool {
        canonical(a) == canonical(b)
    }

    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else {
            return URL(fileURLWithPath: path).standardizedFileURL.path
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func createDirectory(_ url: URL) throws(GitError) {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw .fileSystem("cannot create \(url.path): \(reason(error))")
        }
    }

    /// A new directory only this user can enter; fails if anything is already there.
    static func createPrivateDirectory(_ url: URL) throws(GitError) {
        guard mkdir(url.path, 0o700) == 0 else {
            throw .fileSystem("cannot create \(url.path): \(String(cString: strerror(errno)))")
        }
    }

    static func write(_ text: String, to url: URL) throws(GitError) {
        try write(Data(text.utf8), to: url)
    }

    static func write(_ data: Data, to url: URL) throws(GitError) {
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw .fileSystem("cannot write \(url.path): \(reason(error))")
        }
    }

    static func read(_ url: URL) throws(GitError) -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            throw .fileSystem("cannot read \(url.path): \(reason(error))")
        }
    }

    /// Deletes a tree the agent wrote, also when it left directories without write
    /// permission. Symbolic links are removed, never followed.
    static func removeTree(_ url: URL) throws(GitError) {
        let path = url.path
        guard exists(path) else { return }
        if (try? FileManager.default.removeItem(atPath: path)) != nil { return }
        makeRemovable(path)
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            // A tree deeper than Foundation's path limit (an agent's `mkdir -p d/d/d/…`):
            // rm walks it by descriptors, and stays on this filesystem (a view still mounted
            // in it is refused, never removed through).
            guard DeepRemoval.remove(path) else { throw .fileSystem("cannot remove \(path): \(reason(error))") }
        }
    }

    private static func makeRemovable(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return }
        _ = chmod(path, (info.st_mode & 0o7777) | 0o700)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            makeRemovable(path + "/" + name)
        }
    }

    /// Every entry of the open directory `directory` but "." and "..", with its `d_type`
    /// (DT_UNKNOWN where the filesystem does not say), read through a duplicate descriptor:
    /// `directory` stays open for `openat` and the like.
    static func forEachEntry(in directory: Int32, _ body: (_ name: UnsafePointer<CChar>, _ type: UInt8) -> Void) {
        let copy = dup(directory)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return
        }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let type = entry.pointee.d_type
            withUnsafePointer(to: entry.pointee.d_name) { tuple in
                tuple.withMemoryRebound(to: CChar.self, capacity: 256) { name in
                    if strcmp(name, ".") != 0 && strcmp(name, "..") != 0 { body(name, type) }
                }
            }
        }
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? CocoaError, let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError,
           underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return (error as NSError).localizedDescription
    }
}

/// An open directory in a tree the agent controls (the sandbox's git directory, the
/// worktree), read without ever following a symbolic link: every step is an `openat` with `O_NOFOLLOW`
/// relative to the previous directory, so a link planted anywhere on the way is refused,
/// and a FIFO or device is refused instead of blocking the read.
final class UntrustedDirectory {
    private let descriptor: Int32
    /// Path for messages, relative to the sandbox's git directory.
    let displayPath: String

    private init(descriptor: Int32, displayPath: String) {
        self.descriptor = descriptor
        self.displayPath = displayPath
    }

    deinit {
        close(descriptor)
    }

    /// Opens the top directory; it must be a real directory, not a symbolic link.
    static func open(_ url: URL) throws(GitError) -> UntrustedDirectory {
        let path = url.path
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            var info = stat()
            let isLink = lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
            throw failure(code, path, isLink: isLink, expecting: "a directory")
        }
        return UntrustedDirectory(descriptor: fd, displayPath: path)
    }

    /// The subdirectory `name`; `nil` when it does not exist.
    func directory(_ name: String) throws(GitError) -> UntrustedDirectory? {
        try Self.validate(name, in: displayPath)
        let fd = openat(descriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw Self.failure(errno, child(name), isLink: isLink(name), expecting: "a directory")
        }
        return UntrustedDirectory(descriptor: fd, displayPath: child(name))
    }

    /// Whether the subdirectory `name` can be listed and entered by this process.
    func canEnter(_ name: String) -> Bool {
        faccessat(descriptor, name, R_OK | X_OK, AT_EACCESS) == 0
    }

    /// The contents of the regular file `name`; `nil` when it does not exist.
    func readFile(_ name: String, limit: Int) throws(GitError) -> [UInt8]? {
        guard let fd = try openFile(name) else { return nil }
        defer { close(fd) }
        var contents = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .fileSystem("cannot read \(child(name)): \(String(cString: strerror(errno)))")
            }
            if count == 0 { return contents }
            contents.append(contentsOf: chunk[0..<count])
            if contents.count > limit {
                throw .unsafeSandboxGitDirectory("\(child(name)) is larger than \(limit) bytes")
            }
        }
    }

    /// Copies the regular file `name` to a new file at `destination`; returns its size.
    /// Throws `collectionLimit` once more than `limit` bytes were read (the file's size as
    /// it claims it is checked first: a sparse file is not copied at all).
    @discardableResult
    func copyFile(_ name: String, to destination: String, limit: Int = .max) throws(GitError) -> Int {
        guard let input = try openFile(name) else {
            throw .fileSystem("\(child(name)) disappeared while it was being copied")
        }
        defer { close(input) }
        var info = stat()
        if fstat(input, &info) == 0, Int(info.st_size) > limit {
            throw .collectionLimit("\(child(name)) is \(info.st_size) bytes, more than the \(limit) left to import")
        }
        let output = Glibc.open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        guard output >= 0 else {
            throw .fileSystem("cannot create \(destination): \(String(cString: strerror(errno)))")
        }
        defer { close(output) }
        var chunk = [UInt8](repeating: 0, count: 1024 * 1024)
        var total = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .fileSystem("cannot read \(child(name)): \(String(cString: strerror(errno)))")
            }
            if count == 0 { return total }
            total += count
            if total > limit {
                throw .collectionLimit("\(child(name)) holds more than the \(limit) bytes left to import")
            }
            var written = 0
            while written < count {
                let result = chunk.withUnsafeBytes { Glibc.write(output, $0.baseAddress! + written, count - written) }
                if result < 0 {
                    if errno == EINTR { continue }
                    throw .fileSystem("cannot write \(destination): \(String(cString: strerror(errno)))")
                }
                written += result
            }
        }
    }

    enum Kind { case regular, directory, symbolicLink, other }

    /// The entries with their kinds (not following symbolic links).
    func entries() throws(GitError) -> [(name: String, kind: Kind)] {
        try entryNames().map { name in
            var info = stat()
            guard fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return (name, .other) }
            switch info.st_mode & S_IFMT {
            case S_IFREG: return (name, .regular)
            case S_IFDIR: return (name, .directory)
            case S_IFLNK: return (name, .symbolicLink)
            default: return (name, .other)
            }
        }
    }

    /// Names of the entries, without "." and "..".
    func entryNames() throws(GitError) -> [String] {
        let copy = dup(descriptor)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw .fileSystem("cannot list \(displayPath): \(String(cString: strerror(errno)))")
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names = [String]()
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    private func openFile(_ name: String) throws(GitError) -> Int32? {
        try Self.validate(name, in: displayPath)
        let fd = openat(descriptor, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw Self.failure(errno, child(name), isLink: isLink(name), expecting: "a regular file")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .unsafeSandboxGitDirectory("\(child(name)) is not a regular file")
        }
        return fd
    }

    private func child(_ name: String) -> String { displayPath + "/" + name }

    private func isLink(_ name: String) -> Bool {
        let code = errno
        defer { errno = code }
        var info = stat()
        return fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    private static func validate(_ name: String, in parent: String) throws(GitError) {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.utf8.contains(0) else {
            throw .unsafeSandboxGitDirectory("'\(name)' is not a plain file name (in \(parent))")
        }
    }

    private static func failure(_ code: Int32, _ path: String, isLink: Bool, expecting kind: String) -> GitError {
        if isLink { return .unsafeSandboxGitDirectory("\(path) is a symbolic link") }
        return switch code {
        case ELOOP, ENOTDIR: .unsafeSandboxGitDirectory("\(path) is not \(kind)")
        default: .fileSystem("cannot open \(path): \(String(cString: strerror(code)))")
        }
    }
}

/// Removes a tree however deep, by `rm -rf --one-file-system` (which walks it with
/// descriptors): for trees Foundation's path-based removal gives up on (ENAMETOOLONG).
public enum DeepRemoval {
    /// Whether `path` is gone afterwards.
    @discardableResult
    public static func remove(_ path: String) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/rm")
        process.arguments = ["-rf", "--one-file-system", "--", path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        var info = stat()
        return lstat(path, &info) != 0
    }
}
