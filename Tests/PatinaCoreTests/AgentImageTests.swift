import Foundation
import PatinaSandbox
import PatinaTestSupport
import Testing
@testable import PatinaCore

/// The agent's image as rendered from a plan: patina's layer over whatever base,
/// the hardening last. Planning only: nothing is built.
@Suite("Agent image")
struct AgentImageTests {
    let repo: TemporaryRepository

    init() throws {
        repo = try TemporaryRepository()
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "PATINA_HOME": repo.home.path, "PATINA_DATA_DIR": TestEnvironment.packageRoot.path,
            "HOME": repo.root.path, "PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": "sk-ant-test-unit",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }

    func plan(_ configure: (inout YoloOptions) -> Void = { _ in }, environment extra: [String: String] = [:]) async throws -> RunPlan {
        var options = YoloOptions(task: "do it")
        options.agentBinary = TestEnvironment.claudeBinary.path
        configure(&options)
        return try await Planner.plan(options, directory: repo.path, environment: environment(extra), checkEngine: false)
    }

    func commit(_ files: [String: String]) throws {
        for (name, text) in files { try repo.write(name, text) }
        try repo.git("add", "-A")
        try repo.git("commit", "-q", "-m", "files")
    }

    /// The Dockerfile's instructions, comments and blank lines left out.
    func instructions(_ dockerfile: String) -> [String] {
        dockerfile.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }

