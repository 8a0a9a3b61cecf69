import Foundation
import PatinaGit
import Testing

/// A tree an agent made deeper than a path can name (`mkdir -p d/d/d/…` past PATH_MAX):
/// Foundation cannot remove it; patina's removal does.
@Suite struct DeepRemovalTests {
    @Test func aTreeDeeperThanAPathIsRemoved() throws {
        let top = FileManager.default.temporaryDirectory.appendingPathComponent("patina-deep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: top, withIntermediateDirectories: true)
        defer { DeepRemoval.remove(top.path) }
        // 3000 levels of "d/" is 6000 bytes of path, past PATH_MAX (4096): made by descriptors.
        var fd = open(top.path, O_RDONLY | O_DIRECTORY)
        for _ in 0..<3000 {
            #expect(mkdirat(fd, "d", 0o755) == 0)
            let next = openat(fd, "d", O_RDONLY | O_DIRECTORY)
            close(fd)
            fd = next
        }
        close(openat(fd, "leaf", O_CREAT | O_WRONLY, 0o644))
        close(fd)
        #expect(throws: (any Error).self) { try FileManager.default.removeItem(at: top) }
        #expect(DeepRemoval.remove(top.path))
        #expect(!FileManager.default.fileExists(atPath: top.path))
    }
}
