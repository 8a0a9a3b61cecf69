import Foundation
import PatinaGit
import PatinaSandbox
import Synchronization

/// One sandbox container's protection checks, run inside that very container before its
/// command: `probe.sh --handshake` writes its report into `directory` (mounted at
/// `containerPath`), then waits on the FIFO `go` for patina's answer.
struct ProbeHandshake: Sendable {
    /// On the host: the run's sandbox folder, one per container role.
    let directory: URL
    /// "agent", "shell", "lifecycle", "check".
    let role: String
    /// Where the container's probe report is kept in the run directory.
    let reportFile: URL
    /// Whether the firewall's self-test runs too (not in the check's container: the agent's
    /// proved the same namespace, and the model endpoint it would reach is closed by then).
    let selfTest: Bool

    static let containerPath = "/patina/handshake"
    var report: URL { directory.appendingPathComponent("report") }
    var answer: URL { directory.appendingPathComponent("go") }
    /// A FIFO: "applied" once the holder applied the firewall (the self-test waits for it).
    var firewall: URL { directory.appendingPathComponent("firewall") }

    /// The names the self-test skipped because they do not resolve (patina's own presets').
    static func unresolvedOptionalNames(_ report: String) -> [String] {
        report.split(separator: "\n").filter { $0.hasPrefix("SKIP resolve ") }
            .compactMap { $0.split(separator: " ").dropFirst(2).first.map(String.init) }
    }
}

/// A flag one task sets and another reads.
final class EndFlag: Sendable {
    private let ended = Mutex(false)
    func set() { ended.withLock { $0 = true } }
    var value: Bool { ended.withLock { $0 } }
}

/// The probe gate: every sandbox container proves the protections before its command
/// starts. Part of the started sandbox: the plan's seccomp facts for the probe, the
/// holder's firewall, canary and record of rejected destinations for the checks.
extension StartedSandbox {
    private var plan: RunPlan { holder.plan }
    private var layout: RunLayout { holder.layout }

    /// Makes `spec` prove the protections before its command runs: `probe.sh` becomes its
    /// first process (same user, capabilities, seccomp profile and network namespace as
    /// the command: the container itself is proven, not a look-alike), with the firewall's
    /// self-test mounted. The command starts only once `admit` says go.
    func gate(_ spec: inout ContainerSpec, role: String) throws -> ProbeHandshake {
        let handshake = ProbeHandshake(
            directory: layout.handshakes.appendingPathComponent(role), role: role,
            reportFile: role == "check" ? layout.checkProbeReport : layout.probeReport,
            selfTest: plan.firewallEnabled && role != "check")
        let fm = FileManager.default
        try? fm.removeItem(at: handshake.directory)
        try fm.createDirectory(at: handshake.directory, withIntermediateDirectories: true)
        let fifos = [handshake.answer] + (handshake.selfTest ? [handshake.firewall] : [])
        for fifo in fifos where mkfifo(fifo.path, 0o600) != 0 {
            throw SandboxFailure("could not create the probe handshake \(fifo.path): \(String(cString: strerror(errno)))")
        }
        if getuid() == 0 {
            for url in [handshake.directory] + fifos { Ownership.change(url, uid: plan.agentUID, gid: plan.agentGID) }
        }
        spec.mounts.append(Mount(source: layout.probeScript.path, target: RunLayout.containerProbe, readOnly: true))
        spec.mounts.append(Mount(source: handshake.directory.path, target: ProbeHandshake.containerPath, readOnly: false))
        if handshake.selfTest {
            // The self-test only: the rest of the firewall's files are the holder's.
            spec.mounts.append(Mount(source: layout.firewallDirectory.appendingPathComponent("selftest.sh").path,
                                     target: Netguard.mountPath + "/selftest.sh", readOnly: true))
        }
        spec.environment["PATINA_EXPECTED_CAPBND"] = Capabilities.mask(plan.capAdd)
        spec.environment["PATINA_SECCOMP_RELAXED"] = protections.seccompRelaxed.joined(separator: " ")
        spec.environment["PATINA_DENIED_SYSCALLS"] = protections.deniedSyscallNumbers
        // The system's bash, not the first one the image's PATH finds (it may name the
        // worktree); in POSIX mode it reads no BASH_ENV (the probe leaves that mode at once).
        spec.command = ["/bin/bash", "--posix", RunLayout.containerProbe, "--handshake", ProbeHandshake.containerPath, "--"]
            + AgentSandbox.toolchainEnvironment(spec.command, plan: plan)
        return handshake
    }

