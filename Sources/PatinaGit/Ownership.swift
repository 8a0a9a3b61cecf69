import Foundation

/// Hands directories to the agent's uid for the run and back afterwards, when
/// patina runs as root (the agent itself never runs as root). The tree is the
/// agent's: it is walked through directory descriptors opened with O_NOFOLLOW and
/// changed with fchownat(AT_SYMLINK_NOFOLLOW), so no link the agent planted, at any
/// depth, makes patina change a file outside the tree.
enum Ownership {
    static func change(_ url: URL, uid: UInt32, gid: UInt32) {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            // A file (the gitfile) or a link: lchown never follows the last component,
            // and the parents are patina's own run directory.
            _ = lchown(url.path, uid, gid)
            return
        }
        _ = fchown(fd, uid, gid)
        walk(fd, uid: uid, gid: gid, depth: 0)
        close(fd)
    }

    private static func walk(_ directory: Int32, uid: UInt32, gid: UInt32, depth: Int) {
        guard depth < 512 else { return }
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
                    if strcmp(name, ".") == 0 || strcmp(name, "..") == 0 { return }
                    _ = fchownat(directory, name, uid, gid, AT_SYMLINK_NOFOLLOW)
                    guard type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN) else { return }
                    let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard child >= 0 else { return }
                    walk(child, uid: uid, gid: gid, depth: depth + 1)
                    close(child)
                }
            }
        }
    }
}
