import Foundation
import PatinaSandbox

/// What `patina detect` reports: what a run in this repository would be built
/// on and allowed, and the Dockerfile and devcontainer.json it would render —
/// without building, starting or creating anything.
public struct Detection: Sendable {
    public var repository: String
    /// What was found, one line each (devcontainer, toolchains and their notes, Claude Code, CA, proxy, DNS).
    public var lines: [String]
    public var devcontainer: String?
    public var notActedOn: [String]
    public var toolchains: [Toolchain]
    public var autoPresets: [String]
    /// The whole allow-list the run would get (Claude Code's endpoint first).
    public var allowList: [String]
    /// Whether the run's firewall is on (it is unless --no-firewall).
    public var firewall: Bool
    /// Names the toolchains' presets bring in that do not resolve from this machine: left out
    /// of a run, which goes on without them.
    public var unresolvedPresetNames: [String]
    public var caches: [String]
    public var claude: String
    public var claudeVersion: String?
    public var hostCA: [String]
    public var proxies: [String]
    public var dnsPinned: [PinnedName]
    public var agentImage: String
    public var dockerfile: String
    public var devcontainerJSON: String

    public static func run(plan: RunPlan) async throws -> Detection {
        let layout = RunLayout(runDirectory: plan.runDirectory)
        let protections = try ProtectionPlan.make(plan: plan)
        let setup = plan.sandbox
        var base = plan.baseImage
        if let devcontainer = setup.devcontainer {
            if setup.devcontainerCLI != nil {
                base = "\(DevcontainerImage.repository):cli-(built by the devcontainer CLI)"
            } else {
                switch devcontainer.base {
                case .image(let image): base = image
                case .build(let build): base = try await DevcontainerImage.tag(for: build)
                }
            }
        }
        let recipe = try AgentImage.recipe(plan: plan, base: base)
        let cache = ImageCache(engine: DockerEngine(), cacheDirectory: RunStore.home().appendingPathComponent("cache/images"))
        let image = try await cache.tag(for: recipe, rememberHashes: false)
        var extras = CacheStore(store: plan.store).plannedExtras(setup.caches)
        // Claude Code's volume, as a run would mount it (looked up by the binary's content; not made here).
        if let binary = plan.agentBinary {
            extras.mounts.append(ClaudeVolume.mount(ClaudeVolume.name(digest: try await cache.digest(of: binary, remember: false))))
        }
        let spec = AgentSandbox.spec(plan: plan, layout: layout, image: image, network: plan.firewallEnabled ? "container:\(NetworkHolder.name(runID: plan.id))" : nil,
                                     labels: ["patina": "1", "patina.run": plan.id, "patina.repo": plan.store.repositoryKey],
                                     extras: extras)
        let devcontainerJSON = try AgentSandbox.devcontainerJSON(spec, plan: plan)
        let unresolved = protections.unresolvedAutoNames
        let lines = setup.notes + protections.dnsNotes
            + protections.pinnedNames.map { "dns: \($0.name) → \($0.addresses.joined(separator: ", ")): \($0.reason)" }
            + unresolved.map { "note: \($0) does not resolve from this machine: a run leaves it out and goes on (a preset patina adds for the toolchains names it; --no-auto-presets leaves such presets out)" }
        return Detection(
            repository: plan.repositoryRoot.path, lines: lines, devcontainer: setup.devcontainer?.path,
            notActedOn: setup.devcontainer?.notActedOn ?? [], toolchains: setup.toolchains, autoPresets: setup.autoPresets,
            allowList: protections.allowListSummary(), firewall: plan.firewallEnabled, unresolvedPresetNames: unresolved, caches: setup.caches, claude: setup.claude.npmWarning ?? setup.claude.description,
            claudeVersion: setup.claude.version, hostCA: setup.trust.caFiles, proxies: setup.trust.proxies.map(\.endpoint),
            dnsPinned: protections.pinnedNames, agentImage: image, dockerfile: recipe.dockerfile, devcontainerJSON: devcontainerJSON)
    }
}

extension Detection: Encodable {
    enum CodingKeys: String, CodingKey {
        case repository, lines, devcontainer, toolchains, caches, claude, proxies, dockerfile
        case notActedOn = "not_acted_on"
        case autoPresets = "auto_presets"
        case allowList = "allow_list"
        case firewall
        case unresolvedPresetNames = "unresolved_preset_names"
        case claudeVersion = "claude_version"
        case hostCA = "host_ca"
        case dnsPinned = "dns_pinned"
        case agentImage = "agent_image"
        case devcontainerJSON = "devcontainer_json"
    }
}

extension CacheStore {
    /// The mounts and variables a run would get, without creating or locking anything.
    func plannedExtras(_ names: [String]) -> SandboxExtras {
        var extras = SandboxExtras()
        for cache in names.compactMap(WarmCache.named) {
            extras.mounts.append(Mount(source: directory(cache.name).path, target: cache.target, readOnly: false))
            extras.environment.merge(cache.environment) { $1 }
        }
        return extras
    }
}
