import CPatinaShim
import Foundation
import Synchronization

/// What changed in a worktree while a run's containers used it, as the kernel saw it
/// (inotify, from outside the sandbox): collection then reads those paths only, not the
/// whole tree. The agent cannot hide a change from it: every creation, write, close after
/// writing, attribute change, removal and rename of an entry of a watched directory is
/// reported, whatever process made it.
///
/// Where the names alone cannot say what changed, the answer is "everything" (collection
/// then reads the whole tree, as without a watch): the kernel's queue overflowed, a
/// directory was renamed (the names under it moved), or a watch could not be added. A
/// directory created during the run is reported as a whole (nothing under it is watched):
/// collection reads all of it. A file that has another name (a hard link) when collection
/// reads it makes collection read everything too (`Collector`), since a write through one
/// name is reported under that name only. Left: a hard link made, written through and
/// removed again before collection changes a file under a name never reported; the change
/// then stays in the worktree, uncommitted, and the next collection or `git status` sees it.
public final class WorktreeWatch: Sendable {
    /// Paths relative to the worktree, as bytes (no trailing NUL); a directory stands for
    /// everything under it.
    public enum Changes: Sendable, Equatable {
        case paths(Set<[UInt8]>)
        case everything(String)
    }

    private let feed: Feed

    static let mask: UInt32 = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE
        | IN_MOVED_FROM | IN_MOVED_TO | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)

    /// Watches every directory of `worktree` (nested repositories' too), then reads the
    /// kernel's reports on a thread of its own until `finish()`. Nil when inotify is not
    /// available; a directory that cannot be watched makes the answer "everything".
    public init?(worktree: URL) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let root = open(worktree.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else {
            close(fd)
            return nil
        }
        var directories: [Int32: [UInt8]] = [:]
        var failure: String?
        Self.watchTree(root, path: worktree.path, relative: [], depth: 0, fd: fd, into: &directories, failure: &failure)
        close(root)
        let feed = Feed(descriptor: fd, directories: directories, failure: failure)
        self.feed = feed
        let thread = Thread { feed.run() }
        thread.name = "patina-worktree-watch"
        thread.start()
    }

    deinit { _ = feed.finish() }

    /// Stops watching and returns what changed. Call once nothing can change the tree any
    /// more (the run's containers are gone): every change made until then has been queued
    /// by the kernel, and is read here.
    public func finish() -> Changes { feed.finish() }

    /// Deeper trees are not watched (the answer is "everything"): the walk holds two
    /// descriptors per level, and a worktree an earlier run left can be any depth.
    static let maximumDepth = 256

    /// Watches `directory` (open, at `path`) and every directory under it.
    private static func watchTree(
        _ directory: Int32, path: String, relative: [UInt8], depth: Int, fd: Int32,
        into directories: inout [Int32: [UInt8]], failure: inout String?
    ) {
        guard failure == nil else { return }
        guard depth < maximumDepth else {
            failure = "the worktree is more than \(maximumDepth) directories deep"
            return
        }
        let wd = inotify_add_watch(fd, path, mask)
        guard wd >= 0 else {
            failure = failure ?? "could not watch \(path): \(String(cString: strerror(errno)))"
            return
        }
        directories[wd] = relative
        FileSystem.forEachEntry(in: directory) { name, type in
            guard type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN) else { return }
            let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { return }
            defer { close(child) }
            let bytes = Array(UnsafeRawBufferPointer(start: name, count: strlen(name)))
            watchTree(child, path: path + "/" + String(cString: name), relative: relative.isEmpty ? bytes : relative + [0x2F] + bytes,
                      depth: depth + 1, fd: fd, into: &directories, failure: &failure)
        }
    }
}

/// The watch's descriptor and what it learnt, shared with its reading thread.
private final class Feed: Sendable {
    let descriptor: Int32
    let state: Mutex<State>

    struct State {
        var directories: [Int32: [UInt8]]
        var paths: Set<[UInt8]> = []
        var everything: String?
        var stopping = false
    }

    init(descriptor: Int32, directories: [Int32: [UInt8]], failure: String?) {
        self.descriptor = descriptor
        state = Mutex(State(directories: directories, everything: failure))
    }

    deinit { close(descriptor) }

    /// The reading thread's loop: what the kernel queued is read and handled under the
    /// lock (the descriptor does not block), so `finish` never misses a batch in flight.
    func run() {
        while state.withLock({ drain(&$0) }) {
            _ = patina_epoll_wait_readable(descriptor, 100)
        }
    }

    /// Stops the reading thread (it ends at its next wake-up) and reads the rest.
    func finish() -> WorktreeWatch.Changes {
        state.withLock {
            _ = drain(&$0)
            $0.stopping = true
            return $0.everything.map(WorktreeWatch.Changes.everything) ?? .paths($0.paths)
        }
    }

    /// Reads until nothing is queued; false once stopping.
    private func drain(_ state: inout State) -> Bool {
        guard !state.stopping else { return false }
        let size = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let count = Glibc.read(descriptor, buffer, size)
            if count > 0 {
                handle(UnsafeRawBufferPointer(start: buffer, count: count), &state)
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return true
            }
        }
    }

    private func handle(_ events: UnsafeRawBufferPointer, _ state: inout State) {
        var offset = 0
        let header = MemoryLayout<inotify_event>.size
        while offset + header <= events.count {
            let wd = events.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = events.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let length = Int(events.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameBytes = events[(offset + header)..<min(events.count, offset + header + length)].prefix { $0 != 0 }
            offset += header + length
            if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                state.everything = state.everything ?? "the kernel's queue of changes overflowed"
                continue
            }
            if mask & UInt32(IN_IGNORED | IN_DELETE_SELF) != 0 { continue }
            if mask & UInt32(IN_MOVE_SELF | IN_UNMOUNT) != 0 {
                state.everything = state.everything ?? "a directory was renamed"
                continue
            }
            // An event on a directory itself is reported to its parent too, with its name.
            guard let directory = state.directories[wd], !nameBytes.isEmpty else { continue }
            let path = directory.isEmpty ? Array(nameBytes) : directory + [UInt8(ascii: "/")] + nameBytes
            if mask & UInt32(IN_ISDIR) != 0 && mask & UInt32(IN_MOVED_FROM | IN_MOVED_TO) != 0 {
                state.everything = state.everything ?? "a directory was renamed"
                continue
            }
            state.paths.insert(path)
        }
    }
}
