import Foundation
import PatinaSandbox
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A package manager's download cache, kept per repository under patina's home
/// and mounted into the runs of that repository, so a second run does not
/// download again. Never a path into the host user's own caches.
public struct WarmCache: Sendable, Equatable {
    public let name: String
    /// Where it appears in the sandbox, and the variables that point the tool there.
    public let target: String
    public let environment: [String: String]
    /// The tool locks its cache itself, so concurrent runs may share it. Otherwise one
    /// run at a time holds it and the others get a private, empty one.
    public let shared: Bool

    static let root = "/patina/cache"

    public static let all: [WarmCache] = [
        WarmCache(name: "pip", target: "\(root)/pip", environment: ["PIP_CACHE_DIR": "\(root)/pip"], shared: true),
        // The cache is on another filesystem than any environment uv fills: copy, say nothing.
        WarmCache(name: "uv", target: "\(root)/uv", environment: ["UV_CACHE_DIR": "\(root)/uv", "UV_LINK_MODE": "copy"], shared: true),
        WarmCache(name: "npm", target: "\(root)/npm", environment: ["npm_config_cache": "\(root)/npm"], shared: true),
        WarmCache(name: "pnpm", target: "\(root)/pnpm", environment: ["npm_config_store_dir": "\(root)/pnpm"], shared: true),
        // yarn 1 does not lock its cache: one run at a time.
        WarmCache(name: "yarn", target: "\(root)/yarn", environment: ["YARN_CACHE_FOLDER": "\(root)/yarn"], shared: false),
        // cargo locks its whole home (registry index, crates, git checkouts), so the home is the cache.
        WarmCache(name: "cargo", target: "\(root)/cargo", environment: ["CARGO_HOME": "\(root)/cargo"], shared: true),
        // Module files are read-only by default; -modcacherw lets `patina cache clear` remove them.
        WarmCache(name: "go", target: "\(root)/go", environment: ["GOMODCACHE": "\(root)/go", "GOFLAGS": "-modcacherw"], shared: true),
        WarmCache(name: "swiftpm", target: "\(RunLayout.containerHome)/.cache/org.swift.swiftpm", environment: [:], shared: true),
    ]

    public static func named(_ name: String) -> WarmCache? { all.first { $0.name == name } }
}

/// The warm caches of one repository: `<patina home>/repos/<repo>/cache/<name>`.
/// Each has a lock file beside it (out of the sandbox's reach): runs hold it shared,
/// or exclusive for a cache its tool does not lock; `patina cache clear` needs it exclusive.
public struct CacheStore: Sendable {
    public let root: URL

    public init(store: RunStore) {
        root = store.root.appendingPathComponent("cache")
    }

    public func directory(_ name: String) -> URL { root.appendingPathComponent(name) }
    func lockFile(_ name: String) -> URL { root.appendingPathComponent(".locks/\(name).lock") }

    public struct Entry: Sendable, Codable, Equatable {
        public var name: String
        public var path: String
        public var bytes: Int64
        public var files: Int
        public var inUse: Bool

        enum CodingKeys: String, CodingKey {
            case name, path, bytes, files
            case inUse = "in_use"
        }
    }

    /// The caches that exist, with their sizes.
    public func list() -> [Entry] {
        WarmCache.all.compactMap { cache in
            let dir = directory(cache.name)
            guard FileManager.default.fileExists(atPath: dir.path) else { return nil }
            let (bytes, files) = Self.size(of: dir)
            return Entry(name: cache.name, path: dir.path, bytes: bytes, files: files, inUse: !canLockExclusively(cache.name))
        }
    }

