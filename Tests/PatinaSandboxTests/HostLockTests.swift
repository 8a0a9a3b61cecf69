import Foundation
import PatinaSandbox
import Synchronization
import Testing

/// The host-wide lock's folder is this user's own: another user of a shared node can
/// neither take it over nor plant a link in it.
@Suite struct HostLockTests {
    func scratch() throws -> URL {
        let top = FileManager.default.temporaryDirectory.appendingPathComponent("patina-hostlock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: top, withIntermediateDirectories: true)
        return top
    }

    @Test func twoHoldersTakeTurns() async throws {
        let top = try scratch()
        defer { try? FileManager.default.removeItem(at: top) }
        let folder = top.appendingPathComponent("locks")
        var first: HostLock? = try await HostLock.acquire("image-abc", directory: folder)
        let taken = Atomic<Bool>(false)
        let second = Task {
            let lock = try await HostLock.acquire("image-abc", directory: folder)
            taken.store(true, ordering: .sequentiallyConsistent)
            return lock
        }
        try await Task.sleep(nanoseconds: 800_000_000)
        let early = taken.load(ordering: .sequentiallyConsistent)
        #expect(!early, "the second holder got the lock while the first held it")
        #expect(first != nil)
        first = nil
        _ = try await second.value
        let late = taken.load(ordering: .sequentiallyConsistent)
        #expect(late)
        var info = stat()
        #expect(lstat(folder.path, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test func aFolderOfAnotherUserOrALinkIsRefused() async throws {
        let top = try scratch()
        defer { try? FileManager.default.removeItem(at: top) }
        let writable = top.appendingPathComponent("writable")
        try FileManager.default.createDirectory(at: writable, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        chmod(writable.path, 0o777)
        await #expect(throws: (any Error).self) { _ = try await HostLock.acquire("x", directory: writable) }
        let link = top.appendingPathComponent("link")
        let real = top.appendingPathComponent("real")
        try FileManager.default.createDirectory(at: real, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
        await #expect(throws: (any Error).self) { _ = try await HostLock.acquire("x", directory: link) }
        if getuid() == 0 {
            let theirs = top.appendingPathComponent("theirs")
            try FileManager.default.createDirectory(at: theirs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            chown(theirs.path, 65534, 65534)
            await #expect(throws: (any Error).self) { _ = try await HostLock.acquire("x", directory: theirs) }
        }
        // A link planted where the lock file goes is not followed.
        let mine = top.appendingPathComponent("mine")
        try FileManager.default.createDirectory(at: mine, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(at: mine.appendingPathComponent("y.lock"), withDestinationURL: top.appendingPathComponent("elsewhere"))
        await #expect(throws: (any Error).self) { _ = try await HostLock.acquire("y", directory: mine) }
        #expect(!FileManager.default.fileExists(atPath: top.appendingPathComponent("elsewhere").path))
    }
}
