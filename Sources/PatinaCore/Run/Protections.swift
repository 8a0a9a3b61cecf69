import Foundation
import PatinaSandbox
import PatinaTemplates

/// The protections around the agent: the seccomp profile, the egress
/// firewall (holder + helper, pod pattern) and the probes that prove both
/// before Claude Code starts. Any protection that fails to apply stops the
/// run: the agent never runs less protected than configured.
final class Protections: @unchecked Sendable {
    let plan: RunPlan
    let layout: RunLayout
    let engine: DockerEngine

    private(set) var seccompJSON = ""
    private(set) var seccompRelaxed: [String] = []
    private(set) var seccompReport: SeccompCompileReport?
    private(set) var allowEntries: [AllowEntry] = []
    private(set) var agentEndpoints: [AllowEntry] = []
    /// Allowed names answered with this machine's own addresses for them, and why others were not.
    private(set) var pinnedNames: [PinnedName] = []
    private(set) var dnsNotes: [String] = []
    /// The run's warm caches, mounted into the probe container too (set before the sandbox starts).
    var extras = SandboxExtras()
    private var canary: Canary?
    private var firewallPlan: FirewallPlan?
    private var applyOutput = ""

    init(plan: RunPlan, layout: RunLayout, engine: DockerEngine) {
        self.plan = plan
        self.layout = layout
        self.engine = engine
    }

    var holderName: String { "patina-\(plan.id)-net" }

    /// The probes prove the protections, so a repository cannot override them:
    /// they always come from patina's own data.
    var probeTemplates: TemplateSet { TemplateSet(dataDirectory: plan.templates.dataDirectory, overrideDirectory: nil) }
    var agentNetwork: String? { plan.firewallEnabled ? "container:\(holderName)" : nil }
    var allowListSummary: [String] { plan.firewallEnabled ? (agentEndpoints + allowEntries).map(\.description) : [] }

    /// Builds and checks everything without side effects: the seccomp profile is
    /// compiled with libseccomp, the allow-list parsed, the firewall rendered once.
    func prepare() throws {
        let overrides = SeccompOverrides(extraDenied: plan.config.seccomp?.deny ?? [], relaxed: plan.config.seccomp?.relax ?? [])
        let profile = try SeccompProfile.agentDefault(templates: plan.templates, overrides: overrides)
        seccompReport = try profile.compile(capabilities: Set(plan.capAdd))
        seccompJSON = profile.dockerJSON()
        seccompRelaxed = profile.relaxations
        _ = try probeTemplates.read("templates/probe.sh")
        _ = try probeTemplates.read("templates/command-limits.sh")

        guard plan.firewallEnabled else { return }
        var entries = try Preset.defaults(templates: plan.templates)
        let allowFile = plan.repositoryRoot.appendingPathComponent(".patina/allow.txt")
        var presets = plan.presets
        if let text = try? String(contentsOf: allowFile, encoding: .utf8) {
            let file = try AllowList.parseFile(text, source: ".patina/allow.txt")
            entries += file.entries
            presets += file.presets
        }
        entries += try AllowList.parse(plan.config.allow ?? [], source: ".patina/config.json")
        entries += try AllowList.parse(plan.options.allow, source: "--allow")
        entries += try Preset.load(names: presets, templates: plan.templates)
        entries += try plan.sandbox.trust.proxyAllowEntries()
        allowEntries = entries
        try pinNamesToHostResolution()
        // Render once now so a bad template or setting fails before anything exists.
        // The agent's one model endpoint, its run's proxy, is added once it listens.
        _ = try makeFirewallPlan(gateway: nil, selfTest: SelfTestTargets()).render(templates: plan.templates)
    }

    /// On networks that answer public names with their own addresses, the resolver's
    /// rebinding guard drops the answers for allowed names. Where this machine's own
    /// resolver gets such an address for a name (and the sandbox forwards to the same
    /// servers), the sandbox answers that name with exactly those addresses.
    func pinNamesToHostResolution() throws {
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
        for name in (agentEndpoints + allowEntries).compactMap(\.name) where !names.contains(name) { names.append(name) }
        for name in accepted where !names.contains(name) {
            dnsNotes.append("accept_private_dns names \(name), which the allow-list does not: nothing to accept")
        }
        guard !names.isEmpty else { return }
        let decided = HostResolution.pins(
            names: names, resolved: HostResolution.resolve(names), accepted: Set(accepted), closed: HostNetwork.addresses())
        pinnedNames = decided.pins
        dnsNotes += decided.notes
    }

    func netguardDockerfile() throws -> String {
        try Netguard.dockerfile(templates: plan.templates, baseImage: plan.baseImage)
    }

    /// The host's resolvers (PATINA_RESOLV_CONF / PATINA_RESOLVED_CONF name other files, for tests).
    private var hostDNS: (servers: [String], looked: [String]) {
        let env = ProcessInfo.processInfo.environment
        return FirewallPlan.hostUpstreamServers(
            resolvConf: URL(fileURLWithPath: env["PATINA_RESOLV_CONF"] ?? "/etc/resolv.conf"),
            resolvedConf: URL(fileURLWithPath: env["PATINA_RESOLVED_CONF"] ?? "/run/systemd/resolve/resolv.conf"))
    }

