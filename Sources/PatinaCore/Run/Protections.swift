import Foundation
import PatinaSandbox
import PatinaTemplates

/// The protections around the agent: the seccomp profile, the egress
/// firewall (a network holder that applies it, pod pattern) and the probes that
/// prove both inside each sandbox container before its command starts (ProbeGate). Any protection that fails to apply stops the
/// run: the agent never runs less protected than configured.
final class Protections: @unchecked Sendable {
    // @unchecked: relies on the run's order: prepare() fills the plan's fields before another task reads them, and the
    // sandbox task alone writes the holder's, read elsewhere only after it ends (splitting plan and holder would check it).
    let plan: RunPlan
    let layout: RunLayout
    let engine: DockerEngine

    private(set) var seccompJSON = ""
    private(set) var seccompRelaxed: [String] = []
    private(set) var seccompReport: SeccompCompileReport?
    private(set) var allowEntries: [AllowEntry] = []
    /// Names only the toolchains' presets (added by patina, not asked for) brought in.
    private(set) var autoOnlyNames: Set<String> = []
    /// What this machine's resolver answered for the allowed names (empty: no answer);
    /// nil when the sandbox does not forward to this machine's servers.
    private(set) var hostResolved: [String: [String]]?

    /// A name the user asked for (`--allow`, `--preset`, .patina/) that does not resolve here
    /// would fail the firewall's self-test once the branch exists: it stops the run now,
    /// before anything is created, in one line. Only where the sandbox asks the same servers
    /// as this machine's resolver (no `dns` setting, no other resolver files).
    func requireAskedNamesResolve(_ asked: [AllowEntry]) throws {
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
    private(set) var agentEndpoints: [AllowEntry] = []
    /// Allowed names answered with this machine's own addresses for them, and why others were not.
    private(set) var pinnedNames: [PinnedName] = []
    private(set) var dnsNotes: [String] = []
    private var canary: Canary?
    private var firewallPlan: FirewallPlan?
    private var applyOutput = ""
    private var holderRequests = 0
    /// When the holder's folders, request FIFO and script were made (`prepareHolder`); nil before.
    private var holderPreparedAt: Date?
    /// Set once the network holder runs (started early, while planning, or by `startSandbox`).
    private(set) var holderStarted = false
    /// The holder applying the firewall, handed over by `startSandbox`.
    private var applying: Task<Void, Error>?
    /// How long an early holder waits for its rules (holder.sh gives up after 600 s); one
    /// older than this (a long image build) is replaced rather than handed rules it may miss.
    /// PATINA_HOLDER_PATIENCE (seconds) can only shorten it: for tests of the replacement.
    static var holderPatience: TimeInterval {
        min(480, ProcessInfo.processInfo.environment["PATINA_HOLDER_PATIENCE"].flatMap(Double.init) ?? 480)
    }
    /// patina's deny list as this architecture's numbers, relaxed calls left out: the
    /// probe calls each one.
    private(set) var deniedSyscallNumbers = ""

    init(plan: RunPlan, layout: RunLayout, engine: DockerEngine) {
        self.plan = plan
        self.layout = layout
        self.engine = engine
    }

    var holderName: String { "patina-\(plan.id)-net" }

    /// The probes prove the protections, so a repository cannot override them:
    /// they always come from patina's own data (the holder's script too).
    var probeTemplates: TemplateSet { TemplateSet(dataDirectory: plan.templates.dataDirectory, overrideDirectory: nil) }
    var agentNetwork: String? { plan.firewallEnabled ? "container:\(holderName)" : nil }
    var allowListSummary: [String] { plan.firewallEnabled ? (agentEndpoints + allowEntries).map(\.description) : [] }

    /// Builds and checks everything without side effects: the seccomp profile is
    /// compiled with libseccomp, the allow-list parsed, the firewall rendered once.
    func prepare() throws {
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
        _ = try makeFirewallPlan(gateway: nil, selfTest: SelfTestTargets()).render(templates: plan.templates, mechanism: probeTemplates)
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
        let resolved = HostResolution.resolve(names)
        hostResolved = resolved
        let decided = HostResolution.pins(
            names: names, resolved: resolved, accepted: Set(accepted), closed: HostNetwork.addresses())
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
        var firewall = try FirewallPlan(
            entries: allowEntries, agentEndpoints: agentEndpoints,
            upstreamDNS: plan.config.dns ?? hostDNS.servers, upstreamSources: plan.config.dns == nil ? hostDNS.looked : [],
            hostAddresses: HostNetwork.addresses(), gateway: gateway, selfTest: selfTest, pinned: pinnedNames)
        firewall.optionalNames = autoOnlyNames
        return firewall
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

    /// Starts the network holder, which owns the sandbox's network namespace: it needs
    /// only the netguard image and its own script to start, so it starts while the run is
    /// still planned; it then waits for the firewall's rules (`startSandbox`) and applies
    /// them before any container's command runs in its namespace.
    func startHolder(netguard: String, labels: [String: String]) async throws {
        if holderPreparedAt == nil { try prepareHolder() }

        var holder = ContainerSpec(name: holderName, image: netguard)
        holder.labels = labels.merging(["patina.role": "network"]) { $1 }
        holder.network = "bridge"
        holder.dns = [Netguard.holderDNS]
        holder.capDrop = ["ALL"]
        holder.capAdd = Netguard.holderCapabilities
        holder.mounts = [
            Mount(source: layout.firewallDirectory.path, target: Netguard.mountPath, readOnly: true),
            Mount(source: layout.netguardState.path, target: Netguard.statePath, readOnly: false),
        ]
        holder.command = Netguard.holderCommand
        holder.initProcess = true
        try await engine.start(holder)
        holderStarted = true
    }

    /// The holder's report folder with its request FIFO, and its script: what it needs to start.
    func prepareHolder() throws {
        try prepareNetguardState()
        try FileManager.default.createDirectory(at: layout.firewallDirectory, withIntermediateDirectories: true)
        let script = layout.firewallDirectory.appendingPathComponent("holder.sh")
        try Data(try probeTemplates.render("firewall/holder.sh.mustache", [:]).utf8).write(to: script, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        holderPreparedAt = Date()
    }

    /// The firewall's rules for the network holder (started now unless it was early).
    /// Returns once the holder runs with the rules handed over and has closed its namespace
    /// (every chain's policy DROP: nothing passes until the rules are in): sandbox
    /// containers may start in it while it applies them, their first process being
    /// patina's probe, which waits for patina's word that the rules are in
    /// (`firewallApplied`) before the firewall's self-test; their command starts only after
    /// (`gate`/`admit`).
    /// `modelProxy`: the run's model proxy URL, the agent's only model endpoint.
    /// `earlyHolder`: the holder's early start, if any, to wait for once the rules are handed over.
    func startSandbox(
        images: SandboxImages, labels: [String: String], gateway: String, modelProxy: String?, progress: Progress,
        steps: StepLog, earlyHolder: () async -> Void = {}
    ) async throws {
        agentEndpoints = try modelProxy.map { [try ClaudeEndpoints.modelProxy(url: $0)] } ?? []
        guard plan.firewallEnabled else { return }
        guard let netguard = images.netguard else { throw SandboxFailure("the firewall image is missing") }
        let canary = try Canary(address: gateway)
        self.canary = canary
        let selfTest = try SelfTestTargets.canary(address: gateway, tcpPort: canary.tcpPort, udpPort: canary.udpPort, dnsPort: canary.udpPort)
        let firewall = try makeFirewallPlan(gateway: gateway, selfTest: selfTest)
        firewallPlan = firewall
        if let prepared = holderPreparedAt, Date().timeIntervalSince(prepared) > Self.holderPatience {
            await earlyHolder()
            guard await engine.remove([holderName]) else { throw SandboxFailure("could not replace the network holder \(holderName)") }
            holderStarted = false
            holderPreparedAt = nil
        }
        if holderPreparedAt == nil { try prepareHolder() }
        try firewall.render(templates: plan.templates, mechanism: probeTemplates).write(to: layout.firewallDirectory)

        // Held open until the holder answered: the line waits in the FIFO even when the
        // holder has not opened it yet.
        let handedOver = Self.writeLine("apply 0", toFIFO: layout.netguardState.appendingPathComponent(Netguard.requestsFIFO), keepingOpen: true)
        if let why = handedOver.error { throw SandboxFailure("could not hand the firewall to the network holder: \(why)") }
        let request = handedOver.fd
        do {
            // The rules wait in the FIFO while the holder starts (usually it is still starting).
            await earlyHolder()
            if !holderStarted { try await startHolder(netguard: netguard, labels: labels) }
            // No sandbox container starts in the namespace before nothing can pass it.
            let closed = try await awaitHolder(file: "closed", what: "closing the network namespace")
            guard closed == "0" else {
                let why = (try? String(contentsOf: layout.netguardState.appendingPathComponent("closed.err"), encoding: .utf8)) ?? ""
                throw SandboxFailure("the network holder could not close the sandbox's network before the firewall: "
                    + (why.split(separator: "\n").last.map(String.init) ?? "exit \(closed)"))
            }
        } catch {
            close(request)
            throw error
        }
        applying = Task {
            defer { close(request) }
            try await self.awaitApplied(firewall, progress: progress, steps: steps)
        }
    }

    /// Returns once the holder applied the firewall (at once without one); throws when it
    /// could not. A sandbox container's probe learns it from `admit` before its self-test.
    func firewallApplied() async throws {
        try await applying?.value
    }

    private func awaitApplied(_ firewall: FirewallPlan, progress: Progress, steps: StepLog) async throws {
        let status = try await steps.time("firewall", detail: "applied in the network holder") {
            try await awaitHolder(file: "applied", what: "applying the firewall")
        }
        applyOutput = (try? String(contentsOf: layout.netguardState.appendingPathComponent("apply.out"), encoding: .utf8)) ?? ""
        try? Data(FirewallReport(plan: firewall, applyOutput: applyOutput, selfTestOutput: "").text.utf8).write(to: layout.firewallReport)
        guard status == "0" else {
            throw SandboxFailure("the firewall could not be applied: "
                + (applyOutput.split(separator: "\n").last.map(String.init) ?? "exit \(status)"))
        }
        progress.step("firewall applied: \(counted(firewall.allEntries.count, "allow-list entry", "allow-list entries")), default deny (IPv4 + IPv6)")
    }

    /// The holder's report folder (mounted in the holder only) with its request FIFO.
    private func prepareNetguardState() throws {
        let fm = FileManager.default
        try? fm.removeItem(at: layout.netguardState)
        try fm.createDirectory(at: layout.netguardState, withIntermediateDirectories: true)
        let fifo = layout.netguardState.appendingPathComponent(Netguard.requestsFIFO)
        guard mkfifo(fifo.path, 0o600) == 0 else {
            throw SandboxFailure("could not create \(fifo.path): \(String(cString: strerror(errno)))")
        }
        if getuid() != 0 {
            // The holder's root has no DAC_OVERRIDE: it writes here as "other".
            try fm.setAttributes([.posixPermissions: 0o777], ofItemAtPath: layout.netguardState.path)
            try fm.setAttributes([.posixPermissions: 0o666], ofItemAtPath: fifo.path)
        }
    }

    /// Waits for the holder to write `file` into its report folder and returns its
    /// content; throws when the holder stopped or did not answer within 60 s.
    private func awaitHolder(file: String, what: String, deadline seconds: Double = 60) async throws -> String {
        let url = layout.netguardState.appendingPathComponent(file)
        let deadline = Date().addingTimeInterval(seconds)
        var nextLivenessCheck = Date().addingTimeInterval(1)
        while true {
            if let text = try? String(contentsOf: url, encoding: .utf8) {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if Date() >= nextLivenessCheck {
                nextLivenessCheck = Date().addingTimeInterval(1)
                if await !engine.isRunning(holderName) {
                    let code = await engine.exitState(holderName).map { "exit \($0.exitCode)" } ?? "gone"
                    let logs = (try? await engine.run(["logs", "--tail", "5", holderName])).map { $0.standardOutput + $0.standardError } ?? ""
                    throw SandboxFailure("the network holder stopped (\(code)) while \(what): "
                        + (logs.split(separator: "\n").last.map(String.init) ?? "no output"))
                }
            }
            guard Date() < deadline else { throw SandboxFailure("the network holder did not finish \(what) in \(Int(seconds)) s") }
            try Task.checkCancellation()
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
    }

    /// What the host sees of a container's probes: nothing they sent to a blocked
    /// target reached the canary, and the firewall's self-test (when it ran) passed as planned.
    func hostSideFailures(selfTestOutput output: String?) async -> [String] {
        var failures: [String] = []
        if let canary {
            // The self-test has finished, so anything it sent has landed; the canary's
            // poll thread records it at once. A short grace covers scheduling, counted from
            // the self-test's end (the probe reports it; the same kernel's clock).
            try? await Task.sleep(nanoseconds: Self.canaryGrace(selfTestEnded: output.flatMap(Self.selfTestEnd)))
            let arrived = canary.received
            if !arrived.isEmpty { failures.append("FAIL canary blocked traffic reached the host: \(arrived.joined(separator: "; "))") }
        }
        if let firewallPlan, let output {
            let report = FirewallReport(plan: firewallPlan, applyOutput: applyOutput, selfTestOutput: output)
            var text = report.text
            if let canary { text += "\ncanary on the host (\(canary.address) tcp \(canary.tcpPort), udp \(canary.udpPort)): \(canary.received.isEmpty ? "nothing arrived" : canary.received.joined(separator: "; "))\n" }
            try? Data(text.utf8).write(to: layout.firewallReport)
            if let reason = report.failureReason, failures.isEmpty { failures.append("FAIL firewall \(reason)") }
        }
        return failures
    }

    /// How long to wait for late arrivals at the canary: 20 ms after the self-test ended
    /// (all of it when its end is unknown or implausible).
    static func canaryGrace(selfTestEnded: Date?, now: Date = Date()) -> UInt64 {
        let grace = 0.020
        guard let ended = selfTestEnded, ended <= now.addingTimeInterval(0.001) else { return UInt64(grace * 1e9) }
        return UInt64(max(0, min(grace, grace - now.timeIntervalSince(ended))) * 1e9)
    }

    /// "INFO self-test ended at MICROSECONDS" from probe.sh.
    static func selfTestEnd(_ output: String) -> Date? {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("INFO self-test ended at ") }),
              let micros = Double(line.dropFirst("INFO self-test ended at ".count)), micros > 0 else { return nil }
        return Date(timeIntervalSince1970: micros / 1e6)
    }

    /// The self-test's own blocked attempts are not the agent's: the holder forgets them.
    func forgetRejectedDestinations() async throws {
        let status = try await askHolder("flush", deadline: 30)
        guard status.trimmingCharacters(in: .whitespacesAndNewlines) == "0" else {
            let why = (try? String(contentsOf: layout.netguardState.appendingPathComponent("flush-\(holderRequests).err"), encoding: .utf8)) ?? ""
            throw SandboxFailure("could not reset the firewall's record of rejected destinations: \(why.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Writes "VERB NUMBER" to the holder's request FIFO and returns its answer.
    private func askHolder(_ verb: String, deadline: Double) async throws -> String {
        holderRequests += 1
        let fifo = layout.netguardState.appendingPathComponent(Netguard.requestsFIFO)
        var why = Self.writeLine("\(verb) \(holderRequests)", toFIFO: fifo)
        // Between two requests the holder opens its FIFO again; a writer in that moment
        // finds no reader (ENXIO). Seen on a loaded machine: try again for a few seconds.
        let noReader = String(cString: strerror(ENXIO)), retryUntil = Date().addingTimeInterval(5)
        while why == noReader, Date() < retryUntil {
            try await Task.sleep(nanoseconds: 50_000_000)
            why = Self.writeLine("\(verb) \(holderRequests)", toFIFO: fifo)
        }
        if let why {
            throw SandboxFailure("the network holder is not listening for requests (\(why))")
        }
        return try await awaitHolder(file: "\(verb)-\(holderRequests)", what: "answering \(verb)", deadline: deadline)
    }

    /// Saves what the resolver saw (queries, addresses added to the allow set), the
    /// allow sets as the run left them (when names are allowed) and what the firewall
    /// rejected, by destination, into resolver.log. Best effort: a holder that stopped
    /// leaves the resolver's log and a note.
    func captureReports() async {
        guard plan.firewallEnabled, firewallPlan != nil else { return }
        var text = (try? String(contentsOf: layout.netguardState.appendingPathComponent(Netguard.resolverLog), encoding: .utf8)) ?? ""
        let verb = firewallPlan?.allEntries.contains(where: \.isNamed) == true ? "report-sets" : "report"
        do {
            text += "\n" + (try await askHolder(verb, deadline: 10))
        } catch {
            text += "\n== the firewall's record of rejected destinations could not be read: \(error)\n"
        }
        try? Data(text.utf8).write(to: layout.runDirectory.appendingPathComponent("resolver.log"))
    }

    func tearDown() async {
        // A run that stopped before a container was admitted no longer waits for the rules.
        applying?.cancel()
        canary?.stop()
        canary = nil
    }
}

/// The firewall's record of rejected destinations (rules.v4/v6: `-m recent --rdest`,
/// lists patina_rejected and patina_rejected6), kept by the kernel per network namespace
/// and reported by the network holder.
public enum RejectedDestinations {
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
