import Foundation

/// Free space, as an unprivileged writer sees it (`statvfs`: `f_bavail`).
public struct DiskSpace: Sendable, Equatable {
    public var device: UInt64
    public var freeBytes: Int
    public var totalBytes: Int

    /// The filesystem holding `url`, or its nearest existing ancestor (a worktree not made yet).
    public static func of(_ url: URL) -> DiskSpace? {
        var path = url.standardizedFileURL.path
        while true {
            var info = stat()
            var fs = statvfs()
            if stat(path, &info) == 0, statvfs(path, &fs) == 0 {
                let block = Int(fs.f_frsize == 0 ? fs.f_bsize : fs.f_frsize)
                return DiskSpace(device: UInt64(info.st_dev), freeBytes: Int(fs.f_bavail) * block, totalBytes: Int(fs.f_blocks) * block)
            }
            guard path != "/", !path.isEmpty else { return nil }
            path = (path as NSString).deletingLastPathComponent
        }
    }

    /// Where the filesystem holding `path` is mounted: the last ancestor on the same device.
    public static func mountPoint(of url: URL) -> String {
        var path = url.standardizedFileURL.path
        var info = stat()
        while stat(path, &info) != 0 {
            guard path != "/" else { return "/" }
            path = (path as NSString).deletingLastPathComponent
        }
        let device = info.st_dev
        while path != "/" {
            let parent = (path as NSString).deletingLastPathComponent
            var up = stat()
            guard stat(parent, &up) == 0, up.st_dev == device else { break }
            path = parent
        }
        return path
    }
}

/// The disk floor of a run: the filesystems holding its worktree and patina's home, each
/// checked against `--min-free`.
public struct DiskFloorWatch: Sendable {
    public var places: [(holds: String, url: URL)]
    public var floor: DiskFloor

    public init(places: [(holds: String, url: URL)], floor: DiskFloor) {
        self.places = places
        self.floor = floor
    }

    public init(plan: RunPlan) {
        self.init(places: [("the run's worktree", plan.worktree), ("patina's home", plan.store.root)], floor: plan.disk.floor)
    }

    /// The first filesystem below its floor, if any (each filesystem once). `reserve`: for a
    /// run about to start, the room it will hold for its records, needed on top of the floor.
    public func shortage(reserve: Int = 0) -> DiskShortage? {
        if floor == .bytes(0) { return nil }
        var seen = Set<UInt64>()
        for place in places {
            // A filesystem that reports no size (ramfs) says nothing about its free space.
            guard let space = DiskSpace.of(place.url), space.totalBytes > 0, seen.insert(space.device).inserted else { continue }
            let floorBytes = floor.bytes(ofFilesystem: space.totalBytes)
            if space.freeBytes < floorBytes + reserve {
                return DiskShortage(holds: place.holds, path: place.url.path, filesystem: DiskSpace.mountPoint(of: place.url),
                                    freeBytes: space.freeBytes, floorBytes: floorBytes, totalBytes: space.totalBytes,
                                    reserveBytes: reserve > 0 ? reserve : nil)
            }
        }
        return nil
    }

    /// Until cancelled: every `interval` seconds, asks `control` to stop the run once a
    /// filesystem is below its floor.
    func watch(_ control: RunControl, interval: Double = 0.2) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                if let shortage = shortage() {
                    await control.stop(.diskLow(shortage))
                    return
                }
                try? await Task.sleep(nanoseconds: UInt64(interval * 1_000_000_000))
            }
        }
    }
}

/// A few megabytes held in the run directory from the start, given back when the disk runs
/// out, so that patina's own records (run.json, session.md) can still be written.
struct DiskReserve {
    static let bytes = 8 << 20
    let url: URL

    /// Really allocated (`posix_fallocate`), not a sparse promise; best effort.
    func hold() {
        let fd = open(url.path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        if posix_fallocate(fd, 0, off_t(Self.bytes)) != 0 { _ = unlink(url.path) }
    }

    func release() {
        _ = unlink(url.path)
    }
}

/// What a directory takes on disk: allocated blocks (`st_blocks` × 512, so a sparse file
/// counts what it really holds), each hard-linked file once, links never followed, other
/// filesystems never entered.
public enum DiskUsage {
    public static func allocated(_ url: URL) -> Int {
        var root = stat()
        guard lstat(url.path, &root) == 0 else { return 0 }
        var total = 0
        var seen = Set<[UInt64]>()
        var directories: [String] = []
        func count(_ info: stat, _ path: String) {
            let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
            if info.st_nlink > 1 && !isDirectory {
                guard seen.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else { return }
            }
            total += Int(info.st_blocks) * 512
            if isDirectory && info.st_dev == root.st_dev { directories.append(path) }
        }
        count(root, url.path)
        while let directory = directories.popLast() {
            // O_NOFOLLOW: a directory swapped for a link meanwhile is not entered.
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0, let stream = fdopendir(fd) else {
                if fd >= 0 { close(fd) }
                continue
            }
            defer { closedir(stream) }
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                var info = stat()
                guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                count(info, directory + "/" + name)
            }
        }
        return total
    }
}
