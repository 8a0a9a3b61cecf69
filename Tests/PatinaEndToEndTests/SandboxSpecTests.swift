import Foundation
import PatinaGit
import PatinaSandbox
import PatinaTestSupport
import Testing
@testable import PatinaCore

/// The agent's container as a value: the hardening flags, mounts and the
/// rendered devcontainer.json, checked without starting anything. (Planning
/// talks to the real Docker daemon, so this needs one.)
@Suite(.requiresDocker)
struct SandboxSpecTests {
    @Test func agentContainerIsLockedDown() async throws {
        let repo = try TemporaryRepository()
        var environment = ProcessInfo.processInfo.environment
        environment["PATINA_HOME"] = repo.home.path
        environment["ANTHROPIC_API_KEY"] = "sk-ant-secret-value"
        environment["ANTHROPIC_BASE_URL"] = "http://172.17.0.1:4321"
        environment["PATINA_DATA_DIR"] = TestEnvironment.packageRoot.path
        var options = YoloOptions(task: "do it")
        options.maxTurns = 3
        options.model = "claude-test"
        let plan = try await Planner.plan(options, directory: repo.path, environment: environment)
        let layout = RunLayout(runDirectory: plan.runDirectory)
        let model = ModelAccess(baseURL: "http://172.17.0.1:40123", variable: plan.credentials.variable,
                                placeholder: "sk-ant-api03-patina-proxy-only-0123456789")
        let spec = AgentSandbox.spec(plan: plan, layout: layout, image: "patina-agent:x", network: "container:holder",
                                     labels: ["patina": "1", "patina.run": plan.id], model: model)
        let args = spec.runArguments
        func has(_ flag: String, _ value: String) -> Bool {
            zip(args, args.dropFirst()).contains { $0 == flag && $1 == value }
        }
        #expect(has("--cap-drop", "ALL"))
        #expect(!args.contains("--cap-add"))
        #expect(has("--security-opt", "no-new-privileges"))
        #expect(has("--security-opt", "seccomp=\(layout.seccompProfile.path)"))
        #expect(args.contains("--read-only"))
        #expect(has("--user", "\(plan.agentUID):\(plan.agentGID)") && plan.agentUID != 0)
        #expect(has("--pids-limit", "512") && has("--memory", "4g") && has("--cpus", "2"))
        #expect(has("--network", "container:holder"))
        #expect(!args.contains("--privileged"))
        #expect(!args.joined(separator: " ").contains("docker.sock"))
        // The host's objects as they were at the start (a snapshot), never the live directory
        // other runs collect into.
        #expect(has("--mount", "type=bind,source=\(layout.hostObjectsSnapshot.path),target=/patina/host-objects,readonly"))
        #expect(!args.contains { $0.contains("source=\(plan.repository.objectsDirectory.path)") })
        #expect(has("--mount", "type=bind,source=\(layout.gitFile.path),target=/workspace/.git,readonly"))
        // Every command the agent runs goes through patina's own limits wrapper.
        #expect(has("--mount", "type=bind,source=\(layout.commandLimits.path),target=/patina/command-limits.sh,readonly"))
        #expect(has("--env", "CLAUDE_CODE_SHELL_PREFIX=/patina/command-limits.sh"))
        #expect(has("--env", "PATINA_COMMAND_PROCS=448"))
        // The host's .git itself (hooks, config, refs) is never mounted.
        let gitDir = repo.path.appendingPathComponent(".git").path
        #expect(!args.contains { $0.contains("source=\(gitDir),") || $0.contains("source=\(gitDir)/hooks") })
        // The real key never: a placeholder, by name only (its value is in the docker process's
        // own environment), and the proxy as the model endpoint.
        #expect(has("--env", "ANTHROPIC_API_KEY"))
        #expect(spec.passedValues == ["ANTHROPIC_API_KEY": model.placeholder])
        #expect(has("--env", "ANTHROPIC_BASE_URL=http://172.17.0.1:40123"))
        #expect(!args.joined(separator: " ").contains("sk-ant-secret-value"))
        #expect(!args.joined(separator: " ").contains(model.placeholder))
        #expect(!args.contains { $0.contains("4321") }, "the real endpoint is not the agent's")
        // The task comes after `--`: a task starting with "-" is not a flag.
        #expect(Array(args.suffix(12)) == ["claude", "-p", "--dangerously-skip-permissions", "--output-format", "stream-json",
                                           "--verbose", "--model", "claude-test", "--max-turns", "3", "--", "do it"])

        let devcontainer = try AgentSandbox.devcontainerJSON(spec, plan: plan)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(devcontainer.utf8)) as? [String: Any])
        #expect(object["image"] as? String == "patina-agent:x")
        #expect((object["securityOpt"] as? [String])?.contains("no-new-privileges") == true)
        #expect((object["runArgs"] as? [String])?.contains("--read-only") == true)
        // A container started from this file gets no credential at all, not even by reference.
        #expect((object["remoteEnv"] as? [String: String])?["ANTHROPIC_API_KEY"] == nil)
        #expect(!devcontainer.contains("sk-ant-secret-value") && !devcontainer.contains(model.placeholder))
        // Planning created nothing.
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: plan.runDirectory.path))
    }
}
