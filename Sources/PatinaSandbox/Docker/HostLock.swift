import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock shared by every patina process on this host (`flock` on a file in
/// the host's own temporary directory, never on a shared filesystem): several Slurm tasks
/// starting on one node build a missing image once. Released when the owner goes.
public final class HostLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }

    /// Waits (polling, so no thread blocks) until the lock named `name` is this process's.
    /// The folder is this user's own (`patina-locks-<uid>`, 0700, checked to be a folder it
    /// owns): another user of a shared node can neither block it nor plant a link in it.
    public static func acquire(_ name: String, directory: URL? = nil) async throws -> HostLock {
        let directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("patina-locks-\(getuid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var info = stat()
        guard lstat(directory.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid(), info.st_mode & 0o022 == 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: directory.path,
                                                               NSLocalizedDescriptionKey: "\(directory.path) is not a folder of this user's only: remove it"])
        }
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" })
        let path = directory.appendingPathComponent(safe + ".lock").path
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        let lock = HostLock(descriptor: descriptor)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        return lock
    }
}
