import Foundation
import PatinaSandbox

/// Reads a file the agent may have shaped (a transcript truncated to 1 GB, sparse; a log
/// with one endless line) line by line in bounded memory: blocks of 1 MB, each line cut at
/// `lineLimit` (`LineSplitter`), at most `byteLimit` bytes read.
enum LineFile {
    struct Reading {
        /// The file's size (its apparent size: a sparse file's holes count).
        var size: Int
        /// How much of it was read.
        var read: Int
        var truncated: Bool { read < size }
    }

    static let blockSize = 1 << 20

    /// Whether the file's last byte is "\n" (false for an empty file).
    static func endsWithNewline(_ url: URL) -> Bool {
        let fd = open(url.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return false }
        var last: UInt8 = 0
        return pread(fd, &last, 1, info.st_size - 1) == 1 && last == 0x0A
    }

    /// Calls `body` with each line (without its "\n"). Regular files only, never through a
    /// symbolic link.
    static func forEachLine(
        of url: URL, byteLimit: Int = .max, lineLimit: Int = Command.lineLimit, _ body: (String) -> Void
    ) throws -> Reading {
        let fd = open(url.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw LineFileError(path: url.path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw LineFileError(path: url.path, reason: "not a regular file")
        }
        var splitter = LineSplitter(limit: lineLimit)
        var block = [UInt8](repeating: 0, count: blockSize)
        var read = 0
        while read < byteLimit {
            let wanted = min(block.count, byteLimit - read)
            let count = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, wanted) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LineFileError(path: url.path, reason: String(cString: strerror(errno)))
            }
            if count == 0 { break }
            read += count
            block.withUnsafeBytes { splitter.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count]), body) }
        }
        splitter.finish(body)
        return Reading(size: max(Int(info.st_size), read), read: read)
    }
}

struct LineFileError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot read \(path): \(reason)" }
}

/// Writes lines through a buffer: one `write` per megabyte, not per line.
final class LineWriter {
    private let handle: FileHandle
    private var buffer = Data()

    init(creating url: URL) throws {
        try? FileManager.default.removeItem(at: url)
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw LineFileError(path: url.path, reason: "cannot create it")
        }
        handle = try FileHandle(forWritingTo: url)
    }

    func write(_ line: String) throws {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count >= LineFile.blockSize { try flush() }
    }

    func close() throws {
        try flush()
        try handle.close()
    }

    private func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