    @Test func withoutDevcontainerToolchainsComeFromDistributionPackages() async throws {
        try commit(["requirements.txt": "pytest\n", "Makefile": "test:\n\tpytest\n"])
        let plan = try await plan()
        #expect(plan.sandbox.installed.map(\.name) == ["python", "make"])
        #expect(plan.presets.contains("pypi"))
        #expect(plan.sandbox.autoPresets == ["pypi"])
        #expect(plan.sandbox.caches == ["pip"])
        let recipe = try AgentImage.recipe(plan: plan, base: plan.baseImage)
        let lines = instructions(recipe.dockerfile)
        #expect(lines.first == "FROM \(RunPlan.defaultBaseImage)")
        #expect(recipe.dockerfile.contains("for p in git ca-certificates procps python3 python3-pip python3-venv make; do"))
        // Claude Code is not a layer of the image: a link to the volume every image shares.
        #expect(recipe.files["claude"] == nil && !recipe.dockerfile.contains("npm install"))
        #expect(lines.contains("RUN ln -sfn /patina/claude/claude /usr/local/bin/claude"))
        // The hardening is last: no sudo, no setuid, no entrypoint, a non-root user.
        #expect(Array(lines.suffix(7)) == [
            "RUN rm -rf /usr/bin/sudo /etc/sudoers /etc/sudoers.d \\",
            " && find / -xdev -type f -perm /6000 -exec chmod ug-s {} +",
            "ENTRYPOINT []", "CMD []", "HEALTHCHECK NONE", "USER \(plan.agentUID):\(plan.agentGID)", "WORKDIR /workspace",
        ])
        #expect(plan.agentUID != 0)
    }

    @Test func pythonCommandsRunInAnActivatedVirtualenvAndGoGetsACompiler() async throws {
        try commit(["pyproject.toml": "[project]\nname = \"x\"\n"])
        let python = try await plan()
        let wrapped = AgentSandbox.toolchainEnvironment(["pytest", "-q"], plan: python)
        #expect(Array(wrapped.prefix(2)) == ["/bin/sh", "-c"] && Array(wrapped.suffix(3)) == ["patina-python-env", "pytest", "-q"])
        #expect(wrapped[2].contains("python3 -m venv --without-pip --system-site-packages \"$venv\""))
        #expect(wrapped[2].contains("export VIRTUAL_ENV=\"$venv\" PATH=\"$venv/bin:$PATH\""))
        #expect(wrapped[2].hasSuffix("exec \"$@\""))
        // The wrapper is real shell: run it here with a python3 that is not there.
        let ran = try ProcessRunner.run(["/usr/bin/env", "-i", "PATH=/nonexistent", "/bin/sh", "-c", wrapped[2], "x", "/bin/echo", "ran"])
        #expect(ran.stdout == "ran\n")

        try repo.git("rm", "-q", "pyproject.toml")
        try commit(["go.mod": "module example.com/x\n\ngo 1.19\n"])
        let go = try await plan()
        #expect(AgentSandbox.toolchainEnvironment(["go", "test"], plan: go) == ["go", "test"])
        #expect(go.sandbox.packages == ["golang-go", "gcc", "libc6-dev"])
    }

    @Test func aDevcontainerRunSaysUvIsNotInstalledWhenPatinaInstallsNothing() async throws {
        try commit(["uv.lock": "version = 1\n", "pyproject.toml": "[project]\nname = \"x\"\n",
                    ".devcontainer/devcontainer.json": #"{"image": "debian:bookworm"}"#])
        let plan = try await plan()
        #expect(plan.sandbox.pipPackages.isEmpty)
        let notes = plan.sandbox.toolchains.flatMap(\.notes)
        #expect(!notes.contains { $0.contains("the image gets it from the package index") }, "\(notes)")
        #expect(notes.contains { $0.hasPrefix("uv is not installed: the devcontainer provides python") }, "\(notes)")
    }

    @Test func noAutoPresetsAndNoFirewallAddNone() async throws {
        try commit(["requirements.txt": ""])
        #expect(try await plan { $0.noAutoPresets = true }.sandbox.autoPresets.isEmpty)
        #expect(try await plan { $0.noFirewall = true }.sandbox.autoPresets.isEmpty)
        #expect(try await plan { $0.presets = ["pypi"] }.sandbox.autoPresets.isEmpty)
    }

    @Test func hostCertificatesAreCopiedInAndTrusted() async throws {
        let bundle = repo.root.appendingPathComponent("bundle.pem")
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTest\n-----END CERTIFICATE-----"
        try Data("junk\n\(cert)\n\(cert)\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8).write(to: bundle)
        let plan = try await plan(environment: ["SSL_CERT_FILE": bundle.path])
        #expect(plan.sandbox.trust.caFiles == [bundle.path])
        #expect(plan.sandbox.trust.certificates == [cert])
        let recipe = try AgentImage.recipe(plan: plan, base: plan.baseImage)
        #expect(recipe.contents["host-ca.pem"] == cert + "\n")
        #expect(recipe.dockerfile.contains("update-ca-certificates"))
        #expect(recipe.dockerfile.contains("PIP_CERT=/etc/ssl/certs/ca-certificates.crt"))
        let off = try await self.plan({ $0.noHostCA = true }, environment: ["SSL_CERT_FILE": bundle.path])
        #expect(off.sandbox.trust.certificates.isEmpty)
        #expect(!(try AgentImage.recipe(plan: off, base: off.baseImage)).dockerfile.contains("update-ca-certificates"))
    }

    @Test func configuredCertificatesMustHoldOne() async throws {
        try commit([".patina/config.json": #"{"ca_certificates": ["README.md"]}"#])
        await #expect(throws: PlanError.self) { try await plan() }
    }

    @Test func devcontainerFeaturesEnvironmentAndUser() async throws {
        try commit([
            ".devcontainer/devcontainer.json": """
                {"image": "patina-test/bookworm:minbase", "remoteUser": "dev",
                 "containerEnv": {"GREETING": "say \\"hi\\" for $5", "PATH": "${containerEnv:PATH}:/opt/x/bin"},
                 "features": {"./hello": {"greeting": "it's me"}}}
                """,
            ".devcontainer/hello/devcontainer-feature.json": #"{"id": "hello", "options": {"greeting": {"default": "hi"}}, "containerEnv": {"HELLO": "1"}}"#,
            ".devcontainer/hello/install.sh": "#!/bin/sh\necho \"$GREETING\" > /usr/local/share/greeting\n",
            ".devcontainer/hello/lib/data.txt": "data\n",
            "requirements.txt": "",
        ])
        let plan = try await plan()
        // With a devcontainer, patina installs no toolchain; the presets and caches still apply.
        #expect(plan.sandbox.installed.isEmpty && plan.sandbox.toolchains.map(\.name) == ["python"])
        #expect(plan.sandbox.autoPresets == ["pypi"] && plan.sandbox.caches == ["pip"])
        let recipe = try AgentImage.recipe(plan: plan, base: "patina-test/bookworm:minbase")
        let text = recipe.dockerfile
        #expect(text.contains("FROM patina-test/bookworm:minbase"))
        #expect(text.contains("for p in git ca-certificates procps; do"))
        #expect(recipe.files["features/1-hello/install.sh"] != nil && recipe.files["features/1-hello/lib/data.txt"] != nil)
        #expect(recipe.contents["features/1-hello/devcontainer-features.env"] == "GREETING='it'\\''s me'\n")
        #expect(text.contains("ENV HELLO=\"1\""))
        #expect(text.contains(#"ENV GREETING="say \"hi\" for \$5""#))
        #expect(text.contains(#"ENV PATH="${PATH}:/opt/x/bin""#))
        #expect(text.contains("remote='dev'"))
        // The order: packages, user, features, environment, Claude Code, hardening last.
        let order = ["for p in", "remote='dev'", "COPY features/1-hello/", "ENV GREETING", "ln -sfn /patina/claude/claude", "chmod ug-s"]
        let positions = order.map { text.range(of: $0)?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted())
    }

    @Test func dockerEnvironmentValues() {
        #expect(AgentImage.dockerEnvironmentValue("plain") == "\"plain\"")
        #expect(AgentImage.dockerEnvironmentValue("a$b\\c\"d") == #""a\$b\\c\"d""#)
        #expect(AgentImage.dockerEnvironmentValue("${containerEnv:PATH}:/x") == #""${PATH}:/x""#)
        #expect(AgentImage.dockerEnvironmentValue("${containerEnv:GOPATH:/go}") == #""${GOPATH:-/go}""#)
        #expect(AgentImage.dockerEnvironmentValue("${localEnv:X}") == #""\${localEnv:X}""#)
    }

    @Test func registryFeatureNeedsTheDevcontainerCLI() async throws {
        try commit([".devcontainer/devcontainer.json": #"{"image": "debian", "features": {"ghcr.io/devcontainers/features/node:1": {}}}"#])
        do {
            _ = try await plan()
            Issue.record("planned without the devcontainer CLI")
        } catch {
            #expect("\(error)".contains("feature ghcr.io/devcontainers/features/node:1 comes from a registry, which needs the devcontainer CLI"))
        }
        // With the CLI on PATH, it builds the devcontainer's image (a command line as a value).
        let bin = repo.root.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try Data("#!/bin/sh\n".utf8).write(to: bin.appendingPathComponent("devcontainer"))
        chmod(bin.appendingPathComponent("devcontainer").path, 0o755)
        let withCLI = try await plan(environment: ["PATH": bin.path + ":/usr/bin"])
        #expect(withCLI.sandbox.devcontainerCLI == bin.appendingPathComponent("devcontainer").path)
        let args = DevcontainerImage.cliArguments(cli: "devcontainer", repositoryRoot: repo.path,
                                                  config: repo.path.appendingPathComponent(".devcontainer/devcontainer.json"), tag: "t:1")
        #expect(args == ["devcontainer", "build", "--workspace-folder", repo.path.path, "--config",
                         repo.path.appendingPathComponent(".devcontainer/devcontainer.json").path, "--image-name", "t:1"])
    }

    @Test func devcontainerBuildTagFollowsTheContext() async throws {
        try commit([".devcontainer/devcontainer.json": #"{"build": {"dockerfile": "Dockerfile", "args": {"V": "1"}}}"#,
                    ".devcontainer/Dockerfile": "FROM debian\nCOPY x /x\n", ".devcontainer/x": "1"])
        let plan = try await plan()
        guard case .build(let build) = plan.sandbox.devcontainer?.base else { Issue.record("no build"); return }
        let first = try await DevcontainerImage.tag(for: build)
        #expect(first.hasPrefix("patina-devcontainer:"))
        #expect(try await DevcontainerImage.tag(for: build) == first)
        try repo.write(".devcontainer/x", "22")
        #expect(try await DevcontainerImage.tag(for: build) != first)
        var other = build
        other.args = [.init(name: "V", value: "2", source: "build.args")]
        #expect(try await DevcontainerImage.tag(for: other) != first)
    }

    @Test func buildCommandLine() {
        let args = DockerEngine.buildArguments(
            context: URL(fileURLWithPath: "/ctx"), dockerfile: URL(fileURLWithPath: "/ctx/Dockerfile"), tag: "t:1",
            labels: ["patina.image": "devcontainer"], target: "dev", buildArguments: [("V", "1")], passedBuildArguments: ["HTTPS_PROXY"])
        #expect(args == ["build", "--rm", "--force-rm", "--tag", "t:1", "--file", "/ctx/Dockerfile", "--label", "patina.image=devcontainer",
                         "--target", "dev", "--build-arg", "V=1", "--build-arg", "HTTPS_PROXY", "/ctx"])
    }

    @Test func aFailedBuildNamesTheFailingStepNotTheDeprecationBanner() {
        let failure = ImageBuildFailure(tag: "t:1", exitCode: 1, output: """
            Sending build context to Docker daemon  2.048kB
            Step 1/2 : FROM base
             ---> 72ca2d474a14
            Step 2/2 : RUN echo boom-output && false
             ---> Running in e78a6571c2de
            boom-output
            Removing intermediate container e78a6571c2de

            DEPRECATED: The legacy builder is deprecated and will be removed in a future release.
                        Install the buildx component to build images with BuildKit:
                        https://docs.docker.com/go/buildx/

            The command '/bin/sh -c echo boom-output && false' returned a non-zero code: 1
            """)
        #expect(failure.tail == "Step 2/2 : RUN echo boom-output && false | boom-output | The command '/bin/sh -c echo boom-output && false' returned a non-zero code: 1")
    }

    @Test func imageTagCoversGeneratedFiles() async throws {
        let cache = ImageCache(engine: DockerEngine(), cacheDirectory: repo.root.appendingPathComponent("cache"))
        let a = try await cache.tag(for: ImageRecipe(repository: "r", dockerfile: "FROM x", contents: ["ca.pem": "A"]), rememberHashes: false)
        let b = try await cache.tag(for: ImageRecipe(repository: "r", dockerfile: "FROM x", contents: ["ca.pem": "B"]), rememberHashes: false)
        #expect(a != b)
        #expect(!FileManager.default.fileExists(atPath: repo.root.appendingPathComponent("cache").path))
    }

    @Test func lifecycleScriptQuotesAndMarks() {
        let script = LifecycleScript.render([
            LifecycleCommand(label: "postCreateCommand", arguments: ["/bin/sh", "-c", "echo 'it works' && exit 3"]),
            LifecycleCommand(label: "postCreateCommand deps", arguments: ["make", "deps"]),
        ])
        #expect(script.contains("run 'postCreateCommand' '/bin/sh' '-c' 'echo '\\''it works'\\'' && exit 3'\n"))
        #expect(script.contains("run 'postCreateCommand deps' 'make' 'deps'\n"))
        #expect(LifecycleScript.event("patina> start postCreateCommand deps") == .start("postCreateCommand deps"))
        #expect(LifecycleScript.event("patina> failed 3 postCreateCommand") == .failed("postCreateCommand", 3))
        #expect(LifecycleScript.event("building…") == nil)
    }
}
