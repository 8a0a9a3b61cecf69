import Foundation

/// Hands directories to the agent's uid for the run and back afterwards, when
/// patina runs as root (the agent itself never runs as root). The tree is the
/// agent's: it is walked through directory descriptors opened with O_NOFOLLOW and
/// changed with fchownat(AT_SYMLINK_NOFOLLOW), so no link the agent planted, at any
/// depth, makes patina change a file outside the tree.
public enum Ownership {
    public static func change(_ url: URL, uid: UInt32, gid: UInt32) {
        change(url, uid: uid, gid: gid, eachFile: nil)
    }

    /// A file (anything but a directory) met by the walk: its directory's descriptor, its
    /// name there, its path relative to the root (no leading slash, NUL-terminated).
    typealias FileVisitor = (_ directory: Int32, _ name: UnsafePointer<CChar>, _ relative: [CChar]) -> Void

    /// With `eachFile`, files are not changed by the walk: `eachFile` is called instead
    /// (and changes them itself); directories are changed as usual.
    static func change(_ url: URL, uid: UInt32, gid: UInt32, eachFile: FileVisitor?) {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            // A file (the gitfile) or a link: lchown never follows the last component,
            // and the parents are patina's own run directory.
            _ = lchown(url.path, uid, gid)
            return
        }
        _ = fchown(fd, uid, gid)
        walk(fd, prefix: [], uid: uid, gid: gid, depth: 0, eachFile: eachFile)
        close(fd)
    }

    /// The same walk on `lanes` threads at once: the root's files on the calling thread,
    /// its subdirectories shared out between the lanes. `eachFile` gets the lane's number
    /// and must be safe to call from several threads at once (one lane each).
    static func change(
        _ url: URL, uid: UInt32, gid: UInt32, lanes: Int,
        eachFile: @escaping @Sendable (_ lane: Int, _ directory: Int32, _ name: UnsafePointer<CChar>, _ relative: [CChar]) -> Void
    ) {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            _ = lchown(url.path, uid, gid)
            return
        }
        defer { close(fd) }
        _ = fchown(fd, uid, gid)
        // The root's entries: files visited here, directories handed to the lanes by name,
        // each opened (O_NOFOLLOW, so a link is never one) only when its lane gets to it:
        // 21,000 directories at the root never hold 21,000 descriptors.
        var subdirectories: [[CChar]] = []
        FileSystem.forEachEntry(in: fd) { name, type in
            let relative = Array(UnsafeBufferPointer(start: name, count: strlen(name) + 1))
            let mayBeDirectory = type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN)
            guard mayBeDirectory else { return eachFile(0, fd, name, relative) }
            subdirectories.append(relative)
        }
        let shares = (0..<max(1, lanes)).map { lane in
            stride(from: lane, to: subdirectories.count, by: max(1, lanes)).map { subdirectories[$0] }
        }
        DispatchQueue.concurrentPerform(iterations: shares.count) { lane in
            for relative in shares[lane] {
                let child = relative.withUnsafeBufferPointer { openat(fd, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                guard child >= 0 else {
                    relative.withUnsafeBufferPointer { eachFile(lane, fd, $0.baseAddress!, relative) }
                    continue
                }
                _ = relative.withUnsafeBufferPointer { fchownat(fd, $0.baseAddress!, uid, gid, AT_SYMLINK_NOFOLLOW) }
                let prefix = relative.dropLast() + [CChar(bitPattern: UInt8(ascii: "/"))]
                walk(child, prefix: Array(prefix), uid: uid, gid: gid, depth: 1) { directory, name, relative in
                    eachFile(lane, directory, name, relative)
                }
                close(child)
            }
        }
    }

    /// Directories deeper are left as they are: the walk holds two descriptors per level.
    static let maximumDepth = 256

    private static func walk(_ directory: Int32, prefix: [CChar], uid: UInt32, gid: UInt32, depth: Int, eachFile: FileVisitor?) {
        guard depth < maximumDepth else { return }
        FileSystem.forEachEntry(in: directory) { name, type in
            let mayBeDirectory = type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN)
            if let eachFile, !mayBeDirectory {
                eachFile(directory, name, prefix + UnsafeBufferPointer(start: name, count: strlen(name) + 1))
                return
            }
            _ = fchownat(directory, name, uid, gid, AT_SYMLINK_NOFOLLOW)
            guard mayBeDirectory else { return }
            let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else {
                // DT_UNKNOWN and not a directory after all.
                if let eachFile { eachFile(directory, name, prefix + UnsafeBufferPointer(start: name, count: strlen(name) + 1)) }
                return
            }
            let childPrefix = eachFile == nil ? [] : prefix + UnsafeBufferPointer(start: name, count: strlen(name)) + [CChar(bitPattern: UInt8(ascii: "/"))]
            walk(child, prefix: childPrefix, uid: uid, gid: gid, depth: depth + 1, eachFile: eachFile)
            close(child)
        }
    }
}
