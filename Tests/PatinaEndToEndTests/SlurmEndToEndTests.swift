import Foundation
import PatinaCore
import PatinaTestSupport
import Testing

/// The test cluster: `scripts/setup-slurm` (munged, slurmctld, two `slurmd -N` nodes on this
/// host and one in a container with its own host name, under /var/lib/patina-test-slurm),
/// started once per test process.
enum SlurmTestCluster {
    static let directory = URL(fileURLWithPath: ProcessInfo.processInfo.environment["PATINA_SLURM_DIR"] ?? "/var/lib/patina-test-slurm")
    /// Where a test's repository and patina home live: every node mounts it at this path.
    static var shared: URL { directory.appendingPathComponent("shared") }
    /// The node in a container: its own host name and process namespace.
    static let containerNode = "patina-test-c1"
    static let nodeContainer = "patina-test-slurm-c1"

    /// SLURM_CONF of the running cluster; throws when it could not be started.
    static let conf: Result<String, ProcessRunner.Failure> = start()

    /// Starts what is not running (idempotent; the container node after a test killed it); SLURM_CONF.
    static func start() -> Result<String, ProcessRunner.Failure> {
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/setup-slurm")
        // Daemons started from a test's thread would inherit its blocked signals (SIGTERM
        // included): the script runs with an empty signal mask.
        let unblocked = "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])"
        guard let output = try? ProcessRunner.run(["python3", "-c", unblocked, script.path]), output.status == 0,
              let line = output.stdout.split(separator: "\n").last(where: { $0.hasPrefix("SLURM_CONF=") })
        else { return .failure(ProcessRunner.Failure(description: "scripts/setup-slurm failed")) }
        return .success(String(line.dropFirst("SLURM_CONF=".count)))
    }

    /// Runs the cluster's nodes see (and Slurm's own files: state, spool, logs).
    static func files() -> [URL] {
        let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
        return (enumerator?.allObjects as? [URL] ?? []).filter { !$0.path.hasSuffix(".key") && !$0.path.hasSuffix(".seed") }
    }
}

/// Set once a background command returned.
final class EndedFlag: @unchecked Sendable {
    // @unchecked: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

extension Trait where Self == ConditionTrait {
    /// Needs the test Slurm cluster: on with `PATINA_E2E_SLURM=1` (scripts/test sets it).
    static var requiresSlurm: Self {
        .enabled(if: ProcessInfo.processInfo.environment["PATINA_E2E_SLURM"] == "1",
                 "needs the test Slurm cluster (PATINA_E2E_SLURM=1; scripts/setup-slurm starts it)")
    }
}

/// `patina batch --on slurm` on a real Slurm (22.05, three nodes on two hosts), real Docker, real Claude
/// Code; only the model is the scripted fake. The submitting patina serves the model proxy
/// and holds the key; the nodes' tasks get a placeholder only.
@Suite(.serialized, .requiresDocker, .requiresSlurm, .timeLimit(.minutes(10)))
struct SlurmEndToEndTests {
    func slurmPatina(_ repo: TemporaryRepository, model: FakeModel, key: String) throws -> PatinaRunner {
        let conf = try SlurmTestCluster.conf.get()
        var patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        patina.extraEnvironment["SLURM_CONF"] = conf
        patina.extraEnvironment["ANTHROPIC_API_KEY"] = key
        patina.extraEnvironment["PATINA_SLURM_POLL"] = "0.5"
        return patina
    }

    func arguments(_ extra: [String]) -> [String] {
        ["batch", "--on", "slurm", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage] + extra
    }

    func agentContainers(_ repo: TemporaryRepository) throws -> Int {
        let key = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git")).repositoryKey
        return try ProcessRunner.check(["docker", "ps", "--filter", "label=patina.repo=\(key)", "--filter", "label=patina.role=agent",
                                        "--format", "{{.Names}}"]).split(separator: "\n").count
    }

    /// A model whose agent commits w.txt, then hangs in its Bash call.
    func hangingModel() throws -> FakeModel {
        try FakeModel(script: [
            .bash("echo w > w.txt && git add w.txt && git commit -qm work && tail -f /dev/null"),
            .text("unreachable"),
        ])
    }

