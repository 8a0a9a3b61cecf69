import Foundation
import Testing
@testable import PatinaCore
import PatinaGit

/// Handing the agent's tree back never follows a link the agent left, at any depth.
@Suite struct OwnershipTests {
    func owner(_ path: String) -> uid_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_uid : .max
    }

    @Test(.enabled(if: getuid() == 0, "changing owners needs root"))
    func linksAreChangedNotFollowed() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ownership-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let tree = root.appendingPathComponent("tree"), outside = root.appendingPathComponent("outside")
        for dir in [tree.appendingPathComponent("a/b"), outside] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        try Data("x".utf8).write(to: tree.appendingPathComponent("a/b/file"))
        try Data("secret".utf8).write(to: outside.appendingPathComponent("host-file"))
        try FileManager.default.createSymbolicLink(atPath: tree.appendingPathComponent("a/escape").path, withDestinationPath: outside.path)
        try FileManager.default.createSymbolicLink(atPath: tree.appendingPathComponent("a/b/file-link").path,
                                                   withDestinationPath: outside.appendingPathComponent("host-file").path)

        Ownership.change(tree, uid: 4242, gid: 4242)
        #expect(owner(tree.appendingPathComponent("a/b/file").path) == 4242)
        #expect(owner(tree.appendingPathComponent("a/b").path) == 4242)
        #expect(owner(tree.appendingPathComponent("a/escape").path) == 4242, "the link itself is the agent's")
        #expect(owner(outside.path) == 0)
        #expect(owner(outside.appendingPathComponent("host-file").path) == 0)

        Ownership.change(tree, uid: 0, gid: 0)
        #expect(owner(tree.appendingPathComponent("a/b/file").path) == 0)
    }
}
