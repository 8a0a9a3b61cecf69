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
    @Test func addressesOfAllowedNamesEnterTheAllowSetAsTheyAreResolved() throws {
        let gateway = FakeModel.bridgeGateway()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dns-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let record = dir.appendingPathComponent("queries.jsonl")
        let portFile = dir.appendingPathComponent("port")
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", TestEnvironment.fixtures.appendingPathComponent("dns_server.py").path,
                            "--host", gateway, "--port", "0",
                            "--answers", "cdn.patina-test.example=93.184.215.14,93.184.215.15",
                            "--record", record.path, "--port-file", portFile.path]
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        var port = 0
        for _ in 0..<100 where port == 0 {
            port = Int((try? String(contentsOf: portFile, encoding: .utf8)) ?? "") ?? 0
            if port == 0 { Thread.sleep(forTimeInterval: 0.05) }
        }
        try #require(port > 0)

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
        let queried = Set((try String(contentsOf: record, encoding: .utf8)).split(separator: "\n").compactMap {
            ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["name"] as? String
        })
        #expect(queried == ["cdn.patina-test.example"], "upstream saw \(queried)")

        // Both addresses entered the allow set, for port 443 only.
        let resolver = run.file("resolver.log") ?? ""
        let sets = resolver.components(separatedBy: "== allow sets at the end of the run").last ?? ""
        #expect(sets.contains("93.184.215.14") && sets.contains("93.184.215.15"), "\(resolver.suffix(2000))")
        #expect(try PatinaRunner.leftoverContainers(runID: run.id).isEmpty)
    }
}
