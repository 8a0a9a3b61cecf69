import Foundation
import PatinaSandbox
import PatinaTemplates
import Synchronization

/// The network holder: patina's own container that owns the sandbox's network namespace
/// (pod pattern) and applies the firewall (`ProtectionPlan`) from outside the agent's
/// reach. It starts while the run is planned, gets its rules through a FIFO handshake,
/// answers the probes' requests (forget the self-test's rejected destinations, report
/// what was rejected) and runs the canary the self-test's blocked traffic must never reach.
final class NetworkHolder: Sendable {
    let plan: RunPlan
    let layout: RunLayout
    let engine: DockerEngine

    /// What changes while the holder runs; one task at a time, under the lock.
    private struct State {
        var canary: Canary?
        var firewallPlan: FirewallPlan?
        var applyOutput = ""
        var requests = 0
        /// When the holder's folders, request FIFO and script were made (`prepareHolder`); nil before.
        var preparedAt: Date?
        /// Set once the network holder runs (started early, while planning, or by `apply`).
        var started = false
        /// The holder applying the firewall, handed over by `apply`.
        var applying: Task<Void, Error>?
    }
    private let state = Mutex(State())

    /// How long an early holder waits for its rules (holder.sh gives up after 600 s); one
    /// older than this (a long image build) is replaced rather than handed rules it may miss.
    /// PATINA_HOLDER_PATIENCE (seconds) can only shorten it: for tests of the replacement.
    static var holderPatience: TimeInterval {
        min(480, ProcessInfo.processInfo.environment["PATINA_HOLDER_PATIENCE"].flatMap(Double.init) ?? 480)
    }

    init(plan: RunPlan, layout: RunLayout, engine: DockerEngine) {
        self.plan = plan
        self.layout = layout
        self.engine = engine
    }

    var holderName: String { Self.name(runID: plan.id) }
    static func name(runID: String) -> String { "patina-\(runID)-net" }
    var probeTemplates: TemplateSet { ProtectionPlan.probeTemplates(plan) }
    /// The network the sandbox's containers join: the holder's namespace (none without a firewall).
    var agentNetwork: String? { plan.firewallEnabled ? "container:\(holderName)" : nil }

    /// Starts the network holder, which owns the sandbox's network namespace: it needs
    /// only the netguard image and its own script to start, so it starts while the run is
    /// still planned; it then waits for the firewall's rules (`apply`) and applies
    /// them before any container's command runs in its namespace.
    func startHolder(netguard: String, labels: [String: String]) async throws {
        if state.withLock({ $0.preparedAt == nil }) { try prepareHolder() }

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
        state.withLock { $0.started = true }
    }

