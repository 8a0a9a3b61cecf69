import Foundation
import PatinaTestSupport
import Testing
@testable import PatinaCore

@Suite("devcontainer.json")
struct DevcontainerTests {
    let repo: TemporaryRepository

    init() throws {
        repo = try TemporaryRepository()
    }

    func load(_ json: String, at path: String = ".devcontainer/devcontainer.json", files: [String: String] = [:]) throws -> Devcontainer {
        for (name, text) in files { try repo.write(name, text) }
        try repo.write(path, json)
        let file = try #require(try Devcontainer.locate(repositoryRoot: repo.path, name: nil))
        return try Devcontainer.load(file, repositoryRoot: repo.path)
    }

    func error(_ body: () throws -> Any) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func buildEnvironmentUserFeaturesAndLifecycle() throws {
        let d = try load("""
            {
              // comments and trailing commas: JSONC
              "name": "demo",
              "build": { "dockerfile": "Dockerfile", "context": "..", "args": { "VARIANT": "bookworm", "TOKEN": "${localEnv:TOKEN}" }, "target": "dev", "cacheFrom": "x" },
              "containerEnv": { "GREETING": "hello", "PATH": "${containerEnv:PATH}:/opt/tools/bin", "HOME": "/root", "SECRET": "${localEnv:SECRET}", },
              "remoteEnv": { "EDITOR": "vi" },
              "remoteUser": "vscode",
              "features": { "./hello": { "greeting": "bonjour" }, "./plain": {} },
              "overrideFeatureInstallOrder": ["./plain"],
              "onCreateCommand": "echo created",
              "postCreateCommand": { "deps": ["make", "deps"], "note": "echo ${containerWorkspaceFolder}" },
              "postStartCommand": "echo started",
              "initializeCommand": "rm -rf ~",
              "forwardPorts": [3000],
              "runArgs": ["--privileged"],
              "customizations": { "vscode": {} },
            }
            """, files: [
                ".devcontainer/Dockerfile": "FROM debian\n",
                ".devcontainer/hello/devcontainer-feature.json": #"{"id": "hello", "options": {"greeting": {"type": "string", "default": "hi"}, "loud-voice": {"type": "boolean", "default": false}}, "containerEnv": {"HELLO_HOME": "/opt/hello"}, "postCreateCommand": "hello --check", "privileged": true}"#,
                ".devcontainer/hello/install.sh": "#!/bin/sh\n",
                ".devcontainer/plain/devcontainer-feature.json": #"{"id": "plain"}"#,
                ".devcontainer/plain/install.sh": "#!/bin/sh\n",
            ])
        #expect(d.path == ".devcontainer/devcontainer.json")
        #expect(d.name == "demo")
        guard case .build(let build) = d.base else { Issue.record("expected a build"); return }
        #expect(build.dockerfile.lastPathComponent == "Dockerfile")
        #expect(build.context.standardizedFileURL.path == repo.path.resolvingSymlinksInPath().path)
        #expect(build.args.map(\.name) == ["VARIANT"])
        #expect(build.target == "dev")
        // Only non-secret values from the file itself; nothing read from the host, nothing patina sets.
        #expect(d.environment.map(\.name) == ["GREETING", "PATH", "EDITOR"])
        #expect(d.environment[1].value == "${containerEnv:PATH}:/opt/tools/bin")
        #expect(d.user == "vscode")
        #expect(d.features.map(\.reference) == ["./plain", "./hello"])
        let hello = d.features[1]
        #expect(hello.options == [
            .init(name: "greeting", variable: "GREETING", value: "bonjour"),
            .init(name: "loud-voice", variable: "LOUD_VOICE", value: "false"),
        ])
        #expect(hello.environment.map(\.name) == ["HELLO_HOME"])
        #expect(d.lifecycle.map(\.label) == [
            "onCreateCommand", "postCreateCommand of feature ./hello", "postCreateCommand deps", "postCreateCommand note",
        ])
        #expect(d.lifecycle[0].arguments == ["/bin/sh", "-c", "echo created"])
        #expect(d.lifecycle[2].arguments == ["make", "deps"])
        #expect(d.lifecycle[3].arguments == ["/bin/sh", "-c", "echo /workspace"])
        // Every key patina does not act on is listed, with why where it matters.
        let ignored = d.notActedOn.joined(separator: "\n")
        for key in ["build.args.TOKEN", "build.cacheFrom", "containerEnv.HOME (patina sets it)", "containerEnv.SECRET",
                    "postStartCommand", "initializeCommand (it runs on the host", "forwardPorts", "runArgs (patina's hardening",
                    "customizations", "feature ./hello: privileged"] {
            #expect(ignored.contains(key), "\(key) missing from \(ignored)")
        }
        #expect(!ignored.contains("remoteEnv.EDITOR"))
        #expect(d.summary.contains { $0.contains("not acted on:") })
    }

    @Test func imageAndLegacyDockerFile() throws {
        let d = try load(#"{"image": "mcr.microsoft.com/devcontainers/base:bookworm"}"#)
        #expect(d.base == .image("mcr.microsoft.com/devcontainers/base:bookworm"))
        let legacy = try load(#"{"dockerFile": "Dockerfile"}"#, files: [".devcontainer/Dockerfile": "FROM x\n"])
        guard case .build(let build) = legacy.base else { Issue.record("expected a build"); return }
        #expect(build.context.path == repo.path.appendingPathComponent(".devcontainer").resolvingSymlinksInPath().path)
    }

    /// A base image beside a devcontainer does not make the agent's image: a note says what it does.
    @Test func baseImageBesideADevcontainerIsSaidToBeTheFirewallsBaseOnly() throws {
        let d = try load(#"{"image": "debian:bookworm"}"#)
        var options = YoloOptions(task: "x")
        var config = PatinaConfig()
        #expect(SandboxSetup.baseImageNote(options: options, config: config, devcontainer: d) == nil)
        config.baseImage = "corp/base:1"
        #expect(SandboxSetup.baseImageNote(options: options, config: config, devcontainer: d)?
            .hasPrefix("base_image corp/base:1 in .patina/config.json: the agent's image comes from .devcontainer/devcontainer.json") == true)
        options.baseImage = "local/base:2"
        let note = try #require(SandboxSetup.baseImageNote(options: options, config: config, devcontainer: d))
        #expect(note == "--base-image local/base:2: the agent's image comes from .devcontainer/devcontainer.json; this image is the firewall helper's base only (--devcontainer none builds the agent's image from it)")
    }

    /// An image neither here nor pullable: the engine's last line and the ways on, on one line.
    @Test func anUnpullableImageSaysTheEnginesReasonAndTheWaysOn() {
        let engine = "Using default tag: latest\nError response from daemon: Get \"http://127.0.0.1:9/v2/\": dial tcp 127.0.0.1:9: connect: connection refused\n\n"
        let fromDevcontainer = RunLifecycle.pullFailure(image: "127.0.0.1:9/x:1", engineSaid: engine, baseImage: "debian:bookworm-slim",
                                                        devcontainer: ".devcontainer/devcontainer.json")
        #expect(!fromDevcontainer.contains("\n"))
        #expect(fromDevcontainer.hasPrefix("image 127.0.0.1:9/x:1 is not on this machine and could not be pulled (the engine said: Error response from daemon: Get"))
        #expect(fromDevcontainer.contains("connection refused)") && fromDevcontainer.contains("--devcontainer none"))
        #expect(fromDevcontainer.contains("docker tag IMAGE 127.0.0.1:9/x:1") && fromDevcontainer.contains("change the image in .devcontainer/devcontainer.json"))
        let base = RunLifecycle.pullFailure(image: "debian:bookworm-slim", engineSaid: "", baseImage: "debian:bookworm-slim", devcontainer: nil)
        #expect(base.contains("(the engine said: no reason given)") && base.contains("pass --base-image with an image this machine has"))
        #expect(!base.contains("--devcontainer"))
    }

    @Test func rootUserAndRegistryFeatures() throws {
        let d = try load(#"{"image": "debian", "remoteUser": "root", "features": {"ghcr.io/devcontainers/features/node:1": {"version": "20"}}}"#)
        #expect(d.user == nil)
        #expect(d.notActedOn.contains { $0.hasPrefix("remoteUser root") })
        #expect(d.registryFeatures == ["ghcr.io/devcontainers/features/node:1"])
    }

    @Test func whereTheFileIs() throws {
        #expect(try Devcontainer.locate(repositoryRoot: repo.path, name: nil) == nil)
        try repo.write(".devcontainer.json", "{}")
        #expect(try Devcontainer.locate(repositoryRoot: repo.path, name: nil)?.lastPathComponent == ".devcontainer.json")
        try repo.write(".devcontainer/devcontainer.json", "{}")
        #expect(try Devcontainer.locate(repositoryRoot: repo.path, name: nil)?.path.hasSuffix(".devcontainer/devcontainer.json") == true)
        try repo.write(".devcontainer/gpu/devcontainer.json", "{}")
        #expect(try Devcontainer.locate(repositoryRoot: repo.path, name: "gpu")?.path.hasSuffix(".devcontainer/gpu/devcontainer.json") == true)
        #expect(try Devcontainer.locate(repositoryRoot: repo.path, name: "none") == nil)
        #expect(error { try Devcontainer.locate(repositoryRoot: repo.path, name: "cpu") as Any }.contains("--devcontainer cpu: there is no .devcontainer/cpu/devcontainer.json (found: gpu"))
        #expect(error { try Devcontainer.locate(repositoryRoot: repo.path, name: "../x") as Any }.contains("there is no"))
    }

    @Test func severalConfigurationsNeedAChoice() throws {
        try repo.write(".devcontainer/a/devcontainer.json", "{}")
        try repo.write(".devcontainer/b/devcontainer.json", "{}")
        #expect(error { try Devcontainer.locate(repositoryRoot: repo.path, name: nil) as Any }.contains("several devcontainer configurations (a, b)"))
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        let json: String
        var files: [String: String] = [:]
        let expected: String
        var testDescription: String { expected }
    }

    @Test(arguments: [
        Bad(json: "{\n  \"image\": \"x\",\n  oops\n}", expected: ".devcontainer/devcontainer.json:3:3: invalid JSONC: expected a quoted key"),
        Bad(json: "[]", expected: "expected a JSON object"),
        Bad(json: "{}", expected: "names neither \"image\" nor \"build.dockerfile\""),
        Bad(json: #"{"dockerComposeFile": "c.yml", "service": "app"}"#, expected: "uses dockerComposeFile"),
        Bad(json: #"{"image": "Not An Image"}"#, expected: "is not an image reference"),
        Bad(json: #"{"build": {"dockerfile": "../../../etc/passwd"}}"#, expected: "build.dockerfile ../../../etc/passwd is outside the repository"),
        Bad(json: #"{"build": {"dockerfile": "Dockerfile", "context": "../.."}}"#, files: [".devcontainer/Dockerfile": "FROM x\n"], expected: "build.context ../.. is outside the repository"),
        Bad(json: #"{"build": {"dockerfile": "Nope"}}"#, expected: "build.dockerfile Nope: no such file"),
        Bad(json: #"{"image": "x", "containerEnv": {"BAD NAME": "x"}}"#, expected: "\"BAD NAME\" is not a variable name"),
        Bad(json: #"{"image": "x", "containerEnv": {"A": ["x"]}}"#, expected: "containerEnv.A must be a string"),
        Bad(json: #"{"image": "x", "remoteUser": "Bad User"}"#, expected: "is not a user name"),
        Bad(json: #"{"image": "x", "postCreateCommand": 3}"#, expected: "postCreateCommand must be a string, an array or an object"),
        Bad(json: #"{"image": "x", "features": {"./missing": {}}}"#, expected: "feature ./missing: no such folder"),
        Bad(json: #"{"image": "x", "features": {"./f": {}}}"#, files: [".devcontainer/f/install.sh": "#!/bin/sh\n"], expected: "feature ./f has no devcontainer-feature.json"),
        Bad(json: #"{"image": "x", "features": {"./f": {"colour": "red"}}}"#,
            files: [".devcontainer/f/install.sh": "", ".devcontainer/f/devcontainer-feature.json": #"{"id": "f", "options": {"size": {"default": "1"}}}"#],
            expected: "feature ./f has no option \"colour\" (options: size)"),
        Bad(json: #"{"image": "x", "features": {"./f": {}}}"#,
            files: [".devcontainer/f/install.sh": "", ".devcontainer/f/devcontainer-feature.json": "{\"id\": \"f\",\n\"options\": {,}}"],
            expected: ".devcontainer/f/devcontainer-feature.json:2:13: invalid JSONC"),
        Bad(json: #"{"image": "x", "features": {"./f": {}}}"#,
            files: [".devcontainer/f/install.sh": "", ".devcontainer/f/devcontainer-feature.json": #"{"id": "f", "dependsOn": {"ghcr.io/x/y:1": {}}}"#],
            expected: "only the devcontainer CLI can install"),
    ])
    func badFilesAreOneLineNamingTheFile(_ bad: Bad) throws {
        let message = error { try load(bad.json, files: bad.files) }
        #expect(message.contains(bad.expected), "\(message)")
        #expect(!message.contains("\n"))
    }

    @Test func featureOptionVariables() {
        #expect(LocalFeature.variableName("version") == "VERSION")
        #expect(LocalFeature.variableName("install-tools") == "INSTALL_TOOLS")
        #expect(LocalFeature.variableName("3d.mode") == "_D_MODE")
    }
}
