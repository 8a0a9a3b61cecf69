import Foundation
import PatinaGit
@testable import PatinaCore
import Testing
import PatinaTestSupport

/// The disk limits as typed (sizes, floors, the config's keys), the floor measured on a real
/// filesystem, what a directory really holds, and the agent's own large files found from
/// object headers.
@Suite("PatinaCore: disk limits")
struct DiskLimitsTests {
    @Test func sizesAsPeopleTypeThem() throws {
        let good: [(String, Int)] = [
            ("50m", 50 << 20), ("50M", 50 << 20), ("50MB", 50 << 20), ("50MiB", 50 << 20), ("2g", 2 << 30),
            ("1.5g", 3 << 29), ("4096", 4096), ("10 kb", 10 << 10), ("1t", 1 << 40), ("300b", 300),
        ]
        for (text, bytes) in good { #expect(try ByteSize.parse(text, setting: "--max-file-size") == bytes, "\(text)") }
        for text in ["", "0", "-5m", "big", "5q", "m", "1..5m", "1e9", "0.1b", "5 m b", "99999999999t"] {
            #expect(throws: PlanError.self, "\(text)") { try ByteSize.parse(text, setting: "--max-file-size") }
        }
        #expect(ByteSize.format(50 << 20) == "50 MB")
        #expect(ByteSize.format(1536) == "1.5 KB")
        #expect(ByteSize.format(300) == "300 bytes")
        #expect(ByteSize.format(3 << 29) == "1.5 GB")
        // Never rounded up to the limit it is under.
        #expect(ByteSize.format((64 << 20) - 1) == "63.9 MB")
        #expect(ByteSize.format(314_572_800 + 4096) == "300 MB")
    }

    @Test func floorsAndTheirDefault() throws {
        // The smaller of 2 GB and 10% of the filesystem.
        #expect(DiskFloor.standard.bytes(ofFilesystem: 100 << 30) == 2 << 30)
        #expect(DiskFloor.standard.bytes(ofFilesystem: 1 << 30) == (1 << 30) / 10)
        #expect(try DiskFloor.parse("5%", setting: "--min-free") == .percent(5))
        #expect(try DiskFloor.parse("5%", setting: "--min-free").bytes(ofFilesystem: 1000) == 50)
        #expect(try DiskFloor.parse("300m", setting: "--min-free") == .bytes(300 << 20))
        #expect(try DiskFloor.parse("0", setting: "--min-free") == .bytes(0))
        for text in ["150%", "0%", "-1g", "%", "lots", "5%%"] {
            #expect(throws: PlanError.self, "\(text)") { try DiskFloor.parse(text, setting: "--min-free") }
        }
    }

    @Test func flagsWinOverTheConfig() throws {
        let config = try JSONDecoder().decode(PatinaConfig.self, from: Data(#"{"max_file_size": 1048576, "max_new_paths": 7, "min_free": "10%"}"#.utf8))
        var options = YoloOptions(task: "t")
        var policy = try DiskPolicy.plan(options: options, config: config)
        #expect(policy.maxFileBytes == 1 << 20 && policy.maxNewPaths == 7 && policy.floor == .percent(10))
        options.maxFileSize = "2m"
        options.maxNewPaths = 9
        options.minFree = "1g"
        policy = try DiskPolicy.plan(options: options, config: config)
        #expect(policy.maxFileBytes == 2 << 20 && policy.maxNewPaths == 9 && policy.floor == .bytes(1 << 30))
        policy = try DiskPolicy.plan(options: YoloOptions(task: "t"), config: PatinaConfig())
        #expect(policy == DiskPolicy())
        #expect(policy.maxFileBytes == 50 << 20 && policy.maxNewPaths == 10_000 && policy.floor == .standard)
        let bad = try JSONDecoder().decode(PatinaConfig.self, from: Data(#"{"max_file_size": "lots"}"#.utf8))
        #expect { try DiskPolicy.plan(options: YoloOptions(task: "t"), config: bad) } throws: { error in
            "\(error)".contains("max_file_size in .patina/config.json must be a size")
        }
        // The batch line key, checked with the other options.
        let tasks = try BatchFile.parse(#"{"task": "a", "max_file_size": "5m"}"#, path: "t.jsonl", jsonLines: true)
        #expect(tasks.first?.maxFileSize == "5m")
        let items = try BatchPlanner.items(tasks: tasks, defaults: YoloOptions(task: ""), attempts: 1, models: [], path: "t.jsonl")
        #expect(items.first?.options.maxFileSize == "5m")
    }

    @Test func theFloorOnARealFilesystem() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("disk-floor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let space = try #require(DiskSpace.of(directory))
        #expect(space.totalBytes > 0 && space.freeBytes <= space.totalBytes)
        // A path not made yet is measured on its nearest ancestor.
        #expect(DiskSpace.of(directory.appendingPathComponent("not/yet"))?.device == space.device)
        let places = [(holds: "the run's worktree", url: directory.appendingPathComponent("wt")), (holds: "patina's home", url: directory)]
        #expect(DiskFloorWatch(places: places, floor: .bytes(0)).shortage() == nil)
        #expect(DiskFloorWatch(places: places, floor: .bytes(1)).shortage() == nil)
        let shortage = try #require(DiskFloorWatch(places: places, floor: .bytes(space.totalBytes + 1)).shortage())
        #expect(shortage.holds == "the run's worktree")  // one filesystem, named once
        #expect(shortage.filesystem == DiskSpace.mountPoint(of: directory))
        #expect(shortage.description.contains("free of") && shortage.description.contains("--min-free"))
        // A run about to start needs its reserve on top of the floor.
        let starting = try #require(DiskFloorWatch(places: places, floor: .bytes(1)).shortage(reserve: space.totalBytes))
        #expect(starting.reserveBytes == space.totalBytes && starting.description.contains("a run holds for its records"))
    }

    @Test func allocatedBlocksNotApparentSizesNorLinks() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("disk-usage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
        try data.write(to: directory.appendingPathComponent("sub/real"))
        // A 4 GB sparse file holds nothing; a hard link is counted once; a link to / is not followed.
        let sparse = open(directory.appendingPathComponent("sparse").path, O_CREAT | O_WRONLY, 0o644)
        #expect(ftruncate(sparse, 4 << 30) == 0)
        close(sparse)
        #expect(link(directory.appendingPathComponent("sub/real").path, directory.appendingPathComponent("hard").path) == 0)
        #expect(symlink("/", directory.appendingPathComponent("root").path) == 0)
        let bytes = DiskUsage.allocated(directory)
        #expect(bytes >= 1 << 20 && bytes < 2 << 20, "\(bytes)")
        #expect(DiskUsage.allocated(directory.appendingPathComponent("missing")) == 0)
    }

    @Test func theAgentsOwnLargeFilesAreFoundFromHeaders() throws {
        let run = try GitRunFixture()
        _ = try run.fixture.checked(["bash", "-c", "head -c 3000000 /dev/urandom > big.bin && mkdir -p d && head -c 10 /dev/zero > d/small"],
                                    in: run.worktree, environment: run.fixture.environment)
        _ = try run.agent("add", "-A")
        _ = try run.agent("commit", "-q", "-m", "agent: big")
        let collected = try Collector.collect(
            into: run.host, privateGitDirectory: run.sandboxGit, worktree: run.worktree, branch: run.branch,
            base: run.base, leftoversMessage: "leftovers")
        let large = try run.host.largeFiles(from: run.base, to: collected.head, over: 1 << 20)
        #expect(large.map(\.path) == ["big.bin"])
        #expect(large.first?.size == 3_000_000)
        #expect(try run.host.largeFiles(from: run.base, to: collected.head, over: 4 << 20).isEmpty)
        var record = RunRecord(
            id: "r", task: "t", status: .succeeded, reason: nil, branch: "b", baseCommit: run.base.hex, headCommit: nil,
            repository: "/", worktree: "/", runDir: "/", sessionLog: "/", transcript: nil, started: Date(), finished: nil,
            durationS: nil, costUSD: nil, numTurns: nil, tokens: nil, model: nil, maxTurns: nil, timeoutS: 1, image: nil,
            baseImage: "x", exitCode: nil, claudeSessionID: nil)
        record.largeFilesCommitted = large
        record.maxFileSizeBytes = 1 << 20
        record.leftoversSkipped = [SkippedLeftover(path: "huge.dat", size: 300 << 20, reason: "larger than 50 MB")]
        record.leftoversSkippedCount = 1
        #expect(record.diskNotes.count == 2)
        #expect(record.diskNotes[0].contains("huge.dat (300 MB)"))
        #expect(record.diskNotes[1].contains("big.bin (2.8 MB, commit \(large[0].commit.prefix(8)))") && record.diskNotes[1].contains("over 1 MB"))
        let decoded = try RunRecord.decoder.decode(RunRecord.self, from: Data(record.json().utf8))
        #expect(decoded.largeFilesCommitted == large && decoded.maxFileSizeBytes == 1 << 20)
    }
}
