import Foundation
import PatinaSandbox
import PatinaTestSupport
import Testing
@testable import PatinaCore

@Suite("Warm caches")
struct WarmCacheTests {
    let repo: TemporaryRepository
    let store: CacheStore

    init() throws {
        repo = try TemporaryRepository()
        store = CacheStore(store: RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git")))
    }

    var privateRoot: URL { repo.root.appendingPathComponent("run/sandbox/caches") }

    @Test func cachesLiveUnderPatinasHomeAndPointTheToolsThere() throws {
        let lease = try store.lease(["pip", "cargo", "go", "swiftpm"], privateRoot: privateRoot, uid: 1000, gid: 1000)
        defer { lease.release() }
        #expect(store.root.path.hasPrefix(repo.home.path))
        #expect(lease.used == ["pip", "cargo", "go", "swiftpm"])
        #expect(lease.mounts.map(\.target) == ["/patina/cache/pip", "/patina/cache/cargo", "/patina/cache/go", "/home/agent/.cache/org.swift.swiftpm"])
        #expect(lease.mounts.allSatisfy { $0.source.hasPrefix(store.root.path) && !$0.readOnly })
        #expect(lease.environment["PIP_CACHE_DIR"] == "/patina/cache/pip")
        #expect(lease.environment["CARGO_HOME"] == "/patina/cache/cargo")
        #expect(lease.environment["GOMODCACHE"] == "/patina/cache/go")
        #expect(lease.notes.isEmpty)
        if getuid() == 0 {
            let owner = try FileManager.default.attributesOfItem(atPath: store.directory("pip").path)[.ownerAccountID] as? NSNumber
            #expect(owner?.intValue == 1000)
        }
    }

    /// The check's view of the caches: read warm through an overlay, written nowhere that stays.
    @Test func theChecksCachesAreOverlaysThatLeaveTheCacheAsItWas() throws {
        let lease = try store.lease(["pip", "go"], privateRoot: privateRoot, uid: 1000, gid: 1000)
        defer { lease.release() }
        try Data("warm".utf8).write(to: store.directory("pip").appendingPathComponent("wheel"))
        let root = repo.root.appendingPathComponent("run/sandbox/check-caches")
        let caches = CheckCaches.mount(lease, under: root, uid: 1000, gid: 1000)
        defer { CheckCaches.remove(under: root) }
        guard getuid() == 0 else {
            #expect(caches.mounts.isEmpty && caches.environment.isEmpty)
            #expect(caches.notes == ["the check runs without the warm caches: an overlay of them (read warm, written nowhere) needs patina to run as root"])
            return
        }
        #expect(caches.notes.isEmpty, "\(caches.notes)")
        #expect(caches.mounts.map(\.target) == ["/patina/cache/pip", "/patina/cache/go"])
        #expect(caches.mounts.allSatisfy { $0.source.hasPrefix(root.path) && !$0.readOnly })
        #expect(caches.environment["PIP_CACHE_DIR"] == "/patina/cache/pip" && caches.environment["GOFLAGS"] == "-modcacherw")
        #expect(MountTable.points(under: root).count == 2)
        let view = URL(fileURLWithPath: caches.mounts[0].source)
        #expect(try String(contentsOf: view.appendingPathComponent("wheel"), encoding: .utf8) == "warm")
        try Data("written".utf8).write(to: view.appendingPathComponent("wheel"))
        try Data("new".utf8).write(to: view.appendingPathComponent("lock"))
        var info = stat()
        #expect(stat(view.path, &info) == 0 && info.st_uid == 1000)
        #expect(CheckCaches.remove(under: root))
        #expect(MountTable.points(under: root).isEmpty && !FileManager.default.fileExists(atPath: root.path))
        #expect(try String(contentsOf: store.directory("pip").appendingPathComponent("wheel"), encoding: .utf8) == "warm")
        #expect(!FileManager.default.fileExists(atPath: store.directory("pip").appendingPathComponent("lock").path))
    }

    @Test func anOverlayCannotNameEveryPath() {
        let ok = URL(fileURLWithPath: "/a/b"), bad = URL(fileURLWithPath: "/a,upperdir=/etc")
        #expect(OverlayMount.options(lower: ok, upper: URL(fileURLWithPath: "/u"), work: URL(fileURLWithPath: "/w")) == "lowerdir=/a/b,upperdir=/u,workdir=/w")
        #expect(OverlayMount.options(lower: bad, upper: ok, work: ok) == nil)
        #expect(OverlayMount.options(lower: URL(fileURLWithPath: "/a:b"), upper: ok, work: ok) == nil)
    }

    @Test func sharedCachesAreSharedAnExclusiveOneGoesToOneRun() throws {
        let first = try store.lease(["pip", "yarn"], privateRoot: privateRoot, uid: 1000, gid: 1000)
        let second = try store.lease(["pip", "yarn"], privateRoot: repo.root.appendingPathComponent("run2/caches"), uid: 1000, gid: 1000)
        #expect(first.mounts.map(\.source) == [store.directory("pip").path, store.directory("yarn").path])
        // pip locks its cache itself: shared. yarn 1 does not: the second run gets its own, empty one.
        #expect(second.mounts[0].source == store.directory("pip").path)
        #expect(second.mounts[1].source == repo.root.appendingPathComponent("run2/caches/yarn").path)
        #expect(second.notes.count == 1 && second.notes[0].contains("yarn cache"))
        second.release()
        #expect(!FileManager.default.fileExists(atPath: repo.root.appendingPathComponent("run2/caches/yarn").path))
        // Clearing leaves a cache a run in flight holds alone.
        try Data("x".utf8).write(to: store.directory("pip").appendingPathComponent("wheel"))
        let busy = try store.clear([])
        #expect(busy.cleared.isEmpty && busy.busy == ["pip", "yarn"])
        let listed = store.list()
        #expect(listed.allSatisfy { $0.inUse })
        first.release()
        let third = try store.lease(["yarn"], privateRoot: privateRoot, uid: 1000, gid: 1000)
        #expect(third.mounts[0].source == store.directory("yarn").path)
        third.release()
    }

    @Test func listAndClearFollowNoLink() throws {
        let lease = try store.lease(["npm"], privateRoot: privateRoot, uid: 1000, gid: 1000)
        lease.release()
        let outside = repo.root.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try Data(repeating: 1, count: 10_000).write(to: outside.appendingPathComponent("big"))
        try Data(repeating: 2, count: 5000).write(to: store.directory("npm").appendingPathComponent("entry"))
        try FileManager.default.createSymbolicLink(at: store.directory("npm").appendingPathComponent("link"), withDestinationURL: outside)
        let entry = try #require(store.list().first)
        #expect(entry.name == "npm" && entry.files == 1 && entry.bytes >= 5000 && entry.bytes < 10_000 && !entry.inUse)
        let result = try store.clear(["npm"])
        #expect(result.cleared == ["npm"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory("npm").path).isEmpty)
        #expect(FileManager.default.fileExists(atPath: outside.appendingPathComponent("big").path))
        #expect(throws: PlanError.self) { try store.clear(["maven"]) }
    }
}
