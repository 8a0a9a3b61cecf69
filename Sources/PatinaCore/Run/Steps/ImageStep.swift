import Foundation
import PatinaSandbox

extension Optional where Wrapped: Sendable {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}

/// The images a run's sandbox is made of.
struct SandboxImages: Sendable {
    var agent: String
    var netguard: String?
    var agentDockerfile: String
    /// What the agent's image starts from (the devcontainer's image, one built from its
    /// Dockerfile, or patina's base image).
    var base: String
    /// The volume holding Claude Code's binary (ClaudeVolume); nil when npm installed it in the image.
    var claudeVolume: String? = nil
}

/// Step "image": the agent's image and the firewall's, built by content hash
/// and reused while nothing changes. Runs that need the same image in one
/// process wait for one build (ImageCache builds each tag once at a time).
extension RunLifecycle {
    var imageCache: ImageCache {
        ImageCache(engine: engine, cacheDirectory: RunStore.home().appendingPathComponent("cache/images"))
    }

    /// `beforeBuilding`: what must hold before any image is built (the protections checked).
    func buildImages(beforeBuilding: @escaping @Sendable () async throws -> Void = {}) async throws -> SandboxImages {
        let cache = imageCache
        let (base, baseID) = try await agentBaseImage(cache: cache, beforeBuilding: beforeBuilding)
        let recipe = try AgentImage.recipe(plan: plan, base: base, baseID: baseID)
        // Only a build needs the base image; say so before the (long) build starts.
        func prepareBuild(_ what: String, base: String) -> @Sendable (String) async throws -> Void {
            { [self] tag in
                try await beforeBuilding()
                try await ensureImage(base)
                progress.step("building the \(what) image \(tag) (once; reused while nothing changes)")
            }
        }
        // The two images are independent: looked up (or built) at the same time.
        let netguardRecipe = plan.firewallEnabled ? try self.netguardRecipe() : nil
        async let netguard = netguardRecipe.asyncMap { recipe in
            try await cache.ensure(recipe, labels: ["patina.image": "netguard"], beforeBuilding: prepareBuild("firewall", base: plan.baseImage))
        }
        // Claude Code's volume is looked up meanwhile; a new one is filled from the agent's image.
        let engine = engine
        async let claude = plan.agentBinary.asyncMap { try await ClaudeVolume.lookup(binary: $0, engine: engine, cache: cache) }
        let agent = try await cache.ensure(recipe, labels: ["patina.image": "agent"], beforeBuilding: prepareBuild("agent", base: base))
        var claudeVolume: String?
        if let binary = plan.agentBinary, let volume = try await claude {
            claudeVolume = volume.filled ? volume.name
                : try await ClaudeVolume.fill(volume.name, binary: binary, version: plan.sandbox.claude.version, image: agent, engine: engine, cache: cache)
        }
        return SandboxImages(agent: agent, netguard: try await netguard, agentDockerfile: recipe.dockerfile, base: base,
                             claudeVolume: claudeVolume)
    }

    /// The firewall's image: patina's netguard Dockerfile on the run's base image.
    func netguardRecipe() throws -> ImageRecipe {
        ImageRecipe(repository: "patina-netguard", dockerfile: try Netguard.dockerfile(templates: plan.templates, baseImage: plan.baseImage))
    }

    /// The devcontainer's image (its `image`, or built from its Dockerfile or by the
    /// devcontainer CLI, then with its id), else patina's base image.
    func agentBaseImage(cache: ImageCache, beforeBuilding: @Sendable () async throws -> Void = {}) async throws -> (String, String?) {
        guard let devcontainer = plan.sandbox.devcontainer else { return (plan.baseImage, nil) }
        if let cli = plan.sandbox.devcontainerCLI {
            try await beforeBuilding()
            return try await DevcontainerImage.buildWithCLI(devcontainer, cli: cli, repositoryRoot: plan.repositoryRoot, engine: engine) { [self] tag in
                progress.step("building the devcontainer's image \(tag) with the devcontainer CLI")
            }
        }
        switch devcontainer.base {
        case .image(let image):
            return (image, nil)
        case .build(let build):
            let tag = try await DevcontainerImage.tag(for: build)
            if await engine.imageExists(tag) { return (tag, nil) }
            try await beforeBuilding()
            try await ImageBuilds.shared.once(tag) { [self] in
                if await engine.imageExists(tag) { return }
                progress.step("building the devcontainer's image \(tag) from \(devcontainer.path) (once; reused while nothing changes)")
                try await DevcontainerImage.build(build, tag: tag, engine: engine, passedBuildArguments: plan.sandbox.trust.passedVariables)
            }
            return (tag, nil)
        }
    }

