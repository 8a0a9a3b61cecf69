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