    /// Empties the named caches (all when `names` is empty); a cache a run in flight holds is left alone.
    public func clear(_ names: [String]) throws -> (cleared: [String], busy: [String]) {
        for name in names where WarmCache.named(name) == nil {
            throw PlanError("unknown cache \"\(name)\" (caches: \(WarmCache.all.map(\.name).joined(separator: ", ")))")
        }
        var cleared: [String] = [], busy: [String] = []
        for cache in WarmCache.all where names.isEmpty || names.contains(cache.name) {
            let dir = directory(cache.name)
            guard FileManager.default.fileExists(atPath: dir.path) else { continue }
            guard let lock = try? FileLock(lockFile(cache.name), exclusive: true) else {
                busy.append(cache.name)
                continue
            }
            defer { lock.release() }
            // removeItem does not follow links: whatever a run left in there, only the cache goes.
            for child in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] {
                try FileManager.default.removeItem(at: dir.appendingPathComponent(child))
            }
            cleared.append(cache.name)
        }
        return (cleared, busy)
    }

    func canLockExclusively(_ name: String) -> Bool {
        guard let lock = try? FileLock(lockFile(name), exclusive: true) else { return false }
        lock.release()
        return true
    }

    /// Takes the caches for one run: locks, directories (owned by the agent's uid when patina
    /// is root), mounts and variables. A cache it cannot hold comes as a private empty one
    /// in `privateRoot`, said in `notes`.
    func lease(_ names: [String], privateRoot: URL, uid: UInt32, gid: UInt32) throws -> CacheLease {
        var lease = CacheLease.Parts()
        let fm = FileManager.default
        for name in names {
            guard let cache = WarmCache.named(name) else { continue }
            var source = directory(name)
            if let lock = try? FileLock(lockFile(name), exclusive: !cache.shared) {
                lease.locks.append(lock)
            } else {
                source = privateRoot.appendingPathComponent(name)
                lease.privateDirectories.append(source)
                lease.notes.append("\(name) cache: another run holds it (\(cache.shared ? "being cleared" : "its tool does not lock it, so one run at a time")); this run gets an empty one of its own")
            }
            try fm.createDirectory(at: source, withIntermediateDirectories: true)
            if getuid() == 0 { _ = lchown(source.path, uid, gid) }
            lease.mounts.append(Mount(source: source.path, target: cache.target, readOnly: false))
            lease.environment.merge(cache.environment) { $1 }
            lease.used.append(name)
        }
        return CacheLease(lease)
    }

    /// Bytes and files below `url`, links not followed.
    static func size(of url: URL) -> (Int64, Int) {
        var bytes: Int64 = 0, files = 0
        guard let walker = FileManager.default.enumerator(atPath: url.path) else { return (0, 0) }
        while let relative = walker.nextObject() as? String {
            var info = stat()
            guard lstat(url.appendingPathComponent(relative).path, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFREG {
                bytes += Int64(info.st_blocks) * 512
                files += 1
            }
        }
        return (bytes, files)
    }
}

/// The caches a run holds, released when the run is collected.
final class CacheLease: Sendable {
    /// What `CacheStore.lease` gathers, cache by cache.
    struct Parts {
        var locks: [FileLock] = []
        var mounts: [Mount] = []
        var environment: [String: String] = [:]
        var used: [String] = []
        var privateDirectories: [URL] = []
        var notes: [String] = []
    }

    let locks: [FileLock]
    let mounts: [Mount]
    let environment: [String: String]
    let used: [String]
    let privateDirectories: [URL]
    let notes: [String]
    private let released = Mutex(false)

    init(_ parts: Parts) {
        locks = parts.locks
        mounts = parts.mounts
        environment = parts.environment
        used = parts.used
        privateDirectories = parts.privateDirectories
        notes = parts.notes
    }

    /// Gives the caches back, once.
    func release() {
        guard released.withLock({ released in defer { released = true }; return !released }) else { return }
        for lock in locks { lock.release() }
        for dir in privateDirectories { try? FileManager.default.removeItem(at: dir) }
    }
}

/// An flock(2) lock on a file, held until released (or until patina exits).
final class FileLock: Sendable {
    /// -1 once released: the descriptor is closed exactly once.
    private let descriptor: Mutex<Int32>

    struct Busy: Error {}

    init(_ url: URL, exclusive: Bool) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Busy() }
        guard flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 else {
            close(fd)
            throw Busy()
        }
        descriptor = Mutex(fd)
    }

    func release() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            close(fd)
            fd = -1
        }
    }

    deinit { release() }
}
