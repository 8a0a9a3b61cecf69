import CPatinaShim
import Foundation

/// An idmapped view of a directory (Linux 5.12+, on filesystems that support it: ext4,
/// xfs, btrfs, tmpfs since 6.3): what `disk` owns on disk belongs to `view` when seen
/// through it, and what `view` creates through it is owned by `disk`. Mounted nosuid and
/// nodev. patina running as root mounts the agent's worktree this way, so the agent's uid
/// can work on root's files without a single file changing owner, before or after.
public enum IdmappedMount {
    public struct Failure: Error, CustomStringConvertible {
        public let step: String
        public let errno: Int32

        public init(step: String, errno: Int32) {
            self.step = step
            self.errno = errno
        }

        public var description: String { "\(step): \(String(cString: strerror(errno)))" }
    }

    /// Mounts the view of `source` at `target`, which must be an empty directory: through
    /// it, `disk` (uid, gid) is `view`.
    public static func mount(
        _ source: URL, at target: URL, disk: (uid: UInt32, gid: UInt32), view: (uid: UInt32, gid: UInt32)
    ) throws(Failure) {
        var stage: Int32 = 0
        let code = patina_idmapped_mount(source.path, target.path, disk.uid, disk.gid, view.uid, view.gid, &stage)
        guard code != 0 else { return }
        let step = switch stage {
        case Int32(PATINA_IDMAP_USERNS): "creating a user namespace"
        case Int32(PATINA_IDMAP_MAP): "writing its id map"
        case Int32(PATINA_IDMAP_CLONE): "cloning the mount of \(source.path)"
        case Int32(PATINA_IDMAP_SETATTR): "idmapping the mount of \(source.path)"
        default: "attaching it at \(target.path)"
        }
        throw Failure(step: step, errno: code)
    }

    /// Detaches whatever is mounted at `target` (lazily: it goes once nothing uses it).
    /// True when something was detached; false when nothing was mounted there.
    @discardableResult
    public static func detach(_ target: URL) -> Bool {
        patina_detach_mount(target.path) == 0
    }
}