    /// The holder's report folder with its request FIFO, and its script: what it needs to start.
    func prepareHolder() throws {
        try prepareNetguardState()
        try FileManager.default.createDirectory(at: layout.firewallDirectory, withIntermediateDirectories: true)
        let script = layout.firewallDirectory.appendingPathComponent("holder.sh")
        try Data(try probeTemplates.render("firewall/holder.sh.mustache", [:]).utf8).write(to: script, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        state.withLock { $0.preparedAt = Date() }
    }

    /// The firewall's rules for the network holder (started now unless it was early).
    /// Returns once the holder runs with the rules handed over and has closed its namespace
    /// (every chain's policy DROP: nothing passes until the rules are in): sandbox
    /// containers may start in it while it applies them, their first process being
    /// patina's probe, which waits for patina's word that the rules are in
    /// (`firewallApplied`) before the firewall's self-test; their command starts only after
    /// (`gate`/`admit`).
    /// `agentEndpoints`: the run's model proxy, the agent's only model endpoint.
    /// `earlyHolder`: the holder's early start, if any, to wait for once the rules are handed over.
    func apply(
        _ protections: ProtectionPlan, agentEndpoints: [AllowEntry], netguard: String?, labels: [String: String], gateway: String,
        progress: Progress, steps: StepLog, earlyHolder: () async -> Void = {}
    ) async throws {
        guard plan.firewallEnabled else { return }
        guard let netguard else { throw SandboxFailure("the firewall image is missing") }
        let canary = try Canary(address: gateway)
        let selfTest = try SelfTestTargets.canary(address: gateway, tcpPort: canary.tcpPort, udpPort: canary.udpPort, dnsPort: canary.udpPort)
        let firewall: FirewallPlan
        do {
            firewall = try protections.firewallPlan(gateway: gateway, selfTest: selfTest, agentEndpoints: agentEndpoints)
        } catch {
            canary.stop()
            throw error
        }
        let preparedAt = state.withLock { state in
            state.canary = canary
            state.firewallPlan = firewall
            return state.preparedAt
        }
        if let preparedAt, Date().timeIntervalSince(preparedAt) > Self.holderPatience {
            await earlyHolder()
            guard await engine.remove([holderName]) else { throw SandboxFailure("could not replace the network holder \(holderName)") }
            state.withLock {
                $0.started = false
                $0.preparedAt = nil
            }
        }
        if state.withLock({ $0.preparedAt == nil }) { try prepareHolder() }
        try firewall.render(templates: plan.templates, mechanism: probeTemplates).write(to: layout.firewallDirectory)

        // Held open until the holder answered: the line waits in the FIFO even when the
        // holder has not opened it yet.
        let handedOver = FIFO.writeLine("apply 0", toFIFO: layout.netguardState.appendingPathComponent(Netguard.requestsFIFO), keepingOpen: true)
        if let why = handedOver.error { throw SandboxFailure("could not hand the firewall to the network holder: \(why)") }
        let request = handedOver.fd
        do {
            // The rules wait in the FIFO while the holder starts (usually it is still starting).
            await earlyHolder()
            if !state.withLock({ $0.started }) { try await startHolder(netguard: netguard, labels: labels) }
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
        let applying = Task {
            defer { close(request) }
            try await self.awaitApplied(firewall, progress: progress, steps: steps)
        }
        state.withLock { $0.applying = applying }
    }

    /// Returns once the holder applied the firewall (at once without one); throws when it
    /// could not. A sandbox container's probe learns it from `admit` before its self-test.
    func firewallApplied() async throws {
        try await state.withLock { $0.applying }?.value
    }

    private func awaitApplied(_ firewall: FirewallPlan, progress: Progress, steps: StepLog) async throws {
        let status = try await steps.time("firewall", detail: "applied in the network holder") {
            try await awaitHolder(file: "applied", what: "applying the firewall")
        }
        let applyOutput = (try? String(contentsOf: layout.netguardState.appendingPathComponent("apply.out"), encoding: .utf8)) ?? ""
        state.withLock { $0.applyOutput = applyOutput }
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
        let (canary, firewallPlan, applyOutput) = state.withLock { ($0.canary, $0.firewallPlan, $0.applyOutput) }
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
            let request = state.withLock { $0.requests }
            let why = (try? String(contentsOf: layout.netguardState.appendingPathComponent("flush-\(request).err"), encoding: .utf8)) ?? ""
            throw SandboxFailure("could not reset the firewall's record of rejected destinations: \(why.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Writes "VERB NUMBER" to the holder's request FIFO and returns its answer.
    private func askHolder(_ verb: String, deadline: Double) async throws -> String {
        let request = state.withLock { state in
            state.requests += 1
            return state.requests
        }
        let fifo = layout.netguardState.appendingPathComponent(Netguard.requestsFIFO)
        var why = FIFO.writeLine("\(verb) \(request)", toFIFO: fifo)
        // Between two requests the holder opens its FIFO again; a writer in that moment
        // finds no reader (ENXIO). Seen on a loaded machine: try again for a few seconds.
        let noReader = String(cString: strerror(ENXIO)), retryUntil = Date().addingTimeInterval(5)
        while why == noReader, Date() < retryUntil {
            try await Task.sleep(nanoseconds: 50_000_000)
            why = FIFO.writeLine("\(verb) \(request)", toFIFO: fifo)
        }
        if let why {
            throw SandboxFailure("the network holder is not listening for requests (\(why))")
        }
        return try await awaitHolder(file: "\(verb)-\(request)", what: "answering \(verb)", deadline: deadline)
    }

    /// Saves what the resolver saw (queries, addresses added to the allow set), the
    /// allow sets as the run left them (when names are allowed) and what the firewall
    /// rejected, by destination, into resolver.log. Best effort: a holder that stopped
    /// leaves the resolver's log and a note.
    func captureReports() async {
        let firewallPlan = state.withLock { $0.firewallPlan }
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
        let (applying, canary) = state.withLock { state in
            defer { state.canary = nil }
            return (state.applying, state.canary)
        }
        applying?.cancel()
        canary?.stop()
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
