import Foundation
import PatinaCore
import PatinaSandbox
import PatinaTestSupport
import Testing

/// `patina batch` and `yolo --attempts` end to end: real Docker engine, real
/// Claude Code CLI, real libgit2 collection; only the model is a scripted fake.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct BatchEndToEndTests {
    func batchArguments(_ extra: [String]) -> [String] {
        ["batch", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage] + extra
    }

    func batches(_ patina: PatinaRunner) throws -> [[String: Any]] {
        let out = try patina.run(["batches", "--json"])
        return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] ?? []
    }

    func agentContainers(_ repo: TemporaryRepository) throws -> Int {
        try containers(repo, role: "agent", stopped: false)
    }

    /// The repository's containers of `role` (running ones only unless `stopped`).
    func containers(_ repo: TemporaryRepository, role: String, stopped: Bool = true) throws -> Int {
        let key = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git")).repositoryKey
        return try ProcessRunner.check(["docker", "ps"] + (stopped ? ["-a"] : []) + ["--filter", "label=patina.repo=\(key)",
                                        "--filter", "label=patina.role=\(role)", "--format", "{{.Names}}"]).split(separator: "\n").count
    }

    @Test func threeTasksTwoAttemptsTwoAtATimeScoredByTheCheck() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(byTask: [
            (match: "alpha", turns: [.bash("echo a > a.txt && git add a.txt && git commit -qm alpha && sleep 3 && echo slept"), .text("alpha done")]),
            (match: "beta", turns: [.bash("echo b > b.txt && sleep 3 && echo slept"), .text("beta left it uncommitted")]),
            (match: "gamma", turns: [.bash("echo c > c.txt && git add c.txt && git commit -qm gamma"), .text("gamma done")]),
        ])
        try repo.write("../tasks.jsonl", """
            {"task": "task alpha: add a.txt", "name": "alpha"}
            {"task": "task beta: add b.txt", "name": "beta"}
            {"task": "task gamma: add c.txt", "name": "gamma", "check": "test -f c.txt"}

            """)
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        // The check passes for alpha and gamma, fails for beta (b.txt appears on its branch).
        let process = try patina.start(batchArguments(["--attempts", "2", "--jobs", "2", "--check", "test ! -f b.txt",
                                                      repo.root.appendingPathComponent("tasks.jsonl").path]))
        var most = 0
        while process.isRunning {
            most = max(most, try agentContainers(repo))
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(process.terminationStatus == 1, "beta's check fails, so the batch exits 1")
        #expect(most == 2, "never more than --jobs agents at once, and the two slots were used (saw \(most))")

        let batch = try #require(try batches(patina).first)
        #expect(batch["status"] as? String == "failed", "a run whose check failed is not a batch that succeeded")
        #expect(batch["jobs"] as? Int == 2)
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 6)
        var branches = Set<String>()
        for run in runs {
            let name = run["name"] as? String ?? ""
            let branch = run["branch"] as? String ?? ""
            branches.insert(branch)
            // A failed check is a failed run.
            #expect(run["status"] as? String == (name == "beta" ? "check_failed" : "succeeded"), "\(run)")
            #expect(run["batch"] as? String == batch["id"] as? String)
            #expect([1, 2].contains(run["attempt"] as? Int ?? 0))
            let check = run["check"] as? [String: Any] ?? [:]
            let file = ["alpha": "a.txt", "beta": "b.txt", "gamma": "c.txt"][name] ?? "?"
            #expect(try repo.git("show", "\(branch):\(file)") == String(file.prefix(1)))
            #expect(try repo.git("rev-parse", "\(branch)~1") == main || name == "beta")
            #expect(check["passed"] as? Bool == (name != "beta"), "\(name): \(check)")
            #expect(check["command"] as? String == (name == "gamma" ? "test -f c.txt" : "test ! -f b.txt"))
            #expect(check["exit_code"] as? Int == (name == "beta" ? 1 : 0))
            let runDir = URL(fileURLWithPath: run["run_dir"] as? String ?? "/nonexistent")
            #expect(FileManager.default.fileExists(atPath: runDir.appendingPathComponent("check.log").path))
        }
        #expect(branches.count == 6, "every run on its own branch")
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try repo.git("status", "--porcelain").isEmpty)

        // The report: a row per run, self-contained.
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let directory = store.root.appendingPathComponent("batches/\(batch["id"] as? String ?? "")")
        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        for run in runs {
            #expect(html.contains("data-run-id=\"\(run["id"] as? String ?? "?")\""))
        }
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("report.md").path))
        let shown = try patina.run(["batch", "show", "latest"])
        #expect(shown.status == 0)
        #expect(shown.stdout.contains("alpha") && shown.stdout.contains("gamma"))
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func ctrlCStopsTheBatchAndResumeFinishesIt() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("echo w > w.txt && git add w.txt && git commit -qm work && tail -f /dev/null"),
            .text("unreachable"),
        ])
        try repo.write("../tasks.txt", "task one\ntask two\ntask three\n")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let process = try patina.start(batchArguments(["--jobs", "1", repo.root.appendingPathComponent("tasks.txt").path]))
        let deadline = Date().addingTimeInterval(120)
        while model.requests().isEmpty && Date() < deadline && process.isRunning { Thread.sleep(forTimeInterval: 0.2) }
        Thread.sleep(forTimeInterval: 2)
        #expect(process.isRunning)
        process.interrupt()
        let stopDeadline = Date().addingTimeInterval(90)
        while process.isRunning && Date() < stopDeadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(!process.isRunning, "patina did not stop after Ctrl-C")
        #expect(process.terminationStatus == 130)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)

        let batch = try #require(try batches(patina).first)
        #expect(batch["status"] as? String == "interrupted")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 1, "queued runs never started")
        let first = try #require(runs.first)
        #expect(first["status"] as? String == "interrupted")
        // The started run was collected: its commit is on its branch.
        #expect(try repo.git("show", "\(first["branch"] as? String ?? ""):w.txt") == "w")
        // The tasks that never started are in the table as such.
        let shown = try patina.run(["batch", "show", "latest"]).stdout
        #expect(shown.split(separator: "\n").filter { $0.contains("not started") && $0.contains("task ") }.count == 2, "\(shown)")
        #expect(shown.contains("runs: 1 (2 not started)"), "\(shown)")

        try model.update(script: [.bash("echo w > w.txt && git add w.txt && git commit -qm work"), .text("done")])
        let resumed = try patina.run(["batch", "resume", "latest", "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr.suffix(1500))")
        let record = try PatinaRunner.record(resumed)
        #expect(record["id"] as? String == batch["id"] as? String)
        #expect(record["status"] as? String == "succeeded")
        let finished = record["runs"] as? [[String: Any]] ?? []
        #expect(finished.count == 3)
        #expect(finished.allSatisfy { $0["status"] as? String == "succeeded" })
        let items = (record["inputs"] as? [String: Any])?["items"] as? [[String: Any]] ?? []
        #expect((items.first?["previous_runs"] as? [String]) == [first["id"] as? String ?? ""])
        // The replaced run's spend stays in the batch.
        let replaced = record["replaced_runs"] as? [[String: Any]] ?? []
        #expect(replaced.count == 1 && replaced.first?["id"] as? String == first["id"] as? String, "\(replaced)")
        #expect(replaced.first?["cost_usd"] as? Double == first["cost_usd"] as? Double)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// Moments of a batch's start-up, each seen from outside, at which Ctrl-C arrives.
    enum StartUpMoment: String, CaseIterable, CustomStringConvertible {
        /// A run's directory exists: its branch and worktree are being made.
        case runStarting
        /// A run's worktree view is mounted (its forked helper may be running).
        case viewMounted
        /// A network holder container exists (its FIFO handshake pending).
        case holderCreated
        /// An agent container exists (its probes running); Ctrl-C twice.
        case agentCreatedTwice
        var description: String { rawValue }
    }

    /// Ctrl-C at any moment of a batch's start-up: patina stops what it started, collects,
    /// exits 130 within the bound and leaves nothing running: no container, no process, no mount.
    @Test(arguments: StartUpMoment.allCases)
    func ctrlCDuringStartUpLeavesNothingRunning(_ moment: StartUpMoment) throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.bash("tail -f /dev/null"), .text("unreachable")])
        try repo.write("../tasks.txt", "task one\ntask two\ntask three\n")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = try StartedPatina(patina, batchArguments(["--jobs", "3", repo.root.appendingPathComponent("tasks.txt").path]))
        // The store (a link to patina's neutral folder) exists once the first run starts.
        let mounted = { MountTable.points(under: repo.store) + MountTable.points(under: repo.root) }
        let ready: () -> Bool = switch moment {
        case .runStarting: { !((try? FileManager.default.contentsOfDirectory(atPath: repo.store.appendingPathComponent("runs").path)) ?? []).isEmpty }
        case .viewMounted: { mounted().contains { $0.contains("/views/") } }
        case .holderCreated: { (try? self.containers(repo, role: "network")) ?? 0 > 0 }
        case .agentCreatedTwice: { (try? self.agentContainers(repo)) ?? 0 > 0 }
        }
        started.wait(until: ready, seconds: 120, settle: 0)
        #expect(!Self.processes(mentioning: repo.root.path).isEmpty, "the check below sees patina while it runs")
        let sent = Date()
        if moment == .agentCreatedTwice {
            started.process.interrupt()
            Thread.sleep(forTimeInterval: 0.3)
        }
        started.interrupt()
        #expect(Date().timeIntervalSince(sent) < 30, "patina took \(Int(Date().timeIntervalSince(sent))) s to stop")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        let processes = Self.processes(mentioning: repo.root.path)
        #expect(processes.isEmpty, "\(processes)")
        #expect(mounted().isEmpty, "\(mounted())")
        let batch = try #require(try batches(patina).first)
        #expect(batch["status"] as? String == "interrupted")
    }

    /// Live processes whose command line names `text` (patina, what it forked, its docker clients).
    static func processes(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int32($0) != nil }.compactMap { pid in
            // Read to its end: a /proc file says it is empty (a docker client's line is long).
            guard let data = try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/cmdline")).readToEnd(),
                  !data.isEmpty else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid) \(line.prefix(160))" : nil
        }
    }

    @Test func aColdBatchBuildsEachImageOnce() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.text("nothing to do")])
        // A base image of its own makes every image of this test new (tags are content hashes).
        let cold = "patina-test/cold-\(UUID().uuidString.prefix(8).lowercased()):latest"
        try ProcessRunner.check(["docker", "tag", TestEnvironment.baseImage, cold])
        var patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        patina.extraEnvironment["PATINA_HOME"] = repo.home.path
        let output = try patina.run(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", cold,
                                     "--attempts", "3", "--jobs", "3", "--json", "say hello"])
        let record = try PatinaRunner.record(output)
        let runs = record["runs"] as? [[String: Any]] ?? []
        let images = Set(runs.compactMap { $0["image"] as? String })
        defer {
            for image in images { _ = try? ProcessRunner.run(["docker", "rmi", "-f", image]) }
            _ = try? ProcessRunner.run(["docker", "rmi", "-f", cold])
        }
        #expect(output.status == 0, "\(output.stderr.suffix(1500))")
        #expect(runs.count == 3)
        #expect(images.count == 1)
        let builds = output.stderr.split(separator: "\n").filter { $0.contains("building the agent image") }
        #expect(builds.count == 1, "\(output.stderr)")
        #expect(output.stderr.split(separator: "\n").filter { $0.contains("building the firewall image") }.count == 1)
    }

    @Test func aRateLimitedRunGoesBackInTheQueueAndSucceeds() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [
            .failing(.bash("echo r > r.txt && git add r.txt && git commit -qm retried"), status: 429, times: 1),
            .text("done after the rate limit"),
        ])
        var patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        // Claude Code gives up at once, patina waits one second before the retry.
        patina.extraEnvironment["CLAUDE_CODE_MAX_RETRIES"] = "0"
        patina.extraEnvironment["PATINA_RATE_LIMIT_BACKOFF"] = "1"
        try repo.write("../tasks.txt", "task limited\n")
        let output = try patina.run(batchArguments(["--json", repo.root.appendingPathComponent("tasks.txt").path]))
        #expect(output.status == 0, "\(output.stderr.suffix(1500))")
        let record = try PatinaRunner.record(output)
        let runs = record["runs"] as? [[String: Any]] ?? []
        let run = try #require(runs.first)
        #expect(runs.count == 1)
        #expect(run["status"] as? String == "succeeded")
        let requeues = run["requeues"] as? [[String: Any]] ?? []
        #expect(requeues.count == 1)
        let requeueReason = requeues.first?["reason"] as? String ?? ""
        #expect(requeueReason.contains("429"))
        #expect(try repo.git("show", "\(run["branch"] as? String ?? ""):r.txt") == "r")
        // The empty rate-limited run left no branch behind.
        #expect(try repo.git("branch", "--list", "patina/*").split(separator: "\n").count == 1)
        #expect(output.stderr.contains("back in the queue"))
    }
}
