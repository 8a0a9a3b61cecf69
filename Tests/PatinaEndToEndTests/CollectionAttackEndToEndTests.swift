import Foundation
import PatinaCore
import PatinaTestSupport
import Testing

/// Collection against a hostile agent, from inside the real sandbox: the real Claude Code
/// CLI runs the scripted attacks (an object bomb, a 16 GB sparse file, a tree 2,100 levels
/// deep and one 21,000 directories wide, floods on its stdout and stderr, a sparse
/// transcript), in a batch of two where the other run finishes normally. patina's memory
/// stays bounded, the batch goes on, and what could be collected is collected.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct CollectionAttackEndToEndTests {
    /// The attacks, one Bash call each, each printing `NAME:value` when it got through.
    static var attacks: [FakeModel.Turn] { [
        // Three ~100 MB zero blobs committed and removed again: a few hundred KB of objects,
        // 300 MB inflated, over the import limit the test sets (250 MB).
        .bash(#"for i in 1 2 3; do head -c $((100000000 + i)) /dev/zero > zero$i; done && git add zero1 zero2 zero3 && git commit -qm "agent: zeros" && git rm -q zero1 zero2 zero3 && git commit -qm "agent: zeros gone" && echo "BOMB:$(git rev-list --count HEAD)""#),
        .bash(#"truncate -s 16G sparse.bin && echo kept > kept.txt && echo "SPARSE:$(stat -c %s sparse.bin)""#),
        .bash(#"perl -e 'mkdir "deep"; chdir "deep" or die; for (1..2100) { mkdir "d" or die; chdir "d" or die } open(F, ">f") or die; print F "bottom\n"; close F' && echo DEEP:ok"#),
        .bash(#"mkdir wide && cd wide && seq -f d%g 21000 | xargs mkdir && echo w > d7/f && echo "WIDE:$(ls | wc -l)""#),
        // Claude Code's own stdout and stderr (the pipes to patina), written directly.
        .bash(#"""
        out=/proc/$PPID/fd/1; err=/proc/$PPID/fd/2
        [ -w "$out" ] || { out=/proc/1/fd/1; err=/proc/1/fd/2; }
        head -c 20000000 /dev/zero | tr '\0' e > "$err"; echo "STDERR:$?"
        { head -c 100000000 /dev/zero | tr '\0' o; echo; } > "$out"; echo "STDOUT:$?"
        """#),
        .bash(#"f=$(ls -t ~/.claude/projects/*/*.jsonl | head -1) && truncate -s 1G "$f" && echo "TRANSCRIPT:$(stat -c %s "$f")""#),
        // The same odd trees where collection looks for the transcript and hands the home back.
        .bash(#"cd ~/.claude/projects && perl -e 'mkdir "deep"; chdir "deep" or die; for (1..2100) { mkdir "d" or die; chdir "d" or die } open(F, ">x.jsonl") or die; close F' && mkdir wide && cd wide && seq -f d%g 21000 | xargs mkdir && echo HOME-TREES:ok"#),
        .text("Attacked collection."),
    ] }

    @Test func hostileCollectionInABatchOfTwo() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(byTask: [
            (match: "hostile", turns: Self.attacks),
            (match: "normal", turns: [.bash("echo n > n.txt && git add n.txt && git commit -qm normal"), .text("normal done")]),
        ])
        try repo.write("../tasks.jsonl", """
            {"task": "task hostile: attack collection", "name": "hostile"}
            {"task": "task normal: add n.txt", "name": "normal"}

            """)
        var patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        patina.extraEnvironment["PATINA_COLLECT_IMPORT_BYTES"] = "250000000"
        // patina's peak memory, as the kernel counted it (its own and its children's).
        let output = try ProcessRunner.run(
            ["/usr/bin/time", "-v", TestEnvironment.patinaBinary.path, "batch", "--agent-binary", TestEnvironment.claudeBinary.path,
             "--base-image", TestEnvironment.baseImage, "--jobs", "2", repo.root.appendingPathComponent("tasks.jsonl").path],
            in: repo.path, environment: patina.environment)
        let peakKB = output.stderr.split(separator: "\n")
            .first { $0.contains("Maximum resident set size") }
            .flatMap { Int($0.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") } ?? -1
        print("patina batch peak RSS: \(peakKB) KB")
        #expect(peakKB > 0 && peakKB < 700_000, "patina's peak memory \(peakKB) KB")

        let listed = try patina.run(["batches", "--json"])
        let batches = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        let batch = try #require(batches.first, "\(output.stderr.suffix(1500))")
        // The hostile run ends `error` (its commits were over the import cap), so the batch is
        // `failed` and exits 1; the batch itself finished and collected both runs.
        #expect(batch["status"] as? String == "failed", "\(batch)")
        #expect(output.status == 1, "\(output.stderr.suffix(1500))")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 2)
        func record(_ name: String) throws -> [String: Any] {
            let run = try #require(runs.first { $0["name"] as? String == name })
            let directory = URL(fileURLWithPath: run["run_dir"] as? String ?? "/nonexistent")
            let data = try Data(contentsOf: directory.appendingPathComponent("run.json"))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }

        // The other run finished normally, its work on its branch.
        let normal = try record("normal")
        #expect(normal["status"] as? String == "succeeded", "\(normal)")
        #expect(try repo.git("show", "\(normal["branch"] as? String ?? ""):n.txt") == "n")

        let hostile = try record("hostile")
        let out = markers(in: commandOutputs(model))
        for name in ["BOMB", "SPARSE", "DEEP", "WIDE", "STDERR", "STDOUT", "TRANSCRIPT", "HOME-TREES"] {
            #expect(out[name] != nil, "\(name) did not run: \(out)")
        }
        #expect(out["STDERR"] == "0" && out["STDOUT"] == "0", "\(out)")
        let reason = hostile["reason"] as? String ?? ""
        let branch = hostile["branch"] as? String ?? ""
        let worktree = URL(fileURLWithPath: hostile["worktree"] as? String ?? "/nonexistent")
        let runDir = URL(fileURLWithPath: hostile["run_dir"] as? String ?? "/nonexistent")

        // The object bomb: refused from its headers, the commits left out, said so.
        #expect(reason.contains("could not import the agent's commits: collection stopped at a limit"), "\(reason)")
        #expect(reason.contains("more than 250000000 bytes of objects"), "\(reason)")
        // What the worktree holds is committed on the base; what is over a limit stays there, listed.
        let committed = try repo.git("ls-tree", "-r", "--name-only", branch)
        #expect(committed.contains("kept.txt") && committed.contains("wide/d7/f"), "\(committed)")
        #expect(!committed.contains("sparse.bin") && !committed.contains("zero") && !committed.contains("deep/"))
        #expect(try repo.git("rev-parse", "\(branch)~1") == main)
        let skipped = hostile["leftovers_skipped"] as? [[String: Any]] ?? []
        #expect(skipped.contains { $0["path"] as? String == "sparse.bin" && ($0["size_bytes"] as? Int) == 16 << 30 }, "\(skipped)")
        #expect(skipped.contains { ($0["path"] as? String ?? "").hasPrefix("deep/d/d/") }, "\(skipped)")
        #expect(FileManager.default.fileExists(atPath: worktree.appendingPathComponent("sparse.bin").path))
        #expect(FileManager.default.fileExists(atPath: worktree.appendingPathComponent("deep/d/d").path))

        // The floods: cut and marked, the run not failed for them.
        let truncated = hostile["output_truncated"] as? [String] ?? []
        #expect(truncated.contains { $0.hasPrefix("stderr:") }, "\(truncated)")
        #expect(truncated.contains { $0.hasPrefix("stdout:") }, "\(truncated)")
        #expect(truncated.contains { $0.hasPrefix("transcript:") }, "\(truncated)")
        #expect(!reason.contains("stderr") && !reason.contains("output limit"), "\(reason)")
        func size(_ name: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: runDir.appendingPathComponent(name).path))?[.size] as? Int) ?? -1
        }
        #expect(size("agent-stderr.log") > 0 && size("agent-stderr.log") < 17_000_000, "agent-stderr.log: \(size("agent-stderr.log"))")
        // The 100 MB line is cut at 8 MB. Claude Code's own lines written while the flood runs can
        // split it into a few pieces (two writers on one pipe), each cut alike: bounded, never whole.
        #expect(size("session.jsonl") > 0 && size("session.jsonl") < 50_000_000, "session.jsonl: \(size("session.jsonl"))")
        let longest = (try? Data(contentsOf: runDir.appendingPathComponent("session.jsonl")))
            .map { $0.split(separator: 0x0A).map(\.count).max() ?? 0 } ?? -1
        #expect(longest > 0 && longest <= 8 << 20, "the longest session.jsonl line: \(longest) B")
        #expect(size("transcript.jsonl") > 0 && size("transcript.jsonl") < 140_000_000, "transcript: \(size("transcript.jsonl"))")
        print("hostile run: \(hostile["status"] ?? "?"); stderr log \(size("agent-stderr.log")) B, session.jsonl \(size("session.jsonl")) B, transcript \(size("transcript.jsonl")) B")
        #expect((try? String(contentsOf: runDir.appendingPathComponent("session.jsonl"), encoding: .utf8))?
            .contains(#""type":"result""#) == true, "the run's result line was kept")
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// More than the 16 MB kept of the agent's stderr is cut and marked: the run succeeds
    /// and its uncommitted work is committed (it used to end `error`, its leftovers lost).
    @Test func aStderrFloodIsCutNotAFailure() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [
            .bash(#"echo left > left.txt; err=/proc/$PPID/fd/2; [ -w "$err" ] || err=/proc/1/fd/2; head -c 20000000 /dev/zero | tr '\0' e > "$err"; echo "STDERR:$?""#),
            .text("Flooded stderr."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("flood stderr"))
        #expect(markers(in: commandOutputs(model))["STDERR"] == "0")
        #expect(run.status == "succeeded", "\(run.record["reason"] ?? "")")
        #expect(try repo.git("show", "\(run.branch):left.txt") == "left")
        let truncated = run.record["output_truncated"] as? [String] ?? []
        #expect(truncated.contains { $0.hasPrefix("stderr: ") && $0.contains("more bytes of stderr dropped") }, "\(truncated)")
        let stderrLog = run.file("agent-stderr.log") ?? ""
        #expect(stderrLog.utf8.count < 17_000_000 && stderrLog.contains("[patina: "), "\(stderrLog.utf8.count)")
    }

    /// A batch whose patina was killed: the next command collects its runs and marks the
    /// batch `interrupted`, with its runs, so `patina batch resume` can finish it.
    @Test func aBatchWhosePatinaWasKilledIsFinishedByTheNextCommand() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [
            .bash("echo saved > saved.txt && git add saved.txt && git commit -qm 'saved before the kill'"),
            .bash("tail -f /dev/null"),
        ])
        try repo.write("../tasks.jsonl", """
            {"task": "work then hang", "name": "hang"}

            """)
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let process = try patina.start(["batch", "--agent-binary", TestEnvironment.claudeBinary.path,
                                        "--base-image", TestEnvironment.baseImage, repo.root.appendingPathComponent("tasks.jsonl").path])
        for _ in 0..<900 where model.requests().filter({ $0["kind"] as? String == "main" }).count < 2 {
            Thread.sleep(forTimeInterval: 0.1)
        }
        Thread.sleep(forTimeInterval: 0.5)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        func batches() throws -> (output: ProcessRunner.Output, records: [[String: Any]]) {
            let output = try patina.run(["batches", "--json"])
            return (output, try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]] ?? [])
        }
        let (output, records) = try batches()
        #expect(output.stderr.contains("was left running by a patina that is gone; marked it interrupted"), "\(output.stderr)")
        let batch = try #require(records.first)
        #expect(batch["status"] as? String == "interrupted", "\(batch)")
        #expect(batch["finished"] != nil)
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 1 && runs.first?["status"] as? String == "interrupted", "\(runs)")
        #expect(try repo.git("show", "\(runs.first?["branch"] as? String ?? ""):saved.txt") == "saved")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        #expect(try !batches().output.stderr.contains("left running"))
    }
}
