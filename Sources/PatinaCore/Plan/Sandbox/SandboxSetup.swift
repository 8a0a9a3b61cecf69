import Foundation
import PatinaSandbox

/// What the repository's sandbox is made of, decided while planning (nothing is
/// built or run): the repository's devcontainer.json, or the toolchains found in
/// it; the registry presets and warm caches that go with those; the Claude Code
/// that goes into the image; and what is borrowed from this machine (its CA
/// certificates, its proxy). patina's hardening layer goes on top of all of it.
public struct SandboxSetup: Sendable {
    public var devcontainer: Devcontainer?
    /// The devcontainer CLI, when the devcontainer.json uses registry features.
    public var devcontainerCLI: String?
    /// Every toolchain found or configured: their presets and caches apply.
    public var toolchains: [Toolchain]
    /// The ones patina installs (all of them without a devcontainer; with one, only
    /// those `.patina/config.json` names).
    public var installed: [Toolchain]
    /// Registry presets added to the allow-list because of the toolchains.
    public var autoPresets: [String]
    public var caches: [String]
    public var claude: ClaudeCode
    public var trust: HostTrust
    /// With a devcontainer, what a base image given by flag or config is used for.
    public var baseImageNote: String?

    /// Distribution packages patina's layer installs besides its own.
    public var packages: [String] {
        var out: [String] = []
        for t in installed { for p in t.packages where !out.contains(p) { out.append(p) } }
        if claude.source == .npm { for p in ["nodejs", "npm"] where !out.contains(p) { out.append(p) } }
        return out
    }

    /// Tools installed with pip from the package index at image build (not packaged by the distribution).
    public var pipPackages: [String] {
        var out: [String] = []
        for t in installed { for p in t.pipPackages where !out.contains(p) { out.append(p) } }
        return out
    }

    /// Lines for the step log and `patina detect`: what was found and what was not done.
    public var notes: [String] {
        var lines: [String] = []
        if let devcontainer { lines += devcontainer.summary }
        if let baseImageNote { lines.append(baseImageNote) }
        for t in toolchains {
            let installedHere = installed.contains { $0.name == t.name }
            lines.append("toolchain " + t.summary + (installedHere ? "" : " (provided by the devcontainer; patina installs nothing)"))
            lines += t.notes.map { "  note: \($0)" }
        }
        if !autoPresets.isEmpty { lines.append("presets added for the toolchains: \(autoPresets.joined(separator: ", "))") }
        if !caches.isEmpty { lines.append("warm caches: \(caches.joined(separator: ", "))") }
        lines.append(claude.npmWarning ?? claude.description)
        if trust.certificates.isEmpty {
            lines.append("host CA: not trusted (--no-host-ca or no bundle)")
        } else {
            lines.append("host CA: \(trust.certificates.count) certificates from \(trust.caFiles.joined(separator: ", "))")
        }
        for proxy in trust.proxies { lines.append("proxy \(proxy.endpoint) (\(proxy.variables.joined(separator: ", ")), allowed)") }
        lines += trust.notes
        return lines
    }

    static func plan(
        options: YoloOptions, config: PatinaConfig, repositoryRoot root: URL, environment: [String: String],
        firewallEnabled: Bool, explicitPresets: [String]
    ) async throws -> SandboxSetup {
        var devcontainer: Devcontainer?
        if let file = try Devcontainer.locate(repositoryRoot: root, name: options.devcontainer) {
            devcontainer = try Devcontainer.load(file, repositoryRoot: root)
        }
        var cli: String?
        if let devcontainer, let first = devcontainer.registryFeatures.first {
            cli = Command.which("devcontainer", environment: environment)
            if cli == nil {
                throw DevcontainerError("\(devcontainer.path): feature \(first) comes from a registry, which needs the devcontainer CLI: install it (npm install -g @devcontainers/cli), or vendor the feature into the repository and name it ./PATH")
            }
        }
        let detected = Toolchains.detect(in: root)
        var toolchains = try Toolchains.resolve(detected: detected, setting: config.toolchains)
        var installed = toolchains
        if devcontainer != nil {
            let named: [String]
            switch config.toolchains {
            case .add(let n)?, .only(let n)?: named = n
            case nil: named = []
            }
            installed = toolchains.filter { named.contains($0.name) }
            // What patina does not install, no note may say it does.
            for index in toolchains.indices where !named.contains(toolchains[index].name) {
                let pip = toolchains[index].pipPackages
                guard !pip.isEmpty else { continue }
                toolchains[index].notes = toolchains[index].notes.filter { !$0.contains("from the package index") }
                    + ["\(pip.joined(separator: ", ")) is not installed: the devcontainer provides \(toolchains[index].name) and patina installs nothing in it (add it to the devcontainer, or name \(toolchains[index].name) under \"toolchains\" in .patina/config.json)"]
            }
        }
        var autoPresets: [String] = []
        if firewallEnabled && !options.noAutoPresets {
            for preset in toolchains.compactMap(\.preset) where !autoPresets.contains(preset) && !explicitPresets.contains(preset) {
                autoPresets.append(preset)
            }
        }
        var caches: [String] = []
        for name in toolchains.flatMap(\.caches) where !caches.contains(name) { caches.append(name) }
        let claude = try await ClaudeCodeLocator.choose(
            flag: options.agentBinary, config: config.agentBinary, repositoryRoot: root, environment: environment)
        let trust = try HostTrust.load(
            configured: config.caCertificates, hostCA: !options.noHostCA, repositoryRoot: root, environment: environment)
        return SandboxSetup(
            devcontainer: devcontainer, devcontainerCLI: cli, toolchains: toolchains, installed: installed,
            autoPresets: autoPresets, caches: caches, claude: claude, trust: trust,
            baseImageNote: devcontainer.flatMap { baseImageNote(options: options, config: config, devcontainer: $0) })
    }

    /// A base image given beside a devcontainer does not make the agent's image (the
    /// devcontainer does); it is the firewall helper's base. Said, with the way to use it instead.
    static func baseImageNote(options: YoloOptions, config: PatinaConfig, devcontainer: Devcontainer) -> String? {
        let given: String
        if let flag = options.baseImage { given = "--base-image \(flag)" }
        else if let configured = config.baseImage { given = "base_image \(configured) in .patina/config.json" }
        else { return nil }
        return "\(given): the agent's image comes from \(devcontainer.path); this image is the firewall helper's base only (--devcontainer none builds the agent's image from it)"
    }
}
