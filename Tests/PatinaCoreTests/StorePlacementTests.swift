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

/// Which neutral folders `patina prune` may remove: those whose home was deleted, and only those
/// (StorePlacement.orphans: claims hard-linked from the home).
@Suite(.serialized) struct StoreOrphanTests {
    let root: URL
    let neutral: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("orphans-\(UUID().uuidString.prefix(8))")
        neutral = root.appendingPathComponent("neutral/stores")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    func cleanUp() { try? FileManager.default.removeItem(at: root) }

    /// A store placed for a repository in `home`, with a run directory in it.
    func placed(home: URL, repository: String = "/src/project/.git") throws -> (RunStore, URL) {
        let store = RunStore(home: home, repositoryCommonDirectory: URL(fileURLWithPath: repository))
        guard case .neutral(let folder) = StorePlacement.place(store, neutralRoot: neutral) else { throw CocoaError(.fileWriteUnknown) }
        try FileManager.default.createDirectory(at: store.runDirectory("r1"), withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: store.recordURL("r1"))
        return (store, folder)
    }

    func orphans(home: URL) -> [String] {
        StorePlacement.orphans(home: home, neutralRoot: neutral).orphans.map(\.folder.path)
    }

    @Test func aStoreWhoseHomeWasDeletedIsAnOrphanAndGoes() throws {
        defer { cleanUp() }
        let kept = root.appendingPathComponent("kept-home"), gone = root.appendingPathComponent("gone-home")
        let (_, keptFolder) = try placed(home: kept)
        let (_, goneFolder) = try placed(home: gone, repository: "/src/other/.git")
        #expect(orphans(home: kept).isEmpty)
        try FileManager.default.removeItem(at: gone)
        let scan = StorePlacement.orphans(home: kept, neutralRoot: neutral)
        #expect(scan.orphans.map(\.folder.path) == [goneFolder.path])
        #expect(scan.orphans.first?.links.first?.hasPrefix(gone.path) == true)
        try StorePlacement.remove(try #require(scan.orphans.first))
        #expect(!FileManager.default.fileExists(atPath: goneFolder.path))
        #expect(FileManager.default.fileExists(atPath: keptFolder.appendingPathComponent("runs/r1/run.json").path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: neutral.path) == [keptFolder.lastPathComponent])
    }

    @Test func aHomeMovedWithinItsFilesystemStillHoldsItsStore() throws {
        defer { cleanUp() }
        let home = root.appendingPathComponent("home")
        let (_, folder) = try placed(home: home)
        let moved = root.appendingPathComponent("moved-home")
        try FileManager.default.moveItem(at: home, to: moved)
        #expect(orphans(home: moved).isEmpty)
        #expect(orphans(home: root.appendingPathComponent("elsewhere")).isEmpty)
        // Used from where it is now: still the same store, claimed once.
        let again = RunStore(home: moved, repositoryCommonDirectory: URL(fileURLWithPath: "/src/project/.git"))
        guard case .neutral(let same) = StorePlacement.place(again, neutralRoot: neutral) else { Issue.record("not placed"); return }
        #expect(same.path == folder.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("claims").path).count == 1)
    }

    @Test func aStoreWhoseLinkThisHomeNoLongerHasIsAnOrphanButNotWhileRunsAreMarkedInFlight() throws {
        defer { cleanUp() }
        let home = root.appendingPathComponent("home")
        let (store, folder) = try placed(home: home)
        try FileManager.default.removeItem(at: store.root)
        // Seen from another home, the claim still has its name in this one: kept.
        #expect(orphans(home: root.appendingPathComponent("other-home")).isEmpty)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("running"), withIntermediateDirectories: true)
        try Data().write(to: folder.appendingPathComponent("running/r1"))
        let marked = StorePlacement.orphans(home: home, neutralRoot: neutral)
        #expect(marked.orphans.isEmpty)
        #expect(marked.kept.first?.reason.contains("in flight") == true, "\(marked.kept)")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("running/r1"))
        let scan = StorePlacement.orphans(home: home, neutralRoot: neutral)
        #expect(scan.orphans.map(\.folder.path) == [folder.path])
        try StorePlacement.remove(try #require(scan.orphans.first))
        // The home's claim went with it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: home.appendingPathComponent("repos/.claims").path).isEmpty)
    }

    @Test func anotherUsersStoreAndAStoreWithoutAClaimStay() throws {
        defer { cleanUp() }
        let (_, theirs) = try placed(home: root.appendingPathComponent("their-home"))
        let (_, old) = try placed(home: root.appendingPathComponent("old-home"), repository: "/src/old/.git")
        // Made by an older patina: no claims.
        try FileManager.default.removeItem(at: old.appendingPathComponent("claims"))
        #expect(chown(theirs.path, 4242, 4242) == 0)
        try FileManager.default.removeItem(at: root.appendingPathComponent("their-home"))
        try FileManager.default.removeItem(at: root.appendingPathComponent("old-home"))
        let scan = StorePlacement.orphans(home: root.appendingPathComponent("my-home"), neutralRoot: neutral)
        #expect(scan.orphans.isEmpty)
        #expect(scan.unclaimed == [old.path])
    }

    @Test func aHomeOnAFilesystemNotMountedNowStillHoldsItsStore() throws {
        defer { cleanUp() }
        // A bind mount: the same filesystem (so the store is placed), then unmounted.
        let backing = root.appendingPathComponent("backing"), mountPoint = root.appendingPathComponent("mnt")
        try FileManager.default.createDirectory(at: backing, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        try ProcessRunner.check(["mount", "--bind", backing.path, mountPoint.path])
        var mounted = true
        defer { if mounted { _ = try? ProcessRunner.run(["umount", mountPoint.path]) } }
        let home = mountPoint.appendingPathComponent("home")
        let (_, folder) = try placed(home: home)
        try ProcessRunner.check(["umount", mountPoint.path])
        mounted = false
        #expect(!FileManager.default.fileExists(atPath: home.path))
        #expect(orphans(home: root.appendingPathComponent("my-home")).isEmpty)
        #expect(FileManager.default.fileExists(atPath: folder.path))
    }
}
