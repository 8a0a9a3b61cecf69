import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a repository's store lies on disk. Everything a sandbox mounts (the worktree and its
/// idmapped view, the agent's home and git directory, the check's checkout, the warm caches,
/// the scripts) lives in the store, and a bind mount's source shows in the sandbox's
/// /proc/self/mountinfo as its path within its filesystem. So the store's files lie in a
/// neutral folder, `/var/lib/patina/stores/<opaque id>`, and `<patina home>/repos/<name>-<hash>`
/// is a link to it: the mount table names neither the user's home, the repository's name nor
/// patina's home, and every path patina keeps (records, `worktree`, `run_dir`) still holds.
///
/// Only where the neutral folder is on the same filesystem as patina's home (its space, hard
/// links and limits stay the user's choice) and patina may write there (root, or a folder
/// an administrator made writable). A store made before is moved there once, when none of
/// its runs is in flight; otherwise it stays where it is and keeps working.
///
/// Each neutral folder carries claims (`claim`): hard links of a file in the home whose link
/// points at it, so that `patina prune` can tell a folder whose home was deleted (`orphans`).
public enum StorePlacement {
    public static let neutralRoot = URL(fileURLWithPath: "/var/lib/patina/stores")

    public enum Outcome: Equatable, Sendable {
        /// The store is (now) a link to a neutral folder.
        case neutral(URL)
        /// The store stays a folder in patina's home, and why.
        case inPlace(String)
    }

    private static let lock = NSLock()

    /// Places `store` in the neutral folder when it can be; never fails a run.
    @discardableResult
    public static func place(_ store: RunStore, neutralRoot: URL = neutralRoot) -> Outcome {
        lock.lock()
        defer { lock.unlock() }
        let fm = FileManager.default
        let link = store.root.path
        var info = stat()
        if lstat(link, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            guard let target = try? fm.destinationOfSymbolicLink(atPath: link) else { return .inPlace("unreadable link") }
            // A neutral folder someone removed: the store starts again, empty.
            if !fm.fileExists(atPath: target) { try? fm.createDirectory(atPath: target, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
            claim(URL(fileURLWithPath: target), link: store.root)
            return .neutral(URL(fileURLWithPath: target))
        }
        let repositories = store.root.deletingLastPathComponent()
        do {
            try fm.createDirectory(at: repositories, withIntermediateDirectories: true)
            try fm.createDirectory(at: neutralRoot, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            return .inPlace("\(neutralRoot.path) cannot be made: \(error.localizedDescription)")
        }
        guard access(neutralRoot.path, W_OK | X_OK) == 0 else { return .inPlace("\(neutralRoot.path) is not writable") }
        var home = stat(), neutral = stat()
        guard stat(repositories.path, &home) == 0, stat(neutralRoot.path, &neutral) == 0, home.st_dev == neutral.st_dev else {
            return .inPlace("\(neutralRoot.path) is on another filesystem than patina's home")
        }
        let folder = neutralRoot.appendingPathComponent(randomID())
        let exists = lstat(link, &info) == 0
        if exists {
            guard (info.st_mode & S_IFMT) == S_IFDIR else { return .inPlace("\(link) is not a folder") }
            guard nothingInFlight(store) else { return .inPlace("runs of this repository are in flight") }
            guard rename(link, folder.path) == 0 else { return .inPlace("could not move the store: \(String(cString: strerror(errno)))") }
        } else {
            guard mkdir(folder.path, 0o700) == 0 else { return .inPlace("could not create \(folder.path): \(String(cString: strerror(errno)))") }
        }
        guard symlink(folder.path, link) == 0 else {
            // Another patina made the store meanwhile: this one's folder goes back (or away).
            if exists { _ = rename(folder.path, link) } else { rmdir(folder.path) }
            return place(unlocked: store)
        }
        claim(folder, link: store.root)
        return .neutral(folder)
    }

    private static func place(unlocked store: RunStore) -> Outcome {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: store.root.path) else {
            return .inPlace("another patina made the store a folder")
        }
        claim(URL(fileURLWithPath: target), link: store.root)
        return .neutral(URL(fileURLWithPath: target))
    }

    /// No run, shell or view of this repository's store is in use (a dead patina's included:
    /// those are recovered first, by the next command).
    public static func nothingInFlight(_ store: RunStore) -> Bool {
        let fm = FileManager.default
        for dir in [store.runningDirectory, store.pendingDirectory, store.root.appendingPathComponent("views"),
                    BatchStore(runs: store).runningDirectory] {
            if let entries = try? fm.contentsOfDirectory(atPath: dir.path), !entries.isEmpty { return false }
        }
        return true
    }

    /// 16 random hex digits: the folder's name says nothing of the repository.
    static func randomID() -> String {
        String(format: "%016llx", UInt64.random(in: .min ... .max))
    }
}
