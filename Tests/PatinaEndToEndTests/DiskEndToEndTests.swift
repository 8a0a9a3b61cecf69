import Foundation
import PatinaCore
import PatinaTestSupport
import Testing

/// The host's disk survives the agent: the real Claude Code CLI in the real sandbox writes
/// giant and countless leftovers and fills a small filesystem holding patina's home, step
/// by step. Nothing over the limits reaches the user's repository, the run is stopped at
/// the floor with the filesystem named, the records stay whole, and the next command works.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct DiskEndToEndTests {
    /// Allocated kilobytes under `url` (`du -sk`).
    static func kilobytes(_ url: URL) throws -> Int {
        let out = try ProcessRunner.check(["du", "-sk", url.path])
        return Int(out.split(separator: "\t").first ?? "") ?? -1
    }

    /// A tmpfs of `size` mounted at the repository's patina home, for the test's length.
    static func mountSmallHome(_ repo: TemporaryRepository, size: String) throws {
        try ProcessRunner.check(["mount", "-t", "tmpfs", "-o", "size=\(size),mode=0755", "patina-disk-test", repo.home.path])
    }

    static func unmount(_ repo: TemporaryRepository) {
        _ = try? ProcessRunner.run(["umount", "-l", repo.home.path], in: repo.root)
    }

    /// The default limit (50 MB), a real 300 MB of random data: not committed, said so by
    /// run.json, `show`, session.md; the user's `.git` does not grow; `runs` and `prune
    /// --dry-run` show what the worktree holds.
    @Test func aHugeLeftoverStaysOutOfTheRepository() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let gitBefore = try Self.kilobytes(repo.path.appendingPathComponent(".git"))
        let model = try FakeModel(script: [
            .bash(#"head -c 300M /dev/urandom > huge.bin && echo small > small.txt && echo "HUGE:$(stat -c %s huge.bin)""#),
            .text("Left a big file."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("leave a huge file"))
        #expect(markers(in: commandOutputs(model))["HUGE"] == "314572800")
        let gitAfter = try Self.kilobytes(repo.path.appendingPathComponent(".git"))
        print("user's .git: \(gitBefore) KB before, \(gitAfter) KB after a run that left 300 MB of random data")
        #expect(gitAfter - gitBefore < 1024, ".git grew from \(gitBefore) KB to \(gitAfter) KB")
        #expect(run.status == "succeeded", "\(run.record["reason"] ?? "")")
        let committed = try repo.git("ls-tree", "-r", "--name-only", run.branch)
        #expect(committed.contains("small.txt") && !committed.contains("huge.bin"), "\(committed)")
        let skipped = run.record["leftovers_skipped"] as? [[String: Any]] ?? []
        #expect(skipped.contains { $0["path"] as? String == "huge.bin" && $0["size_bytes"] as? Int == 314_572_800 }, "\(skipped)")
        #expect(run.record["max_file_size_bytes"] as? Int == 50 << 20)
        #expect(FileManager.default.fileExists(atPath: run.worktree.appendingPathComponent("huge.bin").path))
        #expect(try repo.git("rev-parse", "main") == main)

        let show = try patina.run(["show", run.id])
        #expect(show.status == 0)
        #expect(show.stdout.contains("! disk:") && show.stdout.contains("huge.bin (300 MB)"), "\(show.stdout)")
        let session = run.file("session.md") ?? ""
        #expect(session.contains("- **Disk**: 1 leftover path not committed"), "\(session.suffix(2000))")

        // What the worktree holds, and what pruning would give back.
        let runs = try patina.run(["runs"])
        #expect(runs.stdout.contains("DISK") && runs.stdout.contains("300 MB"), "\(runs.stdout)")
        let listed = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]] ?? []
        let held = listed.first?["worktree_bytes"] as? Int ?? 0
        #expect(held >= 300 << 20 && held < 310 << 20, "\(held)")
        let dry = try patina.run(["prune", "--dry-run", "--force"])
        #expect(dry.stdout.contains("would remove run \(run.id) (30") && dry.stdout.contains("would give back 30"), "\(dry.stdout)")
        #expect(FileManager.default.fileExists(atPath: run.worktree.appendingPathComponent("huge.bin").path))
    }

    /// Countless new paths past the repository's `max_new_paths`, a leftover over a lowered
    /// `--max-file-size`, and a large file the agent committed itself (kept, flagged by `show`).
    @Test func manyPathsAndTheAgentsOwnLargeFile() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", ".patina/config.json": #"{"max_new_paths": 100}"#])
        let model = try FakeModel(script: [
            .bash(#"head -c 2M /dev/urandom > own.bin && git add own.bin && git commit -qm "agent: own data" && mkdir many && seq -f "many/f%g" 500 | xargs touch && head -c 3M /dev/urandom > left.bin && echo "MANY:$(ls many | wc -l)""#),
            .text("Made many files."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("make many files", ["--max-file-size", "1m"]))
        #expect(markers(in: commandOutputs(model))["MANY"] == "500")
        #expect(run.status == "succeeded", "\(run.record["reason"] ?? "")")
        #expect(run.record["max_new_paths"] as? Int == 100 && run.record["max_file_size_bytes"] as? Int == 1 << 20)
        let committed = try repo.git("ls-tree", "-r", "--name-only", run.branch).split(separator: "\n")
        let many = committed.filter { $0.hasPrefix("many/") }.count
        #expect(many <= 100, "\(many) of the new paths committed")
        #expect(committed.contains("own.bin") && !committed.contains("left.bin"))
        let count = run.record["leftovers_skipped_count"] as? Int ?? 0
        #expect(count >= 400, "\(count)")
        let skipped = run.record["leftovers_skipped"] as? [[String: Any]] ?? []
        #expect(skipped.contains { $0["path"] as? String == "left.bin" && $0["size_bytes"] as? Int == 3 << 20 }, "\(skipped)")
        let large = run.record["large_files_committed"] as? [[String: Any]] ?? []
        #expect(large.count == 1 && large.first?["path"] as? String == "own.bin" && large.first?["size_bytes"] as? Int == 2 << 20, "\(large)")
        let show = try patina.run(["show", run.id])
        #expect(show.stdout.contains("the agent's own commits hold 1 file over 1 MB") && show.stdout.contains("own.bin (2 MB"), "\(show.stdout)")
        #expect(show.stdout.contains("\(count) leftover paths not committed"), "\(show.stdout)")
        // The options are kept for resume.
        let options = run.record["options"] as? [String: Any] ?? [:]
        #expect(options["maxFileSize"] as? String == "1m", "\(options)")
    }

    /// patina's home on a 200 MB filesystem the agent fills 8 MB at a time: the agent is stopped
    /// at the floor (64 MB), the run collected and ended `error` naming the filesystem; the
    /// records are whole; on a full disk no new run starts; once there is room again, commands work.
    @Test func aFillingDiskStopsTheRunAndTheRecordsSurvive() throws {
        let repo = try TemporaryRepository()
        try Self.mountSmallHome(repo, size: "200m")
        defer { Self.unmount(repo) }
        let model = try FakeModel(script: [
            .bash(#"for i in $(seq 1 40); do head -c 8M /dev/urandom > fill$i.bin && echo "STEP:$i"; sleep 0.2; done; echo DONE:yes"#),
            .text("Filled the disk."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = Date()
        let output = try patina.yolo("fill the disk", ["--min-free", "64m", "--max-file-size", "1m"])
        let seconds = Date().timeIntervalSince(started)
        let run = try FinishedRun(output)
        #expect(output.status != 0, "exit \(output.status)")
        #expect(run.status == "error")
        let reason = run.record["reason"] as? String ?? ""
        #expect(reason.contains("stopped the agent: the filesystem at \(repo.home.path)") && reason.contains("below the 64 MB floor"), "\(reason)")
        let low = run.record["disk_low"] as? [String: Any] ?? [:]
        let free = low["free_bytes"] as? Int ?? -1
        print("stopped at the floor: \(free >> 20) MB free of 200 MB (floor 64 MB), the run took \(Int(seconds)) s; \(reason)")
        #expect(free < 64 << 20 && free > 32 << 20, "stopped within a few 8 MB steps of the floor: \(free)")
        #expect(markers(in: commandOutputs(model))["DONE"] == nil, "the agent's loop ran to its end")
        // The records are whole: run.json (read back above), session.md, no reserve left.
        #expect(run.file("session.md")?.contains("## Outcome") == true)
        #expect(!FileManager.default.fileExists(atPath: run.runDir.appendingPathComponent(".disk-reserve").path))
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)

        // The disk full to the last byte: commands still read, a new run does not start.
        _ = try? ProcessRunner.run(["bash", "-c", "head -c 300M /dev/zero > \(repo.home.path)/filler"], in: repo.root)
        let runs = try patina.run(["runs"])
        #expect(runs.status == 0 && runs.stdout.contains(run.id), "\(runs.stderr)")
        #expect(try patina.run(["show", run.id]).status == 0)
        let refused = try patina.yolo("anything")
        // A full disk is the environment failing (exit 3), not bad input; nothing is created.
        #expect(refused.status == 3 && refused.stderr.contains("not started: the filesystem at \(repo.home.path)"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(try repo.git("branch", "--list", "patina/*").split(separator: "\n").count == 1)

        // Room again: discard gives the worktree's space back, the next command works.
        try FileManager.default.removeItem(atPath: "\(repo.home.path)/filler")
        let discard = try patina.run(["discard", run.id])
        #expect(discard.status == 0, "\(discard.stderr)")
        let after = try patina.run(["show", run.id, "--json"])
        #expect(after.status == 0)
        #expect(try PatinaRunner.record(after)["status"] as? String == "error")
    }

    /// A batch on the small filesystem, one run at a time, each run leaving 80 MB: the first
    /// fits, the second crosses the floor and is stopped, the third does not start.
    @Test func aBatchStopsStartingRunsBelowTheFloor() throws {
        let repo = try TemporaryRepository()
        try Self.mountSmallHome(repo, size: "200m")
        defer { Self.unmount(repo) }
        let fill = FakeModel.Turn.bash(#"for i in $(seq 1 10); do head -c 8M /dev/urandom > fill$i.bin && echo "STEP:$i"; sleep 0.2; done; echo DONE:yes"#)
        let model = try FakeModel(byTask: [
            (match: "first", turns: [fill, .text("first done")]),
            (match: "second", turns: [fill, .text("second done")]),
            (match: "third", turns: [fill, .text("third done")]),
        ])
        try repo.write("../tasks.txt", "task first: fill\ntask second: fill\ntask third: fill\n")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let output = try patina.run(["batch", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                     "--jobs", "1", "--min-free", "64m", "--max-file-size", "1m",
                                     repo.root.appendingPathComponent("tasks.txt").path])
        #expect(output.stderr.contains("queued runs do not start: the filesystem at \(repo.home.path)"), "\(output.stderr.suffix(2000))")
        let listed = try patina.run(["batches", "--json"])
        let batch = try #require((try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])?.first)
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 2, "\(runs.map { $0["status"] ?? "?" })")
        #expect(runs.first?["status"] as? String == "succeeded", "\(runs.first?["reason"] ?? "")")
        #expect(runs.last?["status"] as? String == "error" && (runs.last?["reason"] as? String ?? "").contains("below the 64 MB floor"),
                "\(runs.last?["reason"] ?? "")")
        #expect((batch["disk_low"] as? [String: Any])?["filesystem"] as? String == repo.home.path, "\(batch["disk_low"] ?? "none")")
        #expect(batch["status"] as? String == "failed")
        let report = try String(contentsOf: URL(fileURLWithPath: repo.home.path).appendingPathComponent(
            "repos/\(RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git")).repositoryKey)/batches/\(batch["id"] as? String ?? "")/report.md"),
            encoding: .utf8)
        #expect(report.contains("Queued runs did not start: the filesystem at"), "\(report)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }
}
