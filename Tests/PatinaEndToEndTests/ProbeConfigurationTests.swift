import Foundation
import PatinaTestSupport
import Testing

/// What a repository is allowed to configure (capabilities added back, seccomp
/// relaxed) is what the probes expect: such a run starts, and the probes still
/// prove the rest of the protections.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(5)))
struct ProbeConfigurationTests {
    @Test func configuredCapabilityAndRelaxationPassTheProbes() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/config.json": #"{"cap_add": ["NET_BIND_SERVICE"], "seccomp": {"relax": ["unshare"]}}"#,
        ])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("grep -E '^(CapBnd|CapEff)' /proc/self/status; unshare --user true; echo \"UNSHARE:$?\""),
            .text("Checked."),
        ])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("check my sandbox"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        let probes = run.file("probes.txt") ?? ""
        #expect(probes.contains("PASS cap-bounding CapBnd 0000000000000400"), "\(probes)")
        #expect(probes.contains("PASS denied-call personality"), "\(probes)")
        #expect(run.record["seccomp_relaxed"] as? [String] == ["unshare"])
        let results = model.toolResults().joined(separator: "\n")
        #expect(results.contains("CapBnd:\t0000000000000400"), "\(results)")
        #expect(results.contains("CapEff:\t0000000000000000"), "\(results)")
        #expect(results.contains("UNSHARE:0"), "the relaxed call should work: \(results)")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    @Test func probeScriptCannotBeOverriddenByTheRepository() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/templates/probe.sh": "echo PASS everything fine\nexit 0\n",
        ])
        let model = try FakeModel(script: [.text("Done.")])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("nothing"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        let probes = run.file("probes.txt") ?? ""
        #expect(probes.contains("PASS seccomp mode 2"), "\(probes)")
        #expect(!probes.contains("everything fine"))
    }

    /// A probe that fails stops the run before Claude Code starts: with both calls
    /// the probe uses to prove the filter relaxed, it cannot prove it, and says so.
    @Test func failingHardeningProbeStopsTheRunBeforeTheAgentStarts() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/config.json": #"{"seccomp": {"relax": ["unshare", "personality"]}}"#,
        ])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [.bash("echo should-never-run > x.txt"), .text("Done.")])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("never runs"))
        #expect(run.output.status != 0)
        #expect(run.status == "error")
        #expect((run.record["reason"] as? String ?? "").contains("denied-call"), "\(run.record)")
        #expect(run.file("probes.txt")?.contains("FAIL denied-call") == true)
        #expect(model.requests().isEmpty, "the agent must not have started")
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// The agent's container is the one its probes run in: when docker cannot even start it
    /// (a limit this engine refuses), the run says so in docker's words, and nothing is left.
    @Test func aContainerDockerRefusesStopsTheRunWithDockersReason() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/config.json": #"{"limits": {"cpus": "4096"}}"#,
        ])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [.bash("echo should-never-run > x.txt"), .text("Done.")])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("never runs"))
        #expect(run.output.status != 0)
        #expect(run.status == "error")
        let reason = run.record["reason"] as? String ?? ""
        #expect(reason.hasPrefix("docker could not start the agent container: ") && reason.contains("CPU"), "\(reason)")
        #expect(model.requests().isEmpty, "the agent must not have started")
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// The probe is the system's bash running the system's tools: a devcontainer whose PATH
    /// starts in the worktree (where an earlier run's agent could have left a `chmod` that
    /// always succeeds) and whose BASH_ENV names a file there that exits does not reach it.
    @Test func theProbeRunsTheSystemsToolsWhateverTheImagesPathAndBashEnvName() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".devcontainer/devcontainer.json": """
                { "image": "\(TestEnvironment.baseImage)",
                  "containerEnv": { "PATH": "/workspace/bin:${containerEnv:PATH}", "BASH_ENV": "/workspace/bash-env.sh" } }
                """,
            "bash-env.sh": "echo 'BASH_ENV was read' >&2\nexit 7\n",
            "bin/chmod": "#!/bin/sh\nexit 0\n",
            "bin/bash": "#!/bin/sh\necho 'the worktree bash ran' >&2\nexit 7\n",
        ])
        for tool in ["bin/chmod", "bin/bash"] {
            chmod(repo.path.appendingPathComponent(tool).path, 0o755)
            try repo.git("update-index", "--chmod=+x", tool)
        }
        try repo.git("commit", "-q", "-m", "tools in the worktree")
        let model = try FakeModel(script: [.text("Done.")])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("nothing"))
        #expect(run.status == "succeeded", "\(run.record["reason"] ?? "") \(run.output.stderr)")
        let probes = run.file("probes.txt") ?? ""
        #expect(probes.contains("PASS no-setuid chmod u+s,g+s refused"), "\(probes)")
        #expect(!probes.contains("FAIL"), "\(probes)")
    }

    @Test func unknownCapabilityIsBadInput() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", ".patina/config.json": #"{"cap_add": ["WARP_DRIVE"]}"#])
        let output = try PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9").run(["yolo", "x"])
        #expect(output.status != 0)
        #expect(output.stderr == "error: unknown capability \"WARP_DRIVE\" in cap_add of .patina/config.json\n")
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
    }
}
