import Foundation
import PatinaCore
import PatinaSandbox
import PatinaTestSupport
import Testing

/// The network holder starts while a run is still planned (its start is the longest part
/// of the sandbox), and the agent's container while the holder applies the firewall: what
/// each waits for, and what is left behind when planning or the firewall fails or patina
/// is killed.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(5)))
struct LaunchEndToEndTests {
    /// docker's own record of the repository's network holders since `since`: "ACTION NAME" lines.
    func holderEvents(_ repo: TemporaryRepository, since: Date) throws -> [String] {
        try containerEvents(repo, since: since, role: "network", format: "{{.Action}} {{.Actor.Attributes.name}}")
    }

    func containerEvents(_ repo: TemporaryRepository, since: Date, role: String, format: String) throws -> [String] {
        let key = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git")).repositoryKey
        return try ProcessRunner.check([
            "docker", "events", "--since", String(format: "%.3f", since.timeIntervalSince1970 - 1),
            "--until", String(format: "%.3f", Date().timeIntervalSince1970 + 0.5),
            "--filter", "type=container", "--filter", "label=patina.repo=\(key)", "--filter", "label=patina.role=\(role)",
            "--format", format,
        ]).split(separator: "\n").map(String.init)
    }

    /// When docker says the container with `role` did `action` (seconds since 1970).
    func eventTime(_ repo: TemporaryRepository, since: Date, role: String, action: String) throws -> Double? {
        for line in try containerEvents(repo, since: since, role: role, format: "{{.Action}} {{.TimeNano}}") {
            let words = line.split(separator: " ")
            if words.count == 2, words[0] == action, let nanoseconds = Double(words[1]) { return nanoseconds / 1e9 }
        }
        return nil
    }

    /// The repository's own apply.sh (its firewall's policy is its to configure): patina's,
    /// after `prefix`.
    func slowApply(_ prefix: String) throws -> String {
        let shipped = try String(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("firewall/apply.sh.mustache"), encoding: .utf8)
        return shipped.replacingOccurrences(of: "set -euo pipefail\n", with: "set -euo pipefail\n\(prefix)\n")
    }

