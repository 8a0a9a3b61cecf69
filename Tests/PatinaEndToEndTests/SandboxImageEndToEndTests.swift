import Foundation
import PatinaSandbox
import PatinaTestSupport
import Testing

/// The sandbox a repository needs, end to end: its own devcontainer.json (its
/// Dockerfile, a local feature, its environment, its postCreateCommand), or the
/// toolchain patina detects, with the registry preset, the host's CA and a warm
/// cache; and the Claude Code the user already has. Real Docker, real Claude Code,
/// only the model faked. The images are few and shared: the devcontainer tests
/// build one (tagged by content, so both reuse it), the Python test one more.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(15)))
struct SandboxImageEndToEndTests {
    /// A repository whose devcontainer builds its own Dockerfile (a Debian package), sets
    /// environment, installs a local feature with an option, and runs `postCreate`.
    static func devcontainerRepository(postCreate: String) throws -> TemporaryRepository {
        try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".devcontainer/devcontainer.json": """
                {
                  // The repository's own sandbox (JSONC: comments and trailing commas).
                  "name": "demo",
                  "build": { "dockerfile": "image/Dockerfile", "context": "image", "args": { "EXTRA_PACKAGE": "tree" } },
                  "containerEnv": { "DEMO_SETTING": "from-devcontainer", "PATH": "${containerEnv:PATH}:/opt/demo/bin" },
                  "features": { "./hello": { "greeting": "bonjour" } },
                  "postCreateCommand": \(try jsonString(postCreate)),
                  "forwardPorts": [3000],
                  "customizations": { "vscode": { "extensions": ["ms-python.python"] } },
                  // What a repository cannot do to patina's hardening:
                  "remoteUser": "root", "runArgs": ["--privileged"], "capAdd": ["SYS_ADMIN"], "securityOpt": ["seccomp=unconfined"],
                }
                """,
            ".devcontainer/image/Dockerfile": """
                FROM \(TestEnvironment.baseImage)
                ARG EXTRA_PACKAGE
                RUN apt-get update && apt-get install -y --no-install-recommends $EXTRA_PACKAGE && rm -rf /var/lib/apt/lists/*
                # A way back to root, and an entrypoint in front of the agent: patina's layer takes both off.
                RUN cp /bin/bash /usr/local/bin/rootsh && chmod 4755 /usr/local/bin/rootsh
                USER root
                ENTRYPOINT ["/bin/sh", "-c", "echo the entrypoint ran instead of the agent"]

                """,
            ".devcontainer/hello/devcontainer-feature.json": """
                { "id": "hello", "version": "1.0.0",
                  "options": { "greeting": { "type": "string", "default": "hello" } },
                  "containerEnv": { "HELLO_FEATURE": "installed" } }
                """,
            ".devcontainer/hello/install.sh": """
                #!/bin/sh
                set -e
                mkdir -p /opt/demo/bin
                printf '#!/bin/sh\\necho "%s from the feature (installed for %s)"\\n' "$GREETING" "$_REMOTE_USER" > /opt/demo/bin/hello-feature
                chmod 755 /opt/demo/bin/hello-feature

                """,
        ])
    }

    static func jsonString(_ text: String) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed, .withoutEscapingSlashes]), as: UTF8.self)
    }

    /// The repository's image, feature, environment and postCreateCommand reach the agent;
    /// what it tries against the hardening (a setuid shell, root, an entrypoint, privileged
    /// flags) does not.
    @Test func devcontainerImageFeatureEnvironmentAndPostCreateReachTheAgent() throws {
        let repo = try Self.devcontainerRepository(
            postCreate: #"echo "post-create ran as $(id -u) in $PWD" > "$HOME/post-create.txt" && echo prepared the sandbox"#)
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash(#"cat ~/post-create.txt; tree --version; hello-feature; echo "DEMO_SETTING=$DEMO_SETTING HELLO_FEATURE=$HELLO_FEATURE"; echo "uid=$(id -u)"; ls /usr/bin/sudo 2>&1 | head -1"#
                  + #"; stat -c 'rootsh %A' /usr/local/bin/rootsh; /usr/local/bin/rootsh -p -c 'echo rootsh-uid=$(id -u)'; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"#),
            .text("The devcontainer's tools are here."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)

        // `patina detect` shows it all without building or creating anything.
        let detect = try patina.run(["detect"])
        #expect(detect.status == 0, "\(detect.stderr)")
        #expect(detect.stdout.contains("devcontainer .devcontainer/devcontainer.json: builds image/Dockerfile"))
        #expect(detect.stdout.contains("not acted on: forwardPorts (nothing in a run listens for the host); customizations (editor settings)"))
        #expect(detect.stdout.contains("runArgs (patina's hardening decides the container's flags)"))
        #expect(detect.stdout.contains("COPY features/1-hello/") && detect.stdout.contains("== .devcontainer/devcontainer.json"))
        #expect(!FileManager.default.fileExists(atPath: repo.home.appendingPathComponent("repos").path))

        // The check runs where the agent started: after the same postCreateCommand, in its own home.
        let run = try FinishedRun(patina.yolo("use the devcontainer's tools", ["--check", #"cat "$HOME/post-create.txt""#]))
        #expect(run.output.status == 0, "stderr: \(run.output.stderr)")
        #expect(run.status == "succeeded")
        let check = run.record["check"] as? [String: Any] ?? [:]
        #expect(check["passed"] as? Bool == true, "\(check)")
        #expect((check["output_tail"] as? String ?? "").contains("post-create ran as 1000 in /workspace"), "\(check)")
        let results = model.toolResults().joined(separator: "\n")
        // The post-create file was there before the agent's first tool call.
        #expect(results.contains("post-create ran as 1000 in /workspace"), "tool results: \(results)")
        #expect(results.contains("tree v2"))
        #expect(results.contains("bonjour from the feature (installed for agent)"))
        #expect(results.contains("DEMO_SETTING=from-devcontainer HELLO_FEATURE=installed"))
        // patina's hardening still holds on the repository's image.
        #expect(results.contains("uid=1000") && results.contains("No such file"))
        #expect(results.contains("rootsh -rwxr-xr-x") && results.contains("rootsh-uid=1000"))
        #expect(results.contains("CapEff:\t0000000000000000") && results.contains("NoNewPrivs:\t1") && results.contains("Seccomp:\t2"))
        #expect(!results.contains("the entrypoint ran"))
        #expect(!(run.file("probes.txt") ?? "FAIL").contains("FAIL"))

        #expect(run.record["devcontainer"] as? String == ".devcontainer/devcontainer.json")
        #expect((run.record["base_image"] as? String ?? "").hasPrefix("patina-devcontainer:"))
        let ignored = (run.record["devcontainer_not_acted_on"] as? [String] ?? []).map { $0.split(separator: " ").first.map(String.init) ?? $0 }
        #expect(ignored == ["forwardPorts", "customizations", "runArgs", "capAdd", "securityOpt", "remoteUser"], "\(ignored)")
        let lifecycle = run.record["lifecycle"] as? [[String: Any]] ?? []
        #expect(lifecycle.count == 1 && lifecycle.first?["label"] as? String == "postCreateCommand" && lifecycle.first?["exit_code"] as? Int == 0)
        // The step log lists what was not acted on once, and holds the command's output.
        let steps = run.file("steps.log") ?? ""
        #expect(steps.components(separatedBy: "not acted on:").count == 2, "\(steps)")
        #expect(steps.contains("| prepared the sandbox") && steps.contains("lifecycle"))
        #expect(run.output.stderr.contains("not acted on: forwardPorts, customizations, runArgs, capAdd, securityOpt, remoteUser"))
        // --base-image beside the devcontainer: said what it is for (the firewall's image), not ignored in silence.
        #expect(run.output.stderr.contains("--base-image \(TestEnvironment.baseImage): the agent's image comes from .devcontainer/devcontainer.json; this image is the firewall helper's base only (--devcontainer none builds the agent's image from it)"), "\(run.output.stderr)")
        #expect(run.file("config/lifecycle.sh")?.contains("run 'postCreateCommand'") == true)
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    @Test func failingPostCreateStopsTheRunWithItsOutputAndLeavesNothing() throws {
        let repo = try Self.devcontainerRepository(
            postCreate: "echo installing dependencies; echo 'E: dependency resolution failed' >&2; exit 7")
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [.bash("echo never"), .text("unreachable")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("never starts"))
        #expect(run.output.status != 0)
        #expect(run.status == "error")
        let reason = run.record["reason"] as? String ?? ""
        #expect(reason.contains("postCreateCommand failed (exit 7) before the agent started"), "\(reason)")
        #expect(reason.contains("E: dependency resolution failed"), "\(reason)")
        #expect(model.requests().isEmpty, "the model was called")
        // Nothing half-left: no branch, no worktree, no sandbox folder, no container; the record and log stay.
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: run.worktree.path))
        #expect(!FileManager.default.fileExists(atPath: run.runDir.appendingPathComponent("sandbox").path))
        #expect(try PatinaRunner.leftoverContainers(runID: run.id).isEmpty)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try repo.git("status", "--porcelain") == "")
        #expect((run.file("steps.log") ?? "").contains("| installing dependencies"))
        let lifecycle = run.record["lifecycle"] as? [[String: Any]] ?? []
        #expect(lifecycle.first?["exit_code"] as? Int == 7)
        // The images were the first test's: tagged by content, nothing was built again.
        #expect(!run.output.stderr.contains("building"), "\(run.output.stderr)")
    }

    /// A devcontainer whose image is not on this machine and cannot be pulled (its registry
    /// is a loopback port where nothing listens, so nothing leaves the machine): one line
    /// with the engine's reason and the ways on, exit 3, and nothing created.
    @Test func anImageThatCannotBePulledStopsTheRunWithTheEnginesReasonAndLeavesNothing() throws {
        let image = "127.0.0.1:9/patina-nosuch/image:1"
        let repo = try TemporaryRepository(files: ["README.md": "# x\n", ".devcontainer/devcontainer.json": #"{"image": "\#(image)"}"#])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [.text("unreachable")])
        let output = try PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("never starts")
        #expect(output.status == 3, "\(output.stderr)")
        let errors = output.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        #expect(errors.count == 1, "\(output.stderr)")
        let line = String(errors.first ?? "")
        #expect(line.contains("image \(image) is not on this machine and could not be pulled (the engine said: "), "\(line)")
        #expect(line.contains("connection refused") || line.contains("127.0.0.1:9"), "\(line)")
        #expect(line.contains("--devcontainer none") && line.contains("docker tag IMAGE \(image)"), "\(line)")
        #expect(model.requests().isEmpty, "the model was called")
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(try repo.git("worktree", "list").split(separator: "\n").count == 1)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        let store = repo.home.appendingPathComponent("repos")
        let leftovers = (FileManager.default.enumerator(atPath: store.path)?.allObjects as? [String] ?? [])
            .filter { $0.contains("/runs/") || $0.contains("/worktrees/") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        #expect(try repo.git("rev-parse", "main") == main)
    }

    /// A patina killed while its check runs leaves the check's cache overlays mounted; the next
    /// patina command collects the run and detaches them, leaving the cache as it was.
    @Test func theChecksCacheOverlaysOfAKilledPatinaAreDetachedByTheNextCommand() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# calc\n", "pyproject.toml": "[project]\nname = \"calc\"\nversion = \"0.1.0\"\n"])
        let model = try FakeModel(script: [.text("Nothing to do.")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let process = try patina.start(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                        "--check", #"touch "$PIP_CACHE_DIR/written-by-the-check" /tmp/checking && tail -f /dev/null"#, "wait in the check"])
        let checking = awaitContainer(of: repo, endingIn: "-check", whereSucceeds: ["test", "-e", "/tmp/checking"], seconds: 300) != nil
        #expect(checking, "the check did not start")
        #expect(MountTable.points(under: repo.store).count == 1, "\(MountTable.points(under: repo.store))")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()

        let listed = try patina.run(["runs"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(MountTable.points(under: repo.store).isEmpty, "\(MountTable.points(under: repo.store))")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        let files = FileManager.default.enumerator(atPath: repo.store.path)?.allObjects as? [String] ?? []
        #expect(!files.contains { $0.contains("written-by-the-check") || $0.contains("check-caches") }, "\(files.filter { $0.contains("check") })")
    }

    /// A Python repository with no devcontainer, using uv (uv.lock): detected, uv from the
    /// package index, python from Debian; the pypi preset is added, the host's CA trusted.
    @Test func pythonRepositoryIsDetectedReachesItsIndexAndTheSecondRunFindsTheCacheWarm() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# calc\n",
            "pyproject.toml": "[project]\nname = \"calc\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\n",
            "uv.lock": "version = 1\nrequires-python = \">=3.9\"\n",
            "requirements-dev.txt": "pytest\n",
            "calc.py": "def add(a, b):\n    return a + b\n",
            "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
            ".gitignore": "__pycache__/\n.pytest_cache/\n",
        ])
        let main = try repo.git("rev-parse", "main")
        let install = #"uv venv -q /tmp/venv && (time uv pip install -v -p /tmp/venv -r requirements-dev.txt) > /tmp/uv.log 2>&1; "#
            + #"echo "downloads=$(grep -c 'GET request for: https://files.pythonhosted.org' /tmp/uv.log) cached=$(grep -c 'already cached' /tmp/uv.log)"; "#
            + #"grep -E '^(real|Installed)' /tmp/uv.log; /tmp/venv/bin/python -m pytest -q 2>&1 | tail -1; which claude"#
        let model = try FakeModel(script: [.bash(install), .text("Installed the test dependency and ran the tests.")])
        // The check reads the agent's warm cache through an overlay: it downloads nothing the
        // agent downloaded, and what it writes into the cache does not stay.
        let check = #"uv venv -q /tmp/v && uv pip install -v -p /tmp/v -r requirements-dev.txt > /tmp/uv.log 2>&1 && "#
            + #"echo "check-downloads=$(grep -c 'GET request for: https://files.pythonhosted.org' /tmp/uv.log) cache=$UV_CACHE_DIR" && "#
            + #"touch "$UV_CACHE_DIR/written-by-the-check" && /tmp/v/bin/python -m pytest -q"#

        let first = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("run the tests", ["--check", check]))
        #expect(first.status == "succeeded", "stderr: \(first.output.stderr)")
        let firstResults = model.toolResults().joined(separator: "\n")
        #expect(firstResults.contains("1 passed"), "tool results: \(firstResults)")
        #expect(firstResults.range(of: #"downloads=[1-9]"#, options: .regularExpression) != nil, "\(firstResults)")
        // The check ran the same toolchain in its own sandbox, through the same firewall.
        let checkResult = first.record["check"] as? [String: Any] ?? [:]
        #expect(checkResult["passed"] as? Bool == true, "\(checkResult)")
        let checkTail = checkResult["output_tail"] as? String ?? ""
        #expect(checkTail.contains("1 passed"), "\(checkTail)")
        #expect(checkTail.contains("check-downloads=0 cache=/patina/cache/uv"), "\(checkTail)")
        let uvCache = repo.store.appendingPathComponent("cache/uv")
        let cacheFiles = FileManager.default.enumerator(atPath: uvCache.path)?.allObjects as? [String] ?? []
        #expect(!cacheFiles.isEmpty && !cacheFiles.contains { $0.hasSuffix("written-by-the-check") }, "\(cacheFiles.prefix(20))")
        #expect(MountTable.points(under: repo.store).isEmpty, "\(MountTable.points(under: repo.store))")
        // Detected, preset added and recorded, host CA trusted.
        let toolchains = first.record["toolchains"] as? [[String: Any]] ?? []
        #expect(toolchains.first?["name"] as? String == "python")
        #expect(toolchains.first?["pip_packages"] as? [String] == ["uv"])
        #expect(first.record["auto_presets"] as? [String] == ["pypi"])
        #expect((first.record["allow_list"] as? [String] ?? []).contains("pypi.org:443/tcp"))
        #expect(!(first.record["host_ca"] as? [String] ?? []).isEmpty)
        #expect(first.record["caches"] as? [String] == ["pip", "uv"])
        if HostResolution.addresses(of: "pypi.org").contains(where: { $0.hasPrefix("203.0.113.") }) {
            // This network answers public names with its proxy's address: the sandbox accepts it,
            // for the allowed names only, because this machine resolves them there too.
            let pinned = (first.record["dns_pinned"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(pinned.contains("pypi.org") && pinned.contains("files.pythonhosted.org"), "\(first.record)")
        }
        #expect(first.record["claude_source"] as? String == "--agent-binary")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: first)

        // Second run: no --agent-binary; the Claude Code on PATH is used (same content, same
        // image), and the cache is warm: nothing is downloaded again.
        let bin = repo.root.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: bin.appendingPathComponent("claude"), withDestinationURL: TestEnvironment.claudeBinary)
        var patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        patina.extraEnvironment["PATH"] = bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let before = model.toolResults().count
        let second = try FinishedRun(patina.run(["yolo", "--base-image", TestEnvironment.baseImage, "--json", "run the tests again"]))
        #expect(second.status == "succeeded", "stderr: \(second.output.stderr)")
        let secondResults = model.toolResults().dropFirst(before).joined(separator: "\n")
        #expect(secondResults.contains("downloads=0"), "\(secondResults)")
        #expect(secondResults.range(of: #"cached=[1-9]"#, options: .regularExpression) != nil, "\(secondResults)")
        #expect(secondResults.contains("1 passed") && secondResults.contains("/usr/local/bin/claude"))
        #expect(second.record["claude_source"] as? String == "installed")
        let version = try ProcessRunner.check([TestEnvironment.claudeBinary.path, "--version"]).split(separator: " ").first.map(String.init)
        #expect(second.record["claude_version"] as? String == version)
        #expect(second.record["claude_binary"] as? String == TestEnvironment.claudeBinary.resolvingSymlinksInPath().path)
        #expect(second.output.stderr.contains("installed on this machine"), "\(second.output.stderr)")
        #expect(second.record["image"] as? String == first.record["image"] as? String)
        #expect(!second.output.stderr.contains("building"))
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: second)

        let caches = try patina.run(["cache", "--json"])
        let listed = try JSONSerialization.jsonObject(with: Data(caches.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(listed.contains { $0["name"] as? String == "uv" && ($0["bytes"] as? Int ?? 0) > 0 && $0["in_use"] as? Bool == false }, "\(caches.stdout)")
    }
}