    func ensureImage(_ image: String) async throws {
        if await engine.imageExists(image) { return }
        progress.step("pulling image \(image)")
        let pull = try await engine.run(["pull", image])
        guard pull.succeeded else {
            throw PatinaError(.environment, Self.pullFailure(image: image, engineSaid: pull.standardError + "\n" + pull.standardOutput,
                                                             baseImage: plan.baseImage, devcontainer: plan.sandbox.devcontainer?.path))
        }
    }

    /// One line for an image that is neither here nor pullable: the engine's reason and the ways on.
    static func pullFailure(image: String, engineSaid: String, baseImage: String, devcontainer: String?) -> String {
        let reason = engineSaid.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty }
            .map { Escaping.clip(String($0), 300) } ?? "no reason given"
        let ways: String
        if let devcontainer, image != baseImage {
            ways = "build or tag \(image) on this machine (docker build -t \(image) … / docker tag IMAGE \(image)), change the image in \(devcontainer), or pass --devcontainer none to build the sandbox from patina's base image"
        } else {
            ways = "build or tag \(image) on this machine (docker build -t \(image) … / docker tag IMAGE \(image)), or pass --base-image with an image this machine has"
        }
        return "image \(image) is not on this machine and could not be pulled (the engine said: \(reason)); \(ways)"
    }
}

/// Images built from a repository's devcontainer: its own Dockerfile (tagged by a
/// hash of the Dockerfile, the build's arguments and the context's files), or the
/// devcontainer CLI when registry features need it.
enum DevcontainerImage {
    static let repository = "patina-devcontainer"

    static func tag(for build: Devcontainer.DockerfileBuild) async throws -> String {
        var manifest = "dockerfile \(try await ImageCache.sha256(text: try String(contentsOf: build.dockerfile, encoding: .utf8)))\n"
        manifest += "target \(build.target ?? "")\n"
        for arg in build.args { manifest += "arg \(arg.name)=\(arg.value)\n" }
        manifest += "context \(try await contextDigest(build.context))\n"
        return "\(repository):\(try await ImageCache.sha256(text: manifest).prefix(16))"
    }

    /// A digest of what the build could read: the context's files, names, modes and
    /// contents (not times or owners, so a fresh checkout of the same files gives the same
    /// tag), .git left out. One tar | sha256sum over the folder.
    static func contextDigest(_ context: URL) async throws -> String {
        let script = #"tar -c --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --exclude=./.git -C "$1" . | sha256sum"#
        let result = try await Command.check(["bash", "-c", "set -o pipefail; " + script, "bash", context.path])
        return String(result.standardOutput.prefix(64))
    }

    static func build(_ build: Devcontainer.DockerfileBuild, tag: String, engine: DockerEngine, passedBuildArguments: [String]) async throws {
        do {
            try await engine.build(
                context: build.context, dockerfile: build.dockerfile, tag: tag, labels: ["patina.image": "devcontainer"],
                target: build.target, buildArguments: build.args.map { ($0.name, $0.value) }, passedBuildArguments: passedBuildArguments)
        } catch let failure as ImageBuildFailure {
            throw PatinaError(.environment, "the devcontainer's Dockerfile did not build (\(build.dockerfile.lastPathComponent), exit \(failure.exitCode)): \(failure.tail)",
                              cause: failure)
        }
    }

    /// `devcontainer build` for a devcontainer.json with registry features.
    static func cliArguments(cli: String, repositoryRoot: URL, config: URL, tag: String) -> [String] {
        [cli, "build", "--workspace-folder", repositoryRoot.path, "--config", config.path, "--image-name", tag]
    }

    static func buildWithCLI(
        _ devcontainer: Devcontainer, cli: String, repositoryRoot: URL, engine: DockerEngine,
        beforeBuilding: @escaping @Sendable (String) -> Void
    ) async throws -> (String, String?) {
        // The CLI keeps its own layer cache; the tag follows the configuration, and the
        // agent's image follows the built image's id (named in its Dockerfile), so nothing goes stale.
        let text = (try? String(contentsOf: devcontainer.file, encoding: .utf8)) ?? ""
        let tag = "\(repository):cli-\(try await ImageCache.sha256(text: repositoryRoot.path + "\n" + text).prefix(16))"
        beforeBuilding(tag)
        let result = try await Command.run(cliArguments(cli: cli, repositoryRoot: repositoryRoot, config: devcontainer.file, tag: tag))
        guard result.succeeded else {
            let failure = ImageBuildFailure(tag: tag, exitCode: result.exitCode, output: result.standardOutput + "\n" + result.standardError)
            throw PatinaError(.environment, "the devcontainer CLI could not build \(devcontainer.path) (exit \(result.exitCode)): \(failure.tail)",
                              cause: failure)
        }
        let id = try await engine.check(["image", "inspect", "--format", "{{.Id}}", tag]).standardOutput
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return (tag, id.isEmpty ? nil : id)
    }
}
