import Foundation
import PatinaCore
import PatinaTestSupport
import Testing

/// Where a repository's store lies: a link into a neutral folder, so the sandbox's mount
/// table names nothing of the user (StorePlacement).
@Suite struct StorePlacementTests {
    let root: URL
    let neutral: URL
    let store: RunStore

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("placement-\(UUID().uuidString.prefix(8))")
        neutral = root.appendingPathComponent("neutral/stores")
        store = RunStore(home: root.appendingPathComponent("home"), repositoryCommonDirectory: URL(fileURLWithPath: "/src/my-secret-project/.git"))
    }

    func cleanUp() { try? FileManager.default.removeItem(at: root) }

    @Test func aNewStoreIsALinkToAFolderNamedByNothingOfTheRepository() throws {
        defer { cleanUp() }
        let outcome = StorePlacement.place(store, neutralRoot: neutral)
        guard case .neutral(let folder) = outcome else { Issue.record("\(outcome)"); return }
        #expect(folder.deletingLastPathComponent().path == neutral.path)
        #expect(folder.lastPathComponent.range(of: "^[0-9a-f]{16}$", options: .regularExpression) != nil)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: store.root.path) == folder.path)
        // Placing again changes nothing.
        guard case .neutral(let again) = StorePlacement.place(store, neutralRoot: neutral) else { Issue.record("moved"); return }
        #expect(again.standardizedFileURL.path == folder.standardizedFileURL.path)
        try FileManager.default.createDirectory(at: store.runDirectory("r1"), withIntermediateDirectories: true)
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("runs/r1").path))
    }

    @Test func aStoreMadeBeforeIsMovedWithItsFilesOnlyWhenNothingIsInFlight() throws {
        defer { cleanUp() }
        try FileManager.default.createDirectory(at: store.runDirectory("r1"), withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: store.recordURL("r1"))
        try FileManager.default.createDirectory(at: store.runningDirectory, withIntermediateDirectories: true)
        try Data().write(to: store.runningDirectory.appendingPathComponent("r1"))
        guard case .inPlace = StorePlacement.place(store, neutralRoot: neutral) else { Issue.record("moved while a run is in flight"); return }
        #expect(try FileManager.default.attributesOfItem(atPath: store.root.path)[.type] as? FileAttributeType == .typeDirectory)

        try FileManager.default.removeItem(at: store.runningDirectory.appendingPathComponent("r1"))
        guard case .neutral(let folder) = StorePlacement.place(store, neutralRoot: neutral) else { Issue.record("not moved"); return }
        #expect(FileManager.default.contents(atPath: folder.appendingPathComponent("runs/r1/run.json").path) == Data("{}".utf8))
        #expect(FileManager.default.contents(atPath: store.recordURL("r1").path) == Data("{}".utf8))
    }

    @Test func aNeutralFolderOnAnotherFilesystemLeavesTheStoreInPlace() throws {
        defer { cleanUp() }
        let other = URL(fileURLWithPath: "/dev/shm/placement-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: other) }
        var a = stat(), b = stat()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        guard stat(root.path, &a) == 0, stat(other.path, &b) == 0, a.st_dev != b.st_dev else { return }
        guard case .inPlace(let why) = StorePlacement.place(store, neutralRoot: other.appendingPathComponent("stores")) else {
            Issue.record("placed across filesystems"); return
        }
        #expect(why.contains("another filesystem"))
    }
}
