import Foundation
import PatinaSandbox
import PatinaTemplates

/// The protections around the agent, as a value: the seccomp profile compiled with
/// libseccomp, the egress allow-list, the DNS pins, the firewall rendered once. Built
/// while the run is planned, without side effects (`make`); the network holder
/// (`NetworkHolder`) applies it and the probes (`ProbeGate`) prove it inside each sandbox
/// container. Any protection that fails to apply stops the run: the agent never runs
/// less protected than configured.
struct ProtectionPlan: Sendable {
    let plan: RunPlan
    private(set) var seccompJSON = ""
    private(set) var seccompRelaxed: [String] = []
    private(set) var seccompReport: SeccompCompileReport?
    private(set) var allowEntries: [AllowEntry] = []
    /// Names only the toolchains' presets (added by patina, not asked for) brought in.
    private(set) var autoOnlyNames: Set<String> = []
    /// What this machine's resolver answered for the allowed names (empty: no answer);
    /// nil when the sandbox does not forward to this machine's servers.
    private(set) var hostResolved: [String: [String]]?
    /// Allowed names answered with this machine's own addresses for them, and why others were not.
    private(set) var pinnedNames: [PinnedName] = []
    private(set) var dnsNotes: [String] = []
    /// patina's deny list as this architecture's numbers, relaxed calls left out: the
    /// probe calls each one.
    private(set) var deniedSyscallNumbers = ""

    /// The probes prove the protections, so a repository cannot override them:
    /// they always come from patina's own data (the holder's script too).
    static func probeTemplates(_ plan: RunPlan) -> TemplateSet {
        TemplateSet(dataDirectory: plan.templates.dataDirectory, overrideDirectory: nil)
    }
    var probeTemplates: TemplateSet { Self.probeTemplates(plan) }

    /// Builds and checks everything without side effects: the seccomp profile is
    /// compiled with libseccomp, the allow-list parsed, the firewall rendered once.
    static func make(plan: RunPlan) throws -> ProtectionPlan {
        var protections = ProtectionPlan(plan: plan)
        try protections.prepare()
        return protections
    }

    private init(plan: RunPlan) { self.plan = plan }

    private mutating func prepare() throws {
        let overrides = SeccompOverrides(extraDenied: plan.config.seccomp?.deny ?? [], relaxed: plan.config.seccomp?.relax ?? [])
        let (profile, report) = try SeccompProfile.agentDefaultCompiled(templates: plan.templates, overrides: overrides, capabilities: Set(plan.capAdd))
        seccompReport = report
        seccompJSON = profile.dockerJSON()
        seccompRelaxed = profile.relaxations
        deniedSyscallNumbers = try SeccompProfile.nativeNumbers(
            of: try SeccompProfile.deniedSyscalls(templates: probeTemplates).filter { !seccompRelaxed.contains($0) }).joined(separator: " ")
        _ = try probeTemplates.read("templates/probe.sh")
        _ = try probeTemplates.read("templates/command-limits.sh")

        guard plan.firewallEnabled else { return }
        var entries = try Preset.defaults(templates: plan.templates)
        let defaults = entries.count
        let allowFile = plan.repositoryRoot.appendingPathComponent(".patina/allow.txt")
        // The toolchains' presets come last: a name they alone bring in is optional.
        let auto = plan.sandbox.autoPresets
        var presets = plan.presets.filter { !auto.contains($0) }
        if let text = try? String(contentsOf: allowFile, encoding: .utf8) {
            let file = try AllowList.parseFile(text, source: ".patina/allow.txt")
            entries += file.entries
            presets += file.presets
        }
        entries += try AllowList.parse(plan.config.allow ?? [], source: ".patina/config.json")
        entries += try AllowList.parse(plan.options.allow, source: "--allow")
        entries += try Preset.load(names: presets, templates: plan.templates)
        let asked = Array(entries.dropFirst(defaults))
        entries += try plan.sandbox.trust.proxyAllowEntries()
        let autoEntries = try Preset.load(names: auto, templates: plan.templates)
        autoOnlyNames = Set(autoEntries.compactMap(\.name)).subtracting(entries.compactMap(\.name))
        entries += autoEntries
        allowEntries = entries
        try pinNamesToHostResolution()
        try requireAskedNamesResolve(asked)
        // Render once now so a bad template or setting fails before anything exists.
        // The agent's one model endpoint, its run's proxy, is added once it listens.
        _ = try firewallPlan(gateway: nil, selfTest: SelfTestTargets(), agentEndpoints: [])
            .render(templates: plan.templates, mechanism: probeTemplates)
    }