    /// Tells the container's probe that the firewall is applied once the holder applied
    /// it (the container may have started meanwhile: its self-test waits for this), waits
    /// for the probe's report, checks it and what only the host can see (nothing reached
    /// the canary), has the holder forget the self-test's rejected destinations, then lets
    /// the command start. Any failure throws, and the command never starts (the probe exits
    /// 97, or is killed). `containerEnded`: the container's `docker run` has returned.
    /// Returns how long probe.sh itself took, in ms, as it reported.
    @discardableResult
    func admit(_ handshake: ProbeHandshake, containerEnded: @Sendable () -> Bool, progress: Progress) async throws -> Int? {
        var firewallWord: Int32 = -1
        defer { if firewallWord >= 0 { close(firewallWord) } }
        if handshake.selfTest {
            try await holder.firewallApplied()
            // Held open until the report is there: the word waits in the FIFO even when the
            // probe has not opened it yet.
            let told = FIFO.writeLine("applied", toFIFO: handshake.firewall, keepingOpen: true)
            if let why = told.error {
                throw SandboxFailure("could not tell the \(handshake.role) container's checks that the firewall is applied (\(why))")
            }
            firewallWord = told.fd
        }
        return try await awaitReport(handshake, containerEnded: containerEnded, progress: progress)
    }

    private func awaitReport(_ handshake: ProbeHandshake, containerEnded: @Sendable () -> Bool, progress: Progress) async throws -> Int? {
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: handshake.report.path) {
            if containerEnded() {
                throw SandboxFailure("the \(handshake.role) container exited before its protection checks finished")
            }
            guard Date() < deadline else {
                answer(handshake, "stop")
                throw SandboxFailure("the \(handshake.role) container's protection checks did not finish in 120 s")
            }
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
        let output = Self.readReport(handshake.report)
        try? Data(output.utf8).write(to: handshake.reportFile)
        var failures = output.split(separator: "\n").filter { $0.hasPrefix("FAIL") }.map(String.init)
        // The holder forgets the self-test's rejected destinations while the canary's grace
        // runs (a run whose checks fail stops anyway).
        let forget = handshake.selfTest && failures.isEmpty
        async let forgotten: String? = forget ? forgettingRejectedDestinations() : nil
        failures += await holder.hostSideFailures(selfTestOutput: handshake.selfTest ? output : nil)
        if let failure = await forgotten, failures.isEmpty { failures.append("FAIL \(failure)") }
        guard failures.isEmpty, output.contains("PASS") else {
            answer(handshake, "stop")
            let first = failures.first ?? "FAIL no probe passed"
            let what = handshake.role == "agent" ? "the agent" : "the \(handshake.role) command"
            throw SandboxFailure("a protection check failed before \(what) started: \(first.dropFirst(5))")
        }
        guard answer(handshake, "go") else {
            throw SandboxFailure("the \(handshake.role) container stopped waiting for its go-ahead")
        }
        let lines = output.split(separator: "\n")
        for name in ProbeHandshake.unresolvedOptionalNames(output) {
            progress.note("\(name) does not resolve: a preset patina added for the toolchains names it; the run goes on without it (--no-auto-presets leaves such presets out)")
        }
        let passed = lines.filter { $0.hasPrefix("PASS") }.count
        progress.step("probes passed in the \(handshake.role) container (\(passed) checks: seccomp, no-new-privs, no capabilities"
            + (handshake.selfTest ? ", firewall self-test)" : ")"))
        return lines.last { $0.hasPrefix("INFO probes took ") }.flatMap { Int($0.split(separator: " ")[3]) }
    }

    /// `forgetRejectedDestinations`, its error as text.
    private func forgettingRejectedDestinations() async -> String? {
        do {
            try await holder.forgetRejectedDestinations()
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Writes `word` to the waiting probe. The probe holds the FIFO open, so this never
    /// blocks; false when nothing waits any more (the container is gone).
    @discardableResult
    private func answer(_ handshake: ProbeHandshake, _ word: String) -> Bool {
        FIFO.writeLine(word, toFIFO: handshake.answer) == nil
    }

    /// The report as the probe left it: a regular file (never a link), at most 1 MiB.
    private static func readReport(_ url: URL) -> String {
        let fd = open(url.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return "FAIL probe-report unreadable: \(String(cString: strerror(errno)))\n" }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return "FAIL probe-report not a regular file\n" }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while data.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// The FIFOs of the probe handshake and of the network holder's requests.
enum FIFO {
    /// Writes `line` and a newline to the FIFO at `url` without blocking: only while a
    /// reader holds it open, never through a link, never into anything but a FIFO.
    /// Returns why it could not, or nil.
    static func writeLine(_ line: String, toFIFO url: URL) -> String? {
        writeLine(line, toFIFO: url, keepingOpen: false).error
    }

    /// `keepingOpen`: opened read-write (so without a reader yet) and the descriptor
    /// returned, to close once the reader has read; otherwise closed at once.
    static func writeLine(_ line: String, toFIFO url: URL, keepingOpen: Bool) -> (fd: Int32, error: String?) {
        let fd = open(url.path, (keepingOpen ? O_RDWR : O_WRONLY) | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return (-1, String(cString: strerror(errno))) }
        var info = stat()
        let bytes = Array("\(line)\n".utf8)
        let error: String? = if fstat(fd, &info) != 0 || (info.st_mode & S_IFMT) != S_IFIFO {
            "not a FIFO"
        } else if bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) != bytes.count {
            "a short write"
        } else {
            nil
        }
        guard keepingOpen, error == nil else {
            close(fd)
            return (-1, error)
        }
        return (fd, nil)
    }
}