    /// The agent's container starts while the holder still applies the firewall (here for
    /// three seconds): the namespace is closed meanwhile (a process started in the agent's
    /// container then reaches nothing), and the probe holds the self-test until patina says
    /// the rules are in, so the self-test proves the applied firewall (run before it, the
    /// canary would get its traffic).
    @Test func theAgentsContainerStartsWhileTheFirewallIsAppliedAndItsSelfTestWaits() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/firewall/apply.sh.mustache": try slowApply("sleep 3"),
        ])
        let model = try FakeModel(script: [.bash("echo done > done.txt && git add done.txt && git commit -qm done"), .text("Done.")])
        let gateway = FakeModel.bridgeGateway()
        let listener = try Canary(address: gateway)
        defer { listener.stop() }
        let since = Date()
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let finished = BackgroundRun { try patina.yolo("after a slow firewall") }
        // While the rules are applied: a process in the agent's container (as anything the
        // image ran before the probe would be) tries the host.
        let attempt = awaitContainer(of: repo, endingIn: "-agent", whereSucceeds: ["true"], seconds: 10).map { agent in
            (try? ProcessRunner.run(["docker", "exec", agent, "bash", "-c",
                "timeout 1 bash -c 'exec 3<>/dev/tcp/\(gateway)/\(listener.tcpPort) && echo CONNECTED'; echo \"EXIT:$?\""]))
                .map { $0.stdout + $0.stderr } ?? "docker exec failed"
        }
        let run = try FinishedRun(try #require(finished.wait()))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        let tried = try #require(attempt, "the agent's container never ran while the firewall was applied")
        #expect(!tried.contains("CONNECTED") && tried.contains("EXIT:"), "before the rules: \(tried)")
        #expect(listener.received.isEmpty, "a connection made before the rules reached the host: \(listener.received)")
        let holderStart = try #require(try eventTime(repo, since: since, role: "network", action: "start"))
        let agentStart = try #require(try eventTime(repo, since: since, role: "agent", action: "start"))
        #expect(agentStart - holderStart < 2, "the agent's container waited for the firewall: started \(agentStart - holderStart) s after the holder")
        let probes = run.file("probes.txt") ?? ""
        #expect(probes.contains("PASS") && !probes.contains("FAIL"), "\(probes)")
        let endLine = probes.split(separator: "\n").last { $0.hasPrefix("INFO self-test ended at ") } ?? ""
        let selfTestEnd = try #require(Double(endLine.dropFirst("INFO self-test ended at ".count))) / 1e6
        #expect(selfTestEnd - holderStart > 3, "the self-test ended \(selfTestEnd - holderStart) s after the holder started: before the rules were in")
        let firewall = run.file("firewall.txt") ?? ""
        #expect(firewall.contains("nothing arrived"), "\(firewall)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// A firewall that cannot be applied while the agent's container already runs its
    /// probe: the run stops with the holder's reason, Claude Code never starts, the
    /// container is gone and nothing of the run is left.
    @Test func aFirewallThatFailsWhileTheAgentsContainerWaitsStopsTheRun() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/firewall/apply.sh.mustache": try slowApply("sleep 2; echo 'no rules today' >&2; exit 3"),
        ])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [.bash("echo should-never-run > x.txt"), .text("Done.")])
        let since = Date()
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("never runs"))
        // The environment failed (exit 3), not the run's agent.
        #expect(run.output.status == 3, "\(run.output.stderr)")
        #expect(run.status == "error")
        let reason = run.record["reason"] as? String ?? ""
        #expect(reason == "the firewall could not be applied: no rules today", "\(reason)")
        #expect(try eventTime(repo, since: since, role: "agent", action: "start") != nil, "the agent's container never started")
        #expect(model.requests().isEmpty, "the agent must not have started")
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func aHolderStartedWhilePlanningIsRemovedWhenPlanningFails() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.text("done")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        // One good run: the netguard image exists (only an existing image is started early).
        let first = try patina.yolo("warm up")
        #expect(first.status == 0, "\(first.stderr)")

        // A repository profile that libseccomp compiles to allow-all: refused while planning,
        // after the holder's start began.
        try repo.write(".patina/templates/seccomp/profile.json.mustache", """
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
             "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}], "x": {{{allowedNames}}} }
            """)
        let since = Date()
        let output = try patina.yolo("refused")
        #expect(output.status == 2)
        #expect(output.stderr.contains("the compiled seccomp filter allows"), "\(output.stderr)")
        let events = try holderEvents(repo, since: since)
        #expect(events.contains { $0.hasPrefix("create ") }, "the holder was not started early: \(events)")
        #expect(events.contains { $0.hasPrefix("destroy ") }, "the holder was not removed: \(events)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        #expect(store.list().count == 1, "only the first run has a record")
        #expect(store.pending().isEmpty, "the refused run is still marked pending")
        let runs = try FileManager.default.contentsOfDirectory(atPath: store.runsDirectory.path)
        #expect(runs.count == 1, "the refused run's directory is left: \(runs)")
        #expect(try repo.git("branch", "--list", "patina/*").split(separator: "\n").count == 1)
    }

    /// An early holder that waited longer than its patience (a long image build; here the
    /// patience is set to nothing) is replaced before the rules are handed over: the run
    /// still gets a firewall applied and proven, and the first holder is gone.
    @Test func anEarlyHolderThatWaitedTooLongIsReplaced() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.text("done")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        // One good run: the netguard image exists (only an existing image is started early).
        #expect(try patina.yolo("warm up").status == 0)
        let since = Date()
        var impatient = patina
        impatient.extraEnvironment["PATINA_HOLDER_PATIENCE"] = "0"
        let run = try FinishedRun(impatient.yolo("after a replaced holder"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        // The run's holders: both go by the run's holder name.
        let events = try holderEvents(repo, since: since).filter { $0.hasSuffix(" patina-\(run.id)-net") }
            .map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(events.filter { $0 == "create" }.count == 2, "the early holder was not replaced: \(events)")
        #expect(events.filter { $0 == "destroy" }.count == 2, "\(events)")
        let probes = run.file("probes.txt") ?? ""
        #expect(probes.contains("PASS") && !probes.contains("FAIL"), "\(probes)")
        #expect((run.file("firewall.txt") ?? "").contains("nothing arrived"))
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func aHolderLeftByAKilledPatinaBeforeItsRecordIsRemovedByTheNextCommand() throws {
        let repo = try TemporaryRepository()
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        // What a patina SIGKILLed between the holder's start and the run's record leaves: the
        // pending marker with its (now dead) pid, the run directory without run.json, and the
        // holder itself, labelled as patina labels it.
        let id = "20990101-000000-killed-early-abcd"
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        try store.markPending(id, pid: dead.processIdentifier)
        let runDirectory = store.runDirectory(id)
        try FileManager.default.createDirectory(at: runDirectory.appendingPathComponent("config/firewall"), withIntermediateDirectories: true)
        let holder = "patina-\(id)-net"
        _ = try ProcessRunner.check([
            "docker", "run", "--detach", "--name", holder, "--label", "patina=1", "--label", "patina.run=\(id)",
            "--label", "patina.repo=\(store.repositoryKey)", "--label", "patina.role=network",
            TestEnvironment.baseImage, "sleep", "600",
        ])
        #expect(try PatinaRunner.leftoverContainers(repository: repo) == [holder])

        let listed = try PatinaRunner(repository: repo).run(["runs"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty, "the holder is still there")
        #expect(store.pending().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: runDirectory.path), "the run directory without a record is left")
    }
}