    /// A name the user asked for (`--allow`, `--preset`, .patina/) that does not resolve here
    /// would fail the firewall's self-test once the branch exists: it stops the run now,
    /// before anything is created, in one line. Only where the sandbox asks the same servers
    /// as this machine's resolver (no `dns` setting, no other resolver files).
    private func requireAskedNamesResolve(_ asked: [AllowEntry]) throws {
        let env = ProcessInfo.processInfo.environment
        guard let hostResolved, env["PATINA_RESOLV_CONF"] == nil, env["PATINA_RESOLVED_CONF"] == nil else { return }
        for entry in asked {
            guard let name = entry.name, hostResolved[name]?.isEmpty == true else { continue }
            throw PlanError("\(name) (\(entry.source)) does not resolve from this machine, so the sandbox could not reach it either: check the name, or leave it out of \(entry.source.hasPrefix("preset") ? "--preset and .patina/config.json" : entry.source)")
        }
    }

    /// The names patina added by itself that do not resolve from this machine (for `patina detect`).
    var unresolvedAutoNames: [String] {
        guard let hostResolved else { return [] }
        return autoOnlyNames.filter { hostResolved[$0]?.isEmpty == true }.sorted()
    }

    /// The allow-list as run.json states it; `agentEndpoints`: the run's model proxy, once it listens.
    func allowListSummary(agentEndpoints: [AllowEntry] = []) -> [String] {
        plan.firewallEnabled ? (agentEndpoints + allowEntries).map(\.description) : []
    }

    /// On networks that answer public names with their own addresses, the resolver's
    /// rebinding guard drops the answers for allowed names. Where this machine's own
    /// resolver gets such an address for a name (and the sandbox forwards to the same
    /// servers), the sandbox answers that name with exactly those addresses.
    private mutating func pinNamesToHostResolution() throws {
        let accepted = plan.config.acceptPrivateDNS ?? []
        for name in accepted {
            guard case .name = try AllowList.parseEntry(name, source: "accept_private_dns in .patina/config.json").host else {
                throw PlanError("accept_private_dns in .patina/config.json: \"\(name)\" is not a host name")
            }
        }
        guard plan.config.dns == nil else {
            if !accepted.isEmpty { dnsNotes.append("accept_private_dns is not applied: the sandbox resolver forwards to the dns servers in .patina/config.json, not to this machine's") }
            return
        }
        var names: [String] = []
        // The model proxy's endpoint is an address, never a name: only the allow-list's names.
        for name in allowEntries.compactMap(\.name) where !names.contains(name) { names.append(name) }
        for name in accepted where !names.contains(name) {
            dnsNotes.append("accept_private_dns names \(name), which the allow-list does not: nothing to accept")
        }
        guard !names.isEmpty else { return }
        let resolved = HostResolution.resolve(names)
        hostResolved = resolved
        let decided = HostResolution.pins(
            names: names, resolved: resolved, accepted: Set(accepted), closed: HostNetwork.addresses())
        pinnedNames = decided.pins
        dnsNotes += decided.notes
    }

    /// The host's resolvers (PATINA_RESOLV_CONF / PATINA_RESOLVED_CONF name other files, for tests).
    private var hostDNS: (servers: [String], looked: [String]) {
        let env = ProcessInfo.processInfo.environment
        return FirewallPlan.hostUpstreamServers(
            resolvConf: URL(fileURLWithPath: env["PATINA_RESOLV_CONF"] ?? "/etc/resolv.conf"),
            resolvedConf: URL(fileURLWithPath: env["PATINA_RESOLVED_CONF"] ?? "/run/systemd/resolve/resolv.conf"))
    }

    /// The firewall's rules: the allow-list, the run's model proxy (`agentEndpoints`) and
    /// the self-test's targets (the canary on `gateway`).
    func firewallPlan(gateway: String?, selfTest: SelfTestTargets, agentEndpoints: [AllowEntry]) throws -> FirewallPlan {
        var firewall = try FirewallPlan(
            entries: allowEntries, agentEndpoints: agentEndpoints,
            upstreamDNS: plan.config.dns ?? hostDNS.servers, upstreamSources: plan.config.dns == nil ? hostDNS.looked : [],
            hostAddresses: HostNetwork.addresses(), gateway: gateway, selfTest: selfTest, pinned: pinnedNames)
        firewall.optionalNames = autoOnlyNames
        return firewall
    }

    /// Writes the seccomp profile and probe script into the run's config folder.
    func writeRendered(to layout: RunLayout) throws {
        try Data(seccompJSON.utf8).write(to: layout.seccompProfile)
        try Data(try probeTemplates.read("templates/probe.sh").utf8).write(to: layout.probeScript)
        try Data(try probeTemplates.read("templates/command-limits.sh").utf8).write(to: layout.commandLimits)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: layout.commandLimits.path)
        if let seccompReport {
            try Data("\(seccompReport)\n".utf8).write(to: layout.rendered.appendingPathComponent("seccomp-bpf.txt"))
        }
    }
}
