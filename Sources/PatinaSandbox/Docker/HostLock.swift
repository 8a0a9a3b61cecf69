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
    public static func acquire(_ name: String, directory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("patina-locks")) async throws -> HostLock {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" })
        let path = directory.appendingPathComponent(safe + ".lock").path
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        let lock = HostLock(descriptor: descriptor)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        return lock
    }
}
