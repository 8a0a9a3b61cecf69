import Foundation

/// Hands directories to the agent's uid for the run and back afterwards, when
/// patina runs as root (the agent itself never runs as root).
enum Ownership {
    static func change(_ url: URL, uid: UInt32, gid: UInt32) {
        _ = lchown(url.path, uid, gid)
        guard let walker = FileManager.default.enumerator(atPath: url.path) else { return }
        while let relative = walker.nextObject() as? String {
            _ = lchown(url.appendingPathComponent(relative).path, uid, gid)
        }
    }
}
