import Foundation
import PatinaSandbox

/// The check's warm caches: the same caches the agent had, each seen through an overlay
/// (patina as root mounts it): the cache is read warm and never written, what the check's
/// tools write (lock files, what they download) goes to the run's scratch and is removed
/// with the overlay once the check's container is gone. Without root there is no overlay,
/// and the check runs with no cache (a note says so).
struct CheckCaches {
    var mounts: [Mount] = []
    var environment: [String: String] = [:]
    var notes: [String] = []

    /// Mounts an overlay of each cache the agent held (`lease`) under `root`:
    /// `<root>/<name>/{upper,work,view}`, the view and upper owned by the agent's uid.
    static func mount(_ lease: CacheLease?, under root: URL, uid: UInt32, gid: UInt32) -> CheckCaches {
        var caches = CheckCaches()
        guard let lease, !lease.mounts.isEmpty else { return caches }
        guard getuid() == 0 else {
            caches.notes.append("the check runs without the warm caches: an overlay of them (read warm, written nowhere) needs patina to run as root")
            return caches
        }
        let fm = FileManager.default
        for mount in lease.mounts {
            guard let cache = WarmCache.all.first(where: { $0.target == mount.target }) else { continue }
            let dir = root.appendingPathComponent(cache.name)
            let upper = dir.appendingPathComponent("upper"), work = dir.appendingPathComponent("work"), view = dir.appendingPathComponent("view")
            do {
                for url in [upper, work, view] { try fm.createDirectory(at: url, withIntermediateDirectories: true) }
                // The overlay's top directory is upper's: the agent's uid writes there as in its own cache.
                for url in [upper, view] { _ = lchown(url.path, uid, gid) }
                try OverlayMount.mount(lower: URL(fileURLWithPath: mount.source), upper: upper, work: work, at: view)
            } catch {
                caches.notes.append("the check runs without the \(cache.name) cache: \(error)")
                continue
            }
            caches.mounts.append(Mount(source: view.path, target: cache.target, readOnly: false))
            caches.environment.merge(cache.environment) { $1 }
        }
        return caches
    }

    /// Detaches every overlay below `root` and removes it with what the check wrote.
    /// True when nothing stays mounted there.
    @discardableResult
    static func remove(under root: URL) -> Bool {
        var left = MountTable.points(under: root)
        // A mount stacked on another at one point takes one detach each.
        for _ in 0..<3 where !left.isEmpty {
            for point in left { IdmappedMount.detach(URL(fileURLWithPath: point)) }
            left = MountTable.points(under: root)
        }
        if left.isEmpty { try? FileManager.default.removeItem(at: root) }
        return left.isEmpty
    }
}
