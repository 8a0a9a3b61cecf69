import Foundation
import PatinaSandbox

/// The images a run's sandbox is made of.
struct SandboxImages: Sendable {
    var agent: String
    var netguard: String?
    var agentDockerfile: String
}

/// Step "image": the agent's image and the firewall's, built by content hash
/// and reused while nothing changes. Runs that need the same image in one
/// process wait for one build (ImageCache builds each tag once at a time).
extension RunLifecycle {
    func buildImages(dockerfile: String) async throws -> SandboxImages {
        let cache = ImageCache(engine: engine, cacheDirectory: RunStore.home().appendingPathComponent("cache/images"))
        var files: [String: URL] = [:]
        if let binary = plan.agentBinary { files["claude"] = binary }
        // Only a build needs the base image; say so before the (long) build starts.
        func prepareBuild(_ what: String) -> @Sendable (String) async throws -> Void {
            { [self] tag in
                try await ensureBaseImage()
                progress.step("building the \(what) image \(tag) (once; reused while nothing changes)")
            }
        }
        let agent = try await cache.ensure(
            ImageRecipe(repository: "patina-agent", dockerfile: dockerfile, files: files),
            labels: ["patina.image": "agent"], beforeBuilding: prepareBuild("agent"))
        var netguard: String?
        if plan.firewallEnabled {
            netguard = try await cache.ensure(
                ImageRecipe(repository: "patina-netguard", dockerfile: try protections.netguardDockerfile()),
                labels: ["patina.image": "netguard"], beforeBuilding: prepareBuild("firewall"))
        }
        return SandboxImages(agent: agent, netguard: netguard, agentDockerfile: dockerfile)
    }

    func ensureBaseImage() async throws {
        if await engine.imageExists(plan.baseImage) { return }
        progress.step("pulling base image \(plan.baseImage)")
        let pull = try await engine.run(["pull", plan.baseImage])
        guard pull.succeeded else {
            throw PlanError("base image \(plan.baseImage) is not available locally and `docker pull` failed; build or import it first, or pass --base-image")
        }
    }

    func dockerfileContext() -> [String: Any] {
        [
            "base_image": plan.baseImage,
            "uid": String(plan.agentUID),
            "gid": String(plan.agentGID),
            "agent_binary": plan.agentBinary != nil,
            "install_with_npm": plan.agentBinary == nil,
            "claude_version": RunPlan.pinnedClaudeVersion,
        ]
    }
}
