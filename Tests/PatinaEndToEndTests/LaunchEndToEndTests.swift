import Foundation
import PatinaCore
import PatinaTestSupport
import Testing

/// The network holder starts while a run is still planned (its start is the longest part
/// of the sandbox): what that leaves behind when planning fails or patina is killed.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(5)))
struct LaunchEndToEndTests {
    /// docker's own record of the repository's network holders since `since`: "ACTION NAME" lines.
    func holderEvents(_ repo: TemporaryRepository, since: Date) throws -> [String] {
        let key = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git")).repositoryKey
        return try ProcessRunner.check([
            "docker", "events", "--since", String(format: "%.3f", since.timeIntervalSince1970 - 1),
            "--until", String(format: "%.3f", Date().timeIntervalSince1970 + 0.5),
            "--filter", "type=container", "--filter", "label=patina.repo=\(key)", "--filter", "label=patina.role=network",
            "--format", "{{.Action}} {{.Actor.Attributes.name}}",
        ]).split(separator: "\n").map(String.init)
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