    /// `patina batch --on slurm ARGS tasks.txt` in the background; `ended` is set once it returned.
    func startBatch(_ patina: PatinaRunner, _ repo: TemporaryRepository, _ extra: [String]) -> (BackgroundRun, EndedFlag) {
        let ended = EndedFlag()
        let run = BackgroundRun {
            defer { ended.set() }
            return try patina.run(self.arguments(extra + [repo.root.appendingPathComponent("tasks.txt").path]))
        }
        return (run, ended)
    }

    /// This process's environment with the test cluster's SLURM_CONF.
    func clusterEnvironment(_ base: [String: String] = ProcessInfo.processInfo.environment) throws -> [String: String] {
        var environment = base
        environment["SLURM_CONF"] = try SlurmTestCluster.conf.get()
        return environment
    }

    /// Until the repository's first agent container runs (at most 180 s), or `going` says the batch ended.
    func waitForAgent(_ repo: TemporaryRepository, while going: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(180)
        while (try agentContainers(repo)) < 1 && Date() < deadline && going() { Thread.sleep(forTimeInterval: 0.3) }
    }

    /// `patina runs` on the container node (through srun), as `patina` would run it.
    func runsOnTheContainerNode(_ repo: TemporaryRepository, _ patina: PatinaRunner) throws -> ProcessRunner.Output {
        try ProcessRunner.run(["srun", "--nodelist=\(SlurmTestCluster.containerNode)", "--chdir=\(repo.path.path)",
                               TestEnvironment.patinaBinary.path, "runs"], in: repo.path, environment: try clusterEnvironment(patina.environment))
    }

    /// `scontrol update NodeName=NODES State=STATE` on the test cluster.
    func setNodes(_ nodes: [String], _ state: String) throws {
        let environment = try clusterEnvironment()
        var arguments = ["scontrol", "update", "NodeName=\(nodes.joined(separator: ","))", "State=\(state)"]
        if state == "DRAIN" { arguments.append("Reason=patina-e2e") }
        _ = try ProcessRunner.run(arguments, environment: environment)
    }

    /// Every file under `directory` holding `needle`.
    func filesContaining(_ needle: String, under directories: [URL]) -> [String] {
        var hits: [String] = []
        for directory in directories {
            let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)
            while let url = enumerator?.nextObject() as? URL {
                guard let data = FileManager.default.contents(atPath: url.path), data.count < 64 << 20 else { continue }
                if data.range(of: Data(needle.utf8)) != nil { hits.append(url.path) }
            }
        }
        return hits
    }