    private func makeFirewallPlan(gateway: String?, selfTest: SelfTestTargets) throws -> FirewallPlan {
        try FirewallPlan(
            entries: allowEntries, agentEndpoints: agentEndpoints,
            upstreamDNS: plan.config.dns ?? hostDNS.servers, upstreamSources: plan.config.dns == nil ? hostDNS.looked : [],
            hostAddresses: HostNetwork.addresses(), gateway: gateway, selfTest: selfTest, pinned: pinnedNames)
    }

    /// Writes the seccomp profile and probe script into the run's config folder.
    func writeRendered() throws {
        try Data(seccompJSON.utf8).write(to: layout.seccompProfile)
        try Data(try probeTemplates.read("templates/probe.sh").utf8).write(to: layout.probeScript)
        try Data(try probeTemplates.read("templates/command-limits.sh").utf8).write(to: layout.commandLimits)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: layout.commandLimits.path)
        if let seccompReport {
            try Data("\(seccompReport)\n".utf8).write(to: layout.rendered.appendingPathComponent("seccomp-bpf.txt"))
        }
    }

    /// Network holder -> firewall applied from outside the agent -> probes.
    /// `modelProxy`: the run's model proxy URL, the agent's only model endpoint.
    func startSandbox(images: SandboxImages, labels: [String: String], gateway: String, modelProxy: String?, progress: Progress) async throws {
        var selfTest = SelfTestTargets()
        agentEndpoints = try modelProxy.map { [try ClaudeEndpoints.modelProxy(url: $0)] } ?? []
        if plan.firewallEnabled {
            guard let netguard = images.netguard else { throw SandboxFailure("the firewall image is missing") }
            let canary = try Canary(address: gateway)
            self.canary = canary
            selfTest = try SelfTestTargets.canary(address: gateway, tcpPort: canary.tcpPort, udpPort: canary.udpPort, dnsPort: canary.udpPort)
            let firewall = try makeFirewallPlan(gateway: gateway, selfTest: selfTest)
            firewallPlan = firewall
            try firewall.render(templates: plan.templates).write(to: layout.firewallDirectory)

            var holder = ContainerSpec(name: holderName, image: netguard)
            holder.labels = labels.merging(["patina.role": "network"]) { $1 }
            holder.network = "bridge"
            holder.dns = [Netguard.holderDNS]
            holder.capDrop = ["ALL"]
            holder.capAdd = Netguard.holderCapabilities
            holder.mounts = [Mount(source: layout.firewallDirectory.path, target: Netguard.mountPath, readOnly: true)]
            holder.command = Netguard.holderCommand
            holder.initProcess = true
            try await engine.start(holder)

            var helper = ContainerSpec(name: "patina-\(plan.id)-firewall", image: netguard)
            helper.labels = labels.merging(["patina.role": "firewall"]) { $1 }
            helper.network = "container:\(holderName)"
            helper.capDrop = ["ALL"]
            helper.capAdd = Netguard.helperCapabilities
            helper.mounts = holder.mounts
            helper.command = Netguard.helperCommand
            let applied = try await engine.runToCompletion(helper)
            applyOutput = applied.standardOutput + applied.standardError
            try? Data(FirewallReport(plan: firewall, applyOutput: applyOutput, selfTestOutput: "").text.utf8).write(to: layout.firewallReport)
            guard applied.succeeded else {
                throw SandboxFailure("the firewall could not be applied: " + (applied.standardError.split(separator: "\n").last.map(String.init) ?? "exit \(applied.exitCode)"))
            }
            progress.step("firewall applied: \(firewall.allEntries.count) allow-list entries, default deny (IPv4 + IPv6)")
        }
        try await runProbes(images: images, labels: labels, progress: progress)
    }

    /// A container started exactly like the agent's runs the hardening probes
    /// and the firewall self-test as the agent's user.
    private func runProbes(images: SandboxImages, labels: [String: String], progress: Progress) async throws {
        var probe = AgentSandbox.spec(plan: plan, layout: layout, image: images.agent, network: agentNetwork, labels: labels, extras: extras)
        probe.name = "patina-\(plan.id)-probe"
        probe.labels["patina.role"] = "probe"
        probe.mounts.append(Mount(source: layout.probeScript.path, target: RunLayout.containerProbe, readOnly: true))
        if plan.firewallEnabled {
            probe.mounts.append(Mount(source: layout.firewallDirectory.path, target: Netguard.mountPath, readOnly: true))
        }
        probe.passEnvironment = []
        probe.environment["PATINA_EXPECTED_CAPBND"] = Capabilities.mask(plan.capAdd)
        probe.environment["PATINA_SECCOMP_RELAXED"] = seccompRelaxed.joined(separator: " ")
        let denied = try SeccompProfile.deniedSyscalls(templates: probeTemplates).filter { !seccompRelaxed.contains($0) }
        probe.environment["PATINA_DENIED_SYSCALLS"] = try SeccompProfile.nativeNumbers(of: denied).joined(separator: " ")
        probe.command = ["bash", RunLayout.containerProbe]
        let result = try await engine.runToCompletion(probe)
        if result.exitCode == 125 {
            throw SandboxFailure("docker could not start the probe container: "
                + (result.standardError.split(separator: "\n").first.map(String.init) ?? "exit 125"))
        }
        let output = result.standardOutput + result.standardError
        try? Data(output.utf8).write(to: layout.probeReport)
        var failures = output.split(separator: "\n").filter { $0.hasPrefix("FAIL") }.map(String.init)
        if let canary {
            // The probe container has exited, so anything it sent has landed; the
            // canary's poll thread records it at once. A short grace covers scheduling.
            try? await Task.sleep(nanoseconds: 20_000_000)
            let arrived = canary.received
            if !arrived.isEmpty { failures.append("FAIL canary blocked traffic reached the host: \(arrived.joined(separator: "; "))") }
        }
        if let firewallPlan {
            let report = FirewallReport(plan: firewallPlan, applyOutput: applyOutput, selfTestOutput: output)
            var text = report.text
            if let canary { text += "\ncanary on the host (\(canary.address) tcp \(canary.tcpPort), udp \(canary.udpPort)): \(canary.received.isEmpty ? "nothing arrived" : canary.received.joined(separator: "; "))\n" }
            try? Data(text.utf8).write(to: layout.firewallReport)
            if let reason = report.failureReason, failures.isEmpty { failures.append("FAIL firewall \(reason)") }
        }
        guard result.succeeded, failures.isEmpty else {
            let first = failures.first ?? "probe container exited \(result.exitCode)"
            throw SandboxFailure("a protection check failed before the agent started: \(first.dropFirst(5))")
        }
        if plan.firewallEnabled {
            // The self-test's own blocked attempts are not the agent's: forget them.
            let flush = RejectedDestinations.lists.map { "echo / > /proc/net/xt_recent/\($0)" }.joined(separator: " && ")
            let flushed = try await engine.run(["exec", holderName, "sh", "-c", flush])
            guard flushed.succeeded else {
                throw SandboxFailure("could not reset the firewall's record of rejected destinations: " + flushed.standardError.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        let passed = output.split(separator: "\n").filter { $0.hasPrefix("PASS") }.count
        progress.step("probes passed (\(passed) checks: seccomp, no-new-privs, no capabilities, firewall self-test)")
    }

    /// Saves what the resolver saw (queries, addresses added to the allow set)
    /// and the allow sets as the run left them.
    func captureReports() async {
        guard plan.firewallEnabled, firewallPlan != nil else { return }
        // The holder's log, and in one exec its allow sets (when names are allowed) and what
        // the firewall rejected (xt_recent, by destination): both at once, they are independent.
        var script = ""
        if firewallPlan?.allEntries.contains(where: \.isNamed) == true {
            script += "echo '== allow sets at the end of the run (addresses added as names were resolved)'; ipset list; "
        }
        script += RejectedDestinations.lists.map { "echo \"\(RejectedDestinations.header) \($0)\"; cat /proc/net/xt_recent/\($0)" }.joined(separator: "; ")
        async let logs = try? engine.run(["logs", holderName])
        async let state = try? engine.run(["exec", holderName, "sh", "-c", script])
        var text = ""
        if let logs = await logs, logs.succeeded { text += logs.standardOutput + logs.standardError }
        if let state = await state, state.succeeded { text += "\n" + state.standardOutput }
        if !text.isEmpty {
            try? Data(text.utf8).write(to: layout.runDirectory.appendingPathComponent("resolver.log"))
        }
    }

    func tearDown() async {
        canary?.stop()
        canary = nil
    }
}

/// The firewall's record of rejected destinations (rules.v4/v6: `-m recent --rdest`),
/// kept by the kernel per network namespace and read from the network holder.
public enum RejectedDestinations {
    public static let lists = ["patina_rejected", "patina_rejected6"]
    /// Starts each list's section in resolver.log.
    public static let header = "== rejected destinations"
}

/// A protection that could not be applied or proven.
struct SandboxFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Condenses PASS/FAIL report files for `patina show`.
public enum ProtectionReport {
    public static func summary(_ text: String) -> [String] {
        let lines = text.split(separator: "\n").map(String.init)
        // firewall.txt starts with its own summary lines.
        if lines.first?.hasPrefix("firewall:") == true {
            return Array(lines.prefix { !$0.isEmpty && !$0.hasPrefix("==") }.prefix(8))
        }
        let pass = lines.filter { $0.hasPrefix("PASS") }.count
        let fail = lines.filter { $0.hasPrefix("FAIL") }
        var out = ["\(pass) passed, \(fail.count) failed"]
        out += fail.prefix(5)
        if let summary = lines.first(where: { $0.hasPrefix("summary:") || $0.hasPrefix("allow-list:") }) { out.append(summary) }
        return out
    }
}
