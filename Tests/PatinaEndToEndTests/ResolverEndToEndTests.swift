import Foundation
import PatinaTestSupport
import Testing

/// The sandbox's resolver: only allow-listed names are looked up upstream, and
/// the addresses they resolve to enter the allow set as they are resolved, so a
/// CDN that rotates its addresses keeps working through a long run. The upstream
/// is a DNS server the test starts on the docker bridge gateway; the names'
/// addresses are only resolved, never contacted.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(5)))
struct ResolverEndToEndTests {
    /// The test's own DNS server on the bridge gateway (port 0: any free port).
    struct DNSServer {
        let process: Process
        let directory: URL
        let port: Int
        var record: URL { directory.appendingPathComponent("queries.jsonl") }

        init(host: String, port requested: Int, answers: String) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("dns-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let portFile = directory.appendingPathComponent("port")
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", TestEnvironment.fixtures.appendingPathComponent("dns_server.py").path,
                                 "--host", host, "--port", String(requested), "--answers", answers,
                                 "--record", directory.appendingPathComponent("queries.jsonl").path, "--port-file", portFile.path]
            try process.run()
            var port = 0
            for _ in 0..<100 where port == 0 {
                port = Int((try? String(contentsOf: portFile, encoding: .utf8)) ?? "") ?? 0
                if port == 0 { Thread.sleep(forTimeInterval: 0.05) }
            }
            self.port = port
        }

        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
        }

        var queried: Set<String> {
            Set(((try? String(contentsOf: record, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["name"] as? String
            })
        }
    }

    @Test func addressesOfAllowedNamesEnterTheAllowSetAsTheyAreResolved() throws {
        let gateway = FakeModel.bridgeGateway()
        let dns = try DNSServer(host: gateway, port: 0, answers: "cdn.patina-test.example=93.184.215.14,93.184.215.15")
        defer { dns.stop() }
        try #require(dns.port > 0)
        let port = dns.port

        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/config.json": #"{"dns": ["\#(gateway):\#(port)"], "allow": ["cdn.patina-test.example:443"]}"#,
        ])
        let model = try FakeModel(script: [
            .bash("""
                for i in 1 2 3; do getent ahostsv4 cdn.patina-test.example | head -1; done; \
                getent hosts other.patina-test.example; echo "OTHER:$?"; \
                getent hosts example.org; echo "EXAMPLE:$?"
                """),
            .text("Resolved."),
        ])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("resolve names"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")

        // The agent saw the rotating addresses; names not allowed do not resolve.
        let results = model.toolResults().joined(separator: "\n")
        #expect(results.contains("93.184.215.14") && results.contains("93.184.215.15"), "\(results)")
        #expect(results.contains("OTHER:2"), "\(results)")
        #expect(results.contains("EXAMPLE:2"), "\(results)")

        // Only the allowed name ever reached the upstream server.
        #expect(dns.queried == ["cdn.patina-test.example"], "upstream saw \(dns.queried)")

        // Both addresses entered the allow set, for port 443 only.
        let resolver = run.file("resolver.log") ?? ""
        let sets = resolver.components(separatedBy: "== allow sets at the end of the run").last ?? ""
        #expect(sets.contains("93.184.215.14") && sets.contains("93.184.215.15"), "\(resolver.suffix(2000))")
        #expect(try PatinaRunner.leftoverContainers(runID: run.id).isEmpty)
    }

    @Test func aSystemdResolvedHostUsesResolvedsOwnUpstreams() throws {
        // The host's resolv.conf names only systemd-resolved's stub; its own list of
        // upstreams (beside it) names the test's DNS server on port 53 of the gateway.
        let gateway = FakeModel.bridgeGateway()
        let dns = try DNSServer(host: gateway, port: 53, answers: "pkg.patina-test.example=93.184.215.20")
        defer { dns.stop() }
        try #require(dns.port == 53)
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/config.json": #"{"allow": ["pkg.patina-test.example:443"]}"#,
        ])
        try repo.write("../resolv.conf", "# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\n")
        try repo.write("../resolved.conf", "nameserver \(gateway)\n")
        let model = try FakeModel(script: [
            .bash("getent ahostsv4 pkg.patina-test.example | head -1; echo \"RESOLVED:$?\""),
            .text("Resolved."),
        ])
        var patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        patina.extraEnvironment["PATINA_RESOLV_CONF"] = repo.root.appendingPathComponent("resolv.conf").path
        patina.extraEnvironment["PATINA_RESOLVED_CONF"] = repo.root.appendingPathComponent("resolved.conf").path
        let run = try FinishedRun(patina.yolo("resolve a name"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        #expect(model.toolResults().joined().contains("93.184.215.20"), "\(model.toolResults())")
        #expect(dns.queried == ["pkg.patina-test.example"])

        // Neither file names a reachable server: one line naming the `dns` setting.
        try repo.write("../resolved.conf", "nameserver 127.0.0.1\n")
        let refused = try patina.yolo("resolve a name")
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("\"dns\"") && refused.stderr.contains("resolved.conf"), "\(refused.stderr)")
        #expect(try repo.git("branch", "--list", "patina/*").split(separator: "\n").count == 1)
    }
}