    /// The node-side task processes now.
    func taskPIDs() -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { $0.allSatisfy(\.isNumber) } ?? []
        return pids.compactMap { pid in
            guard let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  String(decoding: cmd, as: UTF8.self).contains("batch-task") else { return nil }
            return Int32(pid)
        }
    }

    /// The environment and command line of every node-side task process now.
    func taskProcesses() -> [(cmdline: String, environ: String)] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { $0.allSatisfy(\.isNumber) } ?? []
        return pids.compactMap { pid in
            guard let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  String(decoding: cmd, as: UTF8.self).contains("batch-task") else { return nil }
            let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") ?? Data()
            return (String(decoding: cmd, as: UTF8.self), String(decoding: env, as: UTF8.self))
        }
    }

    @Test func fourRunsOverTwoNodesWithTheKeyOnlyHere() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let main = try repo.git("rev-parse", "main")
        let names = ["one", "two", "three", "four"]
        let model = try FakeModel(byTask: names.map { name in
            (match: "task \(name)", turns: [.bash("echo \(name) > \(name).txt && git add \(name).txt && git commit -qm \(name) && sleep 3"), .text("\(name) done")])
        })
        let key = "sk-ant-api03-slurm-e2e-" + UUID().uuidString.lowercased()
        let patina = try slurmPatina(repo, model: model, key: key)
        try repo.write("../tasks.jsonl", names.map { "{\"task\": \"task \($0)\", \"name\": \"\($0)\", \"check\": \"test -f \($0).txt\"}" }
            .joined(separator: "\n") + "\n")
        let started = Date()
        let ended = EndedFlag()
        let run = BackgroundRun {
            defer { ended.set() }
            return try patina.run(self.arguments(["--json", repo.root.appendingPathComponent("tasks.jsonl").path]))
        }
        // While the tasks run: their processes' environment and command line, and Slurm's
        // spool and state (the job's script and environment live there only while it runs).
        var seenTasks = 0
        var leaks: [String] = []
        let deadline = Date().addingTimeInterval(300)
        while !ended.isSet && Date() < deadline {
            for process in taskProcesses() {
                seenTasks += 1
                if process.environ.contains(key) || process.cmdline.contains(key) { leaks.append("a task's environment or command line") }
            }
            leaks += filesContaining(key, under: [SlurmTestCluster.directory])
            Thread.sleep(forTimeInterval: 0.3)
        }
        let output = try #require(run.wait())
        let seconds = Date().timeIntervalSince(started)
        #expect(output.status == 0, "\(output.stderr.suffix(3000))")
        #expect(seenTasks > 0, "no task process was seen running")
        let batch = try PatinaRunner.record(output)
        #expect(batch["status"] as? String == "succeeded")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 4)
        var nodes = Set<String>()
        for run in runs {
            let name = run["name"] as? String ?? ""
            #expect(run["status"] as? String == "succeeded", "\(name): \(run["reason"] ?? "")")
            #expect((run["check"] as? [String: Any])?["passed"] as? Bool == true, "\(name)")
            let executor = run["executor"] as? [String: Any] ?? [:]
            #expect(executor["kind"] as? String == "slurm")
            #expect((executor["job_id"] as? String ?? "").contains("_"))
            nodes.insert(executor["node"] as? String ?? "")
            // The branch came home to the user's repository.
            #expect(try repo.git("show", "\(run["branch"] as? String ?? ""):\(name).txt") == name)
            // What the agent spent, as the submitting patina's proxy counted it.
            #expect((run["requests"] as? Int ?? 0) >= 2, "\(name): \(run["requests"] ?? "nil")")
        }
        #expect(nodes.contains(SlurmTestCluster.containerNode) && nodes.count >= 2, "runs spread over the nodes: \(nodes)")
        // Over both hosts: this one and the container node's own.
        let hosts = Set(runs.compactMap { ($0["executor"] as? [String: Any])?["host"] as? String })
        #expect(hosts.count == 2 && hosts.contains(SlurmTestCluster.containerNode), "\(hosts)")
        // The fake model received the real key on every request, through the submitting patina.
        let credentials = Set(model.requests().compactMap { $0["x_api_key"] as? String })
        #expect(credentials == [key], "\(credentials)")
        // The key is nowhere on the shared filesystem, in Slurm's files or a task's environment.
        leaks += filesContaining(key, under: [repo.home, repo.path, SlurmTestCluster.directory])
        #expect(leaks.isEmpty, "the key leaked: \(Set(leaks))")
        let batchID = batch["id"] as? String ?? ""
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let slurm = store.root.appendingPathComponent("batches/\(batchID)/slurm")
        let script = try String(contentsOf: slurm.appendingPathComponent("job.sh"), encoding: .utf8)
        #expect(script.contains("batch-task") && !script.contains(key))
        let taskFile = slurm.appendingPathComponent("task-0.json")
        let mode = (try FileManager.default.attributesOfItem(atPath: taskFile.path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        print("slurm: 4 runs over 2 nodes in \(Int(seconds)) s")
    }

    @Test func ctrlCCancelsTheArrayAndEveryRunIsCollected() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try hangingModel()
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-ctrlc-" + UUID().uuidString.lowercased())
        let process = try patina.start(["yolo", "--on", "slurm", "--attempts", "3", "--jobs", "2",
                                        "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                        "work forever"])
        let deadline = Date().addingTimeInterval(240)
        while (try agentContainers(repo)) < 2 && Date() < deadline && process.isRunning {
            Thread.sleep(forTimeInterval: 0.3)
        }
        Thread.sleep(forTimeInterval: 3)
        #expect(process.isRunning)
        process.interrupt()
        let stopDeadline = Date().addingTimeInterval(150)
        while process.isRunning && Date() < stopDeadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(!process.isRunning, "patina did not stop after Ctrl-C")
        #expect(process.terminationStatus == 130)
        #expect(taskProcesses().isEmpty, "a task still runs")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)

        let out = try patina.run(["batches", "--json"])
        let batches = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] ?? []
        let batch = try #require(batches.first)
        #expect(batch["status"] as? String == "interrupted")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 2, "the third task never started: \(runs.map { $0["id"] ?? "" })")
        for run in runs {
            #expect(run["status"] as? String == "interrupted", "\(run["reason"] ?? "")")
            #expect(try repo.git("show", "\(run["branch"] as? String ?? ""):w.txt") == "w")
        }
    }

    @Test func noSbatchIsExitThreeAndNothingIsCreated() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try FakeModel(script: [.text("never asked")])
        var patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        // git and docker, but no Slurm client.
        let bin = repo.root.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        for tool in ["git", "docker"] {
            try FileManager.default.createSymbolicLink(atPath: bin.appendingPathComponent(tool).path, withDestinationPath: "/usr/bin/\(tool)")
        }
        patina.extraEnvironment["PATH"] = bin.path
        try repo.write("../tasks.txt", "task one\n")
        let output = try patina.run(arguments([repo.root.appendingPathComponent("tasks.txt").path]))
        #expect(output.status == 3, "\(output.stderr)")
        #expect(output.stderr.split(separator: "\n").count == 1 && output.stderr.contains("sbatch"), "\(output.stderr)")
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let batches = (try? FileManager.default.contentsOfDirectory(atPath: store.root.appendingPathComponent("batches").path)) ?? []
        #expect(batches.filter { !$0.hasPrefix(".") }.isEmpty, "\(batches)")
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)

        // A controller that does not answer: the same, quickly.
        let conf = try SlurmTestCluster.conf.get()
        let dead = repo.root.appendingPathComponent("slurm.conf")
        try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(of: "SlurmctldPort=", with: "SlurmctldPort=2")
            .write(to: dead, atomically: true, encoding: .utf8)
        var down = PatinaRunner(repository: repo, baseURL: model.baseURL)
        down.extraEnvironment["SLURM_CONF"] = dead.path
        let refused = try down.run(arguments([repo.root.appendingPathComponent("tasks.txt").path]))
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("controller does not answer"), "\(refused.stderr)")
        let after = (try? FileManager.default.contentsOfDirectory(atPath: store.root.appendingPathComponent("batches").path)) ?? []
        #expect(after.filter { !$0.hasPrefix(".") }.isEmpty, "\(after)")
        #expect(model.requests().isEmpty)
    }

    @Test func aNodeWithoutDockerIsAnErrorNamingTheNode() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try FakeModel(script: [.text("never asked")])
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-nodocker-" + UUID().uuidString.lowercased())
        try repo.write("../tasks.txt", "task one\ntask two\n")
        // The nodes' patina finds no Docker engine where their environment points.
        let output = try patina.run(arguments(["--json", "--slurm-arg=--export=ALL,DOCKER_HOST=unix:///nonexistent/docker.sock",
                                               repo.root.appendingPathComponent("tasks.txt").path]))
        #expect(output.status == 1, "\(output.stderr.suffix(2000))")
        let batch = try PatinaRunner.record(output)
        #expect(batch["status"] as? String == "failed")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 2)
        for run in runs {
            let reason = run["reason"] as? String ?? ""
            #expect(run["status"] as? String == "error")
            #expect(reason.contains("node patina-test-"), "\(reason)")
            #expect((run["executor"] as? [String: Any])?["node"] as? String != nil)
        }
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(model.requests().isEmpty)
    }

    @Test func theBatchsBudgetIsKeptHereAcrossTheNodes() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        // Each answer reports 100,000 input tokens ($0.40 at the default model's price).
        let model = try FakeModel(script: [
            .bash("echo one > one.txt && git add one.txt && git commit -qm one"),
            .bash("echo two > two.txt && git add two.txt && git commit -qm two"),
            .bash("echo three > three.txt && git add three.txt && git commit -qm three"),
            .text("all three"),
        ])
        try model.setUsage(["input_tokens": 100_000, "output_tokens": 0])
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-budget-" + UUID().uuidString.lowercased())
        let output = try patina.run(["yolo", "--on", "slurm", "--attempts", "3", "--jobs", "1", "--max-total-cost", "0.5", "--json",
                                     "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage, "spend"])
        #expect(output.status == 1, "\(output.stderr.suffix(2000))")
        let batch = try PatinaRunner.record(output)
        #expect(batch["status"] as? String == "budget_exceeded", "\(output.stderr.suffix(2000))")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        #expect(!runs.isEmpty && runs.count < 3, "queued tasks were cancelled once the budget was spent: \(runs.count)")
        for run in runs {
            #expect(run["status"] as? String == "budget_exceeded", "\(run["reason"] ?? "")")
        }
        // The submitting patina's proxies let two answers through in all, then refused.
        #expect(model.answeredMessages().count == 2, "\(model.answeredMessages().count)")
        #expect(try repo.git("log", "--format=%s", runs.first?["branch"] as? String ?? "").split(separator: "\n").prefix(2) == ["two", "one"])
    }

    @Test func tasksStartingTogetherOnOneHostBuildAColdImageOnce() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try FakeModel(script: [.text("nothing to do")])
        // A base image of its own makes every image of this test new (tags are content hashes).
        let cold = "patina-test/cold-slurm-\(UUID().uuidString.prefix(8).lowercased()):latest"
        try ProcessRunner.check(["docker", "tag", TestEnvironment.baseImage, cold])
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-cold-" + UUID().uuidString.lowercased())
        let output = try patina.run(["yolo", "--on", "slurm", "--attempts", "4", "--json",
                                     "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", cold, "say hello"])
        let batch = try PatinaRunner.record(output)
        let runs = batch["runs"] as? [[String: Any]] ?? []
        let images = Set(runs.compactMap { $0["image"] as? String })
        defer {
            for image in images { _ = try? ProcessRunner.run(["docker", "rmi", "-f", image]) }
            _ = try? ProcessRunner.run(["docker", "rmi", "-f", cold])
        }
        #expect(output.status == 0, "\(output.stderr.suffix(2000))")
        #expect(runs.count == 4 && images.count == 1)
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let slurm = store.root.appendingPathComponent("batches/\(batch["id"] as? String ?? "")/slurm")
        let outputs = try FileManager.default.contentsOfDirectory(atPath: slurm.path).filter { $0.hasSuffix(".out") }
        #expect(outputs.count == 4)
        let lines = try outputs.flatMap { try String(contentsOf: slurm.appendingPathComponent($0), encoding: .utf8).split(separator: "\n") }
        // Once per host (the lock is in each host's temporary directory): this one and the container node.
        let hosts = Set(runs.compactMap { ($0["executor"] as? [String: Any])?["host"] as? String })
        let builds = lines.filter { $0.contains("building the agent image") }.count
        #expect(builds >= 1 && builds <= hosts.count, "\(hosts): \(lines.filter { $0.contains("building") })")
        #expect(Set(runs.compactMap { ($0["executor"] as? [String: Any])?["node"] as? String }).count >= 2)
    }

    @Test func aTaskKilledBeforeItCollectedIsCollectedByTheSubmittingPatina() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try hangingModel()
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-kill-" + UUID().uuidString.lowercased())
        try repo.write("../tasks.txt", "task killed\n")
        // On a node of this host: the submitting patina removes its containers itself.
        let (run, ended) = startBatch(patina, repo, ["--json", "--slurm-arg=--nodelist=patina-test-n1"])
        try waitForAgent(repo) { !ended.isSet }
        Thread.sleep(forTimeInterval: 3)
        // SIGKILL to the node's patina (as after KillWait): it cannot collect, its containers stay.
        let pids = taskPIDs()
        #expect(pids.count == 1)
        for pid in pids { kill(pid, SIGKILL) }
        let output = try #require(run.wait())
        #expect([1, 130].contains(output.status), "\(output.stderr.suffix(2000))")
        #expect(output.stderr.contains("collecting it here"), "\(output.stderr.suffix(2000))")
        let batch = try PatinaRunner.record(output)
        let record = try #require((batch["runs"] as? [[String: Any]])?.first)
        #expect(record["status"] as? String == "interrupted", "\(record["reason"] ?? "")")
        #expect(try repo.git("show", "\(record["branch"] as? String ?? ""):w.txt") == "w")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// The container node is killed mid-run (its slurmd, its patina, its pid namespace gone;
    /// the agent's containers stay on the engine). Slurm marks the node down (SlurmdTimeout
    /// 10 s) and the task NODE_FAIL; the submitting patina collects the run from the shared
    /// filesystem (`interrupted`, the reason naming the lost node) and leaves its containers
    /// alone; the next patina command on that node removes them; `batch resume --on slurm`
    /// runs the item again.
    /// Slurm's requeue (patina submits with `--requeue`): the container node is lost with a
    /// run on it, Slurm starts the task again on a node of this host, and the submitting
    /// patina hands that start a new run — a new run id, proxy and placeholder — while the
    /// lost run, collected here from the shared filesystem with its work, becomes one the
    /// batch replaced. The new run starts over from the base; the batch succeeds.
    @Test func aLostNodesTaskIsRequeuedAndItsItemStartsOverOnAnotherNode() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let base = try repo.git("rev-parse", "main")
        let model = try hangingModel()
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-requeue-" + UUID().uuidString.lowercased())
        try repo.write("../tasks.txt", "task requeued\n")
        // The first start goes to the container node: the others take nothing new meanwhile.
        let hostNodes = ["patina-test-n1", "patina-test-n2"]
        try setNodes(hostNodes, "DRAIN")
        defer {
            try? setNodes(hostNodes, "RESUME")
            _ = SlurmTestCluster.start()
        }
        let (run, ended) = startBatch(patina, repo, ["--json", "--check", "test -f r.txt"])
        try waitForAgent(repo) { !ended.isSet }
        try #require(try agentContainers(repo) == 1, "the first start's agent never ran")
        Thread.sleep(forTimeInterval: 2)
        try setNodes(hostNodes, "RESUME")
        // What the next start's agent does (the fake model picks its turn from the conversation).
        try model.update(script: [.bash("echo r > r.txt && git add r.txt && git commit -qm again"), .text("done")])
        // The node is lost: everything in its container dies at once.
        try ProcessRunner.check(["docker", "kill", SlurmTestCluster.nodeContainer])
        let output = try #require(run.wait())
        #expect(output.status == 0, "\(output.stderr.suffix(3000))")
        let batch = try PatinaRunner.record(output)
        #expect(batch["status"] as? String == "succeeded")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        let again = try #require(runs.first)
        #expect(runs.count == 1)
        #expect(again["status"] as? String == "succeeded", "\(again["reason"] ?? "")")
        #expect((again["check"] as? [String: Any])?["passed"] as? Bool == true)
        let executor = again["executor"] as? [String: Any] ?? [:]
        #expect(hostNodes.contains(executor["node"] as? String ?? ""), "\(executor)")
        #expect(executor["restarts"] as? Int == 1, "\(executor)")
        let requeues = again["requeues"] as? [[String: Any]] ?? []
        #expect(requeues.count == 1 && (requeues.first?["reason"] as? String ?? "").contains(SlurmTestCluster.containerNode), "\(requeues)")
        // It started over from the base: none of the lost run's work is on its branch.
        let branch = again["branch"] as? String ?? ""
        #expect(try repo.git("show", "\(branch):r.txt") == "r")
        #expect(try repo.git("rev-parse", "\(branch)~1") == base)
        // The lost run: replaced, collected here with its work, its spend in the batch's.
        let replaced = try #require((batch["replaced_runs"] as? [[String: Any]])?.first)
        #expect(replaced["replaced_by"] as? String == again["id"] as? String)
        #expect(replaced["status"] as? String == "interrupted")
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let lost = try store.load(replaced["id"] as? String ?? "")
        #expect(lost.executor?.node == SlurmTestCluster.containerNode)
        #expect(try repo.git("show", "\(lost.branch):w.txt") == "w")
        #expect(output.stderr.contains("starts over as run \(again["id"] as? String ?? "")"), "\(output.stderr.suffix(2000))")
        // The lost start's task file is gone for good: the task's file names the new run.
        let taskFile = store.root.appendingPathComponent("batches/\(batch["id"] as? String ?? "")/slurm/task-0.json")
        let task = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: taskFile)) as? [String: Any])
        #expect(task["run_id"] as? String == again["id"] as? String && task["restarts"] as? Int == 1)
        // The lost run's containers are the lost node's: the next patina there removes them.
        #expect(try agentContainers(repo) == 1)
        guard case .success = SlurmTestCluster.start() else {
            Issue.record("the node did not come back")
            return
        }
        let there = try runsOnTheContainerNode(repo, patina)
        #expect(there.status == 0, "\(there.stderr)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// `scontrol requeue` of a running task (as a preemption does): its node is alive, so
    /// its patina gets Slurm's SIGTERM and collects its run (`interrupted`) while the task
    /// completes; only then does the submitting patina hand the next start a new run, which
    /// starts over and succeeds. Nothing is collected twice.
    @Test func aTaskRequeuedOnALiveNodeIsCollectedThereAndStartsOver() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try hangingModel()
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-preempt-" + UUID().uuidString.lowercased())
        try repo.write("../tasks.txt", "task preempted\n")
        let (run, ended) = startBatch(patina, repo, ["--json"])
        try waitForAgent(repo) { !ended.isSet }
        try #require(try agentContainers(repo) == 1, "the first start's agent never ran")
        Thread.sleep(forTimeInterval: 2)
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let first = try #require(store.running().first)
        let task = try #require(first.executor?.jobID)
        try model.update(script: [.bash("echo r > r.txt && git add r.txt && git commit -qm again"), .text("done")])
        let requeue = try ProcessRunner.run(["scontrol", "requeue", task], environment: try clusterEnvironment())
        #expect(requeue.status == 0, "\(requeue.stderr)")
        let output = try #require(run.wait())
        #expect(output.status == 0, "\(output.stderr.suffix(3000))")
        let batch = try PatinaRunner.record(output)
        let again = try #require((batch["runs"] as? [[String: Any]])?.first)
        #expect(again["status"] as? String == "succeeded", "\(again["reason"] ?? "")")
        #expect((again["executor"] as? [String: Any])?["restarts"] as? Int == 1)
        #expect(try repo.git("show", "\(again["branch"] as? String ?? ""):r.txt") == "r")
        // The first run: collected by its own node's patina on SIGTERM, not here.
        let earlier = try store.load(first.id)
        #expect(earlier.status == .interrupted, "\(earlier.reason ?? "")")
        #expect(earlier.reason?.contains("was collected") != true && earlier.reason?.contains("before the run was collected") != true, "\(earlier.reason ?? "")")
        #expect(try repo.git("show", "\(earlier.branch):w.txt") == "w")
        let replaced = (batch["replaced_runs"] as? [[String: Any]])?.first
        #expect(replaced?["id"] as? String == first.id && replaced?["replaced_by"] as? String == again["id"] as? String)
        #expect(!output.stderr.contains("collecting it here"), "\(output.stderr.suffix(2000))")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// With `--no-requeue` (a cluster's or a user's choice), a lost node's run ends
    /// `interrupted` and `batch resume` runs it again.
    @Test func aLostNodesRunIsCollectedHereItsContainersThereAndResumeRunsItAgain() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try hangingModel()
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-lost-" + UUID().uuidString.lowercased())
        try repo.write("../tasks.txt", "task lost\n")
        let (run, ended) = startBatch(patina, repo, ["--json", "--slurm-arg=--nodelist=\(SlurmTestCluster.containerNode)", "--slurm-arg=--no-requeue"])
        defer { _ = SlurmTestCluster.start() }
        try waitForAgent(repo) { !ended.isSet }
        Thread.sleep(forTimeInterval: 2)
        // The node is lost: everything in its container dies at once.
        try ProcessRunner.check(["docker", "kill", SlurmTestCluster.nodeContainer])
        let output = try #require(run.wait())
        #expect([1, 130].contains(output.status), "\(output.stderr.suffix(2000))")
        let batch = try PatinaRunner.record(output)
        let record = try #require((batch["runs"] as? [[String: Any]])?.first)
        let reason = record["reason"] as? String ?? ""
        #expect(record["status"] as? String == "interrupted", "\(reason)")
        #expect(reason.contains("node \(SlurmTestCluster.containerNode) was lost"), "\(reason)")
        #expect((record["executor"] as? [String: Any])?["host"] as? String == SlurmTestCluster.containerNode)
        // Its work came home from the shared filesystem.
        #expect(try repo.git("show", "\(record["branch"] as? String ?? ""):w.txt") == "w")
        // Its containers live on the lost node: no patina of this host removes them.
        #expect(try agentContainers(repo) == 1)
        let here = try patina.run(["runs"])
        #expect(here.status == 0, "\(here.stderr)")
        #expect(try agentContainers(repo) == 1, "a patina on this host removed the lost node's containers")

        // The node comes back; the next patina command there removes them.
        guard case .success = SlurmTestCluster.start() else {
            Issue.record("the node did not come back")
            return
        }
        let there = try runsOnTheContainerNode(repo, patina)
        #expect(there.status == 0, "\(there.stderr)")
        #expect(there.stderr.contains("removed the containers of run"), "\(there.stderr)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)

        // `batch resume --on slurm` runs the item again, on any node.
        try model.update(script: [.bash("echo r > r.txt && git add r.txt && git commit -qm resumed"), .text("done")])
        let resumed = try patina.run(["batch", "resume", "--on", "slurm", "--json", batch["id"] as? String ?? ""])
        #expect(resumed.status == 0, "\(resumed.stderr.suffix(2000))")
        let after = try PatinaRunner.record(resumed)
        let again = try #require((after["runs"] as? [[String: Any]])?.first)
        #expect(again["status"] as? String == "succeeded", "\(again["reason"] ?? "")")
        #expect((again["executor"] as? [String: Any])?["kind"] as? String == "slurm")
        #expect(try repo.git("show", "\(again["branch"] as? String ?? ""):r.txt") == "r")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// The submitting patina and the node both gone (SIGKILL, the node's container killed):
    /// the next patina command on this host asks squeue, and once Slurm requeued the task
    /// (that start is over) collects the run from the shared filesystem, leaving its
    /// containers to the node. The batch's patina is gone, so its job is cancelled (no
    /// task could reach the model) and the batch marked interrupted.
    @Test func withTheSubmitterGoneTooTheNextCommandHereCollectsALostNodesRun() throws {
        let repo = try TemporaryRepository(under: SlurmTestCluster.shared)
        let model = try hangingModel()
        let patina = try slurmPatina(repo, model: model, key: "sk-ant-api03-slurm-gone-" + UUID().uuidString.lowercased())
        try repo.write("../tasks.txt", "task orphaned\n")
        let process = try patina.start(arguments(["--slurm-arg=--nodelist=\(SlurmTestCluster.containerNode)",
                                                  repo.root.appendingPathComponent("tasks.txt").path]))
        defer { _ = SlurmTestCluster.start() }
        try waitForAgent(repo) { process.isRunning }
        Thread.sleep(forTimeInterval: 2)
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let id = try #require(store.running().first?.id)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try ProcessRunner.check(["docker", "kill", SlurmTestCluster.nodeContainer])
        // No patina command while Slurm finds the node lost and requeues its task.
        let cluster = try clusterEnvironment()
        let task = try #require(try store.load(id).executor?.jobID)
        var shown = ""
        let requeueDeadline = Date().addingTimeInterval(90)
        while !shown.contains("Restarts=1") && Date() < requeueDeadline {
            Thread.sleep(forTimeInterval: 1)
            shown = (try? ProcessRunner.run(["scontrol", "show", "job", task], environment: cluster))?.stdout ?? ""
        }
        try #require(shown.contains("Restarts=1"), "slurm did not requeue \(task): \(shown)")
        // A command here collects the run, whose start of the task is over.
        var record = try store.load(id)
        let until = Date().addingTimeInterval(90)
        var notes = ""
        while record.status == .running && Date() < until {
            let here = try patina.run(["runs"])
            notes += here.stderr
            record = try store.load(id)
            if record.status == .running { Thread.sleep(forTimeInterval: 2) }
        }
        #expect(record.status == .interrupted, "\(notes.suffix(1500))")
        #expect(record.reason?.contains("on \(SlurmTestCluster.containerNode) was requeued by Slurm") == true, "\(record.reason ?? "")")
        let batch = try BatchStore(runs: store).load(try #require(record.batch))
        #expect(batch.status == .interrupted, "\(notes.suffix(1500))")
        let states = try ProcessRunner.run(["squeue", "--noheader", "--array", "--states=all", "--jobs=\(try #require(batch.slurmJob))", "--format=%T"],
                                           environment: cluster)
        #expect(states.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["CANCELLED"], "\(states.stdout)")
        #expect(try repo.git("show", "\(record.branch):w.txt") == "w")
        // Its containers are the node's to remove.
        #expect(try agentContainers(repo) == 1)
        #expect(store.leftOnHost(SlurmTestCluster.containerNode) == [id])
        _ = SlurmTestCluster.start()
        let there = try runsOnTheContainerNode(repo, patina)
        #expect(there.status == 0, "\(there.stderr)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }
}
