import Foundation
import PatinaTestSupport
import Testing

/// The model proxy against the real agent turned hostile, in a batch of two: from inside
/// its sandbox it sends a chunk size that would overflow, floods the proxy with strangers'
/// 64 MB bodies, holds half-sent requests, and asks the API for MCP servers, web fetch
/// and URL sources. patina must live, stay small, and finish the other run normally; the
/// fake upstream must receive none of the server-side features.
///
/// The crowd (60 half-sent requests) comes in over 3 s, as on a loaded machine, and is held
/// until 20 more legitimate clients, one after another, have their answers: they come once
/// every member is connected, so the proxy has taken (or refused) them all first, and each
/// must hear its refusal (503) within 10 s.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct ProxyAttackEndToEndTests {
    /// Bash run by the agent: every attack through /dev/tcp to its own proxy
    /// (ANTHROPIC_BASE_URL), with or without its placeholder credential.
    static let attack = #"""
        u=${ANTHROPIC_BASE_URL#http://}; h=${u%:*}; p=${u##*:}; k=$ANTHROPIC_API_KEY
        req() { printf 'POST /v1/messages HTTP/1.1\r\nHost: x\r\n%s\r\n' "$1"; }
        echo "OVERFLOW:$( ( exec 3<>/dev/tcp/$h/$p && { req "x-api-key: $k"$'\r\nTransfer-Encoding: chunked\r\n' >&3; printf '7fffffffffffffff\r\nabc\r\n' >&3; timeout 10 head -1 <&3 | tr -d '\r'; } ) 2>&1 )"
        for i in $(seq 30); do ( exec 4<>/dev/tcp/$h/$p; req $'Content-Length: 67108864\r\n' >&4; head -c 8388608 /dev/zero >&4 2>/dev/null; timeout 10 head -1 <&4 ) >/dev/null 2>&1 & done; wait
        d=$(mktemp -d); for i in $(seq 60); do ( sleep "$((i % 30 / 10)).$((i % 10))"; exec 5<>/dev/tcp/$h/$p && { : > "$d/$i"; printf 'POST /v1/mess' >&5; exec timeout 60 cat <&5; } ) >/dev/null 2>&1 & done
        for t in $(seq 600); do set -- "$d"/*; [ $# -ge 60 ] && break; sleep 0.1; done; echo "CROWD:$#"
        for i in $(seq 20); do echo "CROWDED:$( ( exec 6<>/dev/tcp/$h/$p && { req "x-api-key: $k"$'\r\nContent-Length: 0\r\n' >&6; timeout 10 head -1 <&6 | tr -d '\r'; } ) 2>&1 )"; done
        kill $(jobs -p) 2>/dev/null; wait; sleep 1
        send() { ( exec 7<>/dev/tcp/$h/$p && { req "x-api-key: $k"$'\r\nContent-Type: application/json\r\nConnection: close\r\n'"$2"$'Content-Length: '"${#1}"$'\r\n' >&7; printf '%s' "$1" >&7; timeout 10 head -1 <&7 | tr -d '\r'; } ) 2>&1; }
        m='"model":"claude-sonnet-4-5","max_tokens":10'
        echo "MCP:$(send "{$m,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"mcp_servers\":[{\"type\":\"url\",\"url\":\"https://attacker.invalid/mcp\",\"name\":\"x\"}]}")"
        echo "FETCH:$(send "{$m,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"web_fetch_20250910\",\"name\":\"web_fetch\"}]}")"
        echo "URL:$(send "{$m,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://attacker.invalid/x\"}}]}]}")"
        echo "BETA:$(send "{$m,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" $'anthropic-beta: mcp-client-2025-04-04\r\n')"
        echo ATTACK-DONE
        """#

    /// Resident memory of `pid` in MB, nil once it is gone.
    static func residentMB(_ pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb / 1024
    }

    @Test func aHostileAgentNeitherCrashesNorBloatsPatinaNorReachesOutThroughTheAPI() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(byTask: [
            (match: "attacker", turns: [.bash(Self.attack),
                                        .bash("echo a > a.txt && git add a.txt && git commit -qm attacker"), .text("attacked")]),
            (match: "honest", turns: [.bash("echo h > h.txt && git add h.txt && git commit -qm honest && sleep 2"), .text("honest done")]),
        ])
        try repo.write("../tasks.jsonl", """
            {"task": "task attacker", "name": "attacker"}
            {"task": "task honest", "name": "honest"}

            """)
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let process = try patina.start(["batch", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                        "--jobs", "2", repo.root.appendingPathComponent("tasks.jsonl").path])
        var peak = 0.0
        while process.isRunning {
            peak = max(peak, Self.residentMB(process.processIdentifier) ?? 0)
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(process.terminationStatus == 0, "patina ended with \(process.terminationStatus) (132 would be the overflow trap)")
        // 30 strangers' 64 MB bodies are never read: patina stays far below even one body per connection.
        #expect(peak > 0 && peak < 400, "patina's peak resident memory: \(peak) MB")

        let results = model.allToolResults().joined(separator: "\n")
        #expect(results.contains("ATTACK-DONE"), "\(results)")
        #expect(results.contains("CROWD:60"), "\(results)")
        // Every legitimate client past the crowd has its answer (a reset must not overtake it).
        let crowded = results.split(separator: "\n").filter { $0.hasPrefix("CROWDED:") }
        #expect(crowded.count == 20 && crowded.allSatisfy { $0.contains(" 503 ") }, "\(crowded)")
        // Each step's line, whatever happened to the others (a failed connection prints its reason there).
        for (label, statuses) in [("OVERFLOW", ["400", "413"]), ("CROWDED", ["503"]), ("MCP", ["403"]), ("FETCH", ["403"]), ("URL", ["403"]),
                                  ("BETA", ["403"])] {
            let line = results.split(separator: "\n").first { $0.hasPrefix(label + ":") } ?? ""
            #expect(statuses.contains { line.contains(" \($0) ") }, "\(label): \(line)")
        }
        print("ProxyAttackEndToEndTests: patina's peak resident memory \(peak) MB")
        // Nothing of the server-side features reached the API.
        for request in model.requests() {
            #expect(!((request["body_keys"] as? [String]) ?? []).contains("mcp_servers"), "\(request)")
            #expect(!((request["tool_types"] as? [String]) ?? []).contains { $0.hasPrefix("web_fetch") }, "\(request)")
            #expect(!((request["anthropic_beta"] as? String) ?? "").contains("mcp-client"), "\(request)")
        }

        // Both runs collected; the honest one never noticed.
        let store = try patina.run(["runs", "--json"])
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(store.stdout.utf8)) as? [[String: Any]])
        #expect(runs.count == 2)
        for run in runs {
            let name = run["name"] as? String ?? ""
            #expect(run["status"] as? String == "succeeded", "\(run)")
            let file = name == "honest" ? "h.txt" : "a.txt"
            #expect(try repo.git("show", "\(run["branch"] as? String ?? ""):\(file)") == String(file.prefix(1)))
            if name == "attacker" {
                let refused = run["api_refused"] as? [String: Int] ?? [:]
                #expect(refused["mcp"] == 2 && refused["web_fetch"] == 1 && refused["url_sources"] == 1, "\(run)")
                #expect((run["proxy_refused_clients"] as? Int ?? 0) >= 2, "\(run)")
            } else {
                #expect(run["api_refused"] == nil && run["proxy_refused_clients"] == nil, "\(run)")
            }
        }
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }
}
