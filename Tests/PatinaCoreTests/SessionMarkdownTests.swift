import Foundation
import PatinaGit
import Testing
@testable import PatinaCore
import PatinaTestSupport

@Suite struct SessionMarkdownTests {
    // MARK: Fixtures

    static let started = try! Date("2026-12-01T03:32:02Z", strategy: .iso8601)

    static func record(status: RunStatus = .succeeded, check: Bool? = nil, task: String = "add a greeting\n\nSay hello in greet.txt.") -> RunRecord {
        var r = RunRecord(
            id: "20261201-033202-add-a-greeting-ab12", task: task, status: status, reason: nil,
            branch: "patina/20261201-033202-add-a-greeting-ab12",
            baseCommit: String(repeating: "a", count: 40), headCommit: String(repeating: "b", count: 40),
            repository: "/r", worktree: "/w", runDir: "/d", sessionLog: "/d/session.jsonl", transcript: nil,
            started: started, finished: started.addingTimeInterval(75), durationS: 75, costUSD: 0.0421, numTurns: 3,
            tokens: TokenCounts(), model: "claude-sonnet-4-5", maxTurns: nil, timeoutS: 600, image: nil,
            baseImage: "debian:bookworm-slim", exitCode: 0, claudeSessionID: nil)
        r.filesChanged = [FileChangeRecord(path: "greet.txt", additions: 1, deletions: 0, status: "added")]
        r.commits = 1
        r.allowList = ["api.anthropic.com:443"]
        r.steps = [StepTiming(name: "image", seconds: 60), StepTiming(name: "agent", seconds: 900)]
        if let check {
            r.check = CheckResult(command: "test -f greet.txt", exitCode: check ? 0 : 1, passed: check, durationS: 0.4, outputTail: check ? "" : "no greet.txt\n")
        }
        return r
    }

    static let commit = CommitInfo(id: ObjectID(hex: String(repeating: "b", count: 40))!, summary: "Add greet.txt",
                                   authorName: "agent", authorEmail: "agent@patina.invalid", date: started)

    static func json(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    static func assistant(_ blocks: [[String: Any]], at time: String? = nil, parent: String? = nil) -> String {
        var line: [String: Any] = ["type": "assistant", "message": ["id": "msg_\(UUID().uuidString)", "content": blocks]]
        if let time { line["timestamp"] = time }
        if let parent { line["parent_tool_use_id"] = parent }
        return json(line)
    }

    static func say(_ text: String, at time: String? = nil) -> String {
        assistant([["type": "text", "text": text]], at: time)
    }

    static func call(_ id: String, _ name: String, _ input: [String: Any]) -> [String: Any] {
        ["type": "tool_use", "id": id, "name": name, "input": input]
    }

    static func results(_ results: [(id: String, text: String, error: Bool)], at time: String? = nil) -> String {
        var line: [String: Any] = ["type": "user", "message": ["role": "user", "content": results.map {
            ["type": "tool_result", "tool_use_id": $0.id, "content": $0.text, "is_error": $0.error] as [String: Any]
        }]]
        if let time { line["timestamp"] = time }
        return json(line)
    }

    static func result(_ text: String = "Added greet.txt.", subtype: String = "success", error: Bool = false) -> String {
        json(["type": "result", "subtype": subtype, "is_error": error, "num_turns": 3, "total_cost_usd": 0.0421,
              "duration_ms": 41000, "result": text, "usage": ["input_tokens": 10, "output_tokens": 5]])
    }

    static func render(_ record: RunRecord, _ lines: [String], commits: [CommitInfo]? = [commit], commitsNote: String? = nil,
                       firewall: FirewallActivity? = FirewallActivity(countersRecorded: true), probes: String? = "PASS seccomp mode 2 (filter)\n",
                       secrets: [String] = []) -> String {
        SessionMarkdown.render(.init(record: record, sessionLines: lines, commits: commits, commitsNote: commitsNote,
                                     firewall: firewall, probes: probes, secrets: secrets))
    }

    static func lines(_ text: String) -> [String] { text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }

    /// The `#` and `##` headings of a document.
    static func sections(_ text: String) -> [String] {
        lines(text).filter { $0.hasPrefix("# ") || $0.hasPrefix("## ") }.map { $0.hasPrefix("# ") ? "#" : $0 }
    }

    static let skeleton = ["#", "## Goals", "## Activity Log", "## Git Activity", "## Session Classification", "## Outcome"]

    /// Every markdown metacharacter outside code spans is backslash-escaped, and every code
    /// span is closed by a fence of its own length: the text can make no markup.
    static func inert(_ text: some StringProtocol) -> Bool {
        let chars = Array(text.unicodeScalars)  // as a markdown parser sees them
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\\" {
                i += 2
                continue
            }
            if c == "`" {
                var fence = 0
                while i < chars.count, chars[i] == "`" { fence += 1; i += 1 }
                var closed = false
                while i < chars.count, !closed {
                    guard chars[i] == "`" else { i += 1; continue }
                    var run = 0
                    while i < chars.count, chars[i] == "`" { run += 1; i += 1 }
                    closed = run == fence
                }
                if !closed { return false }
                continue
            }
            if "*_[]<>|~&!#`".unicodeScalars.contains(c) { return false }
            i += 1
        }
        return true
    }

    /// What follows patina's own prefix on each line that carries data: an entry's heading
    /// after its time, a `**Key**:` label, a list marker, the outcome arrow.
    static func dataParts(_ text: String) -> [Substring] {
        lines(text).compactMap { line -> Substring? in
            if line.hasPrefix("### ") {
                guard let dash = line.range(of: " - ") else { return nil }
                var rest = line[dash.upperBound...]
                for label in ["≈ ", "Agent: ", "Subagent: "] where rest.hasPrefix(label) { rest = rest.dropFirst(label.count) }
                return rest
            }
            if let label = line.firstMatch(of: #/^(- )?\*\*[^*]+\*\*( \(\d+\))?: /#) { return line[label.range.upperBound...] }
            for prefix in ["→ **error**: ", "→ ", "- [ ] ", "- [x] ", "# Session: ", "  - ", "- "] where line.hasPrefix(prefix) {
                return line.dropFirst(prefix.count)
            }
            return nil
        }
    }

    // MARK: Structure

    @Test func goldenStructure() {
        let session = [
            #"{"type":"system","subtype":"init","session_id":"s1","model":"claude-sonnet-4-5","tools":["Bash"]}"#,
            Self.say("I'll look around first.", at: "2026-12-01T03:33:10.100Z"),
            Self.assistant([Self.call("t1", "Bash", ["command": "ls -la"])], at: "2026-12-01T03:33:11Z"),
            Self.results([("t1", "total 8\ndrwxr-xr-x 2 agent agent 4096 .\n-rw-r--r-- 1 agent agent 0 README.md", false)], at: "2026-12-01T03:33:12Z"),
            // Two calls in one message, answered together (in the other order).
            Self.assistant([Self.call("t2", "Write", ["file_path": "/workspace/greet.txt", "content": "hello\n"]),
                            Self.call("t3", "Grep", ["pattern": "hello", "path": "/nowhere"])], at: "2026-12-01T03:35:00Z"),
            Self.results([("t3", "Path does not exist: /nowhere", true), ("t2", "File created successfully", false)], at: "2026-12-01T03:35:01Z"),
            Self.say("Added greet.txt and committed it.", at: "2026-12-01T03:36:00Z"),
            Self.result(),
        ]
        let text = Self.render(Self.record(), session)
        let lines = Self.lines(text)
        #expect(Self.sections(text) == Self.skeleton)
        #expect(lines[0] == "# Session: add a greeting")
        #expect(Array(lines[1...7]) == [
            "",
            "**ID**: 20261201-033202-add-a-greeting-ab12",
            "**Started**: 2026-12-01 03:32 UTC",
            "**LLM**: claude (claude-sonnet-4-5)",
            "**Git Branch**: patina/20261201-033202-add-a-greeting-ab12",
            "**Session Tag**: session-20261201-033202-add-a-greeting-ab12-start .. session-20261201-033202-add-a-greeting-ab12-end",
            "**Starting Commit**: aaaaaaa",
        ])
        // One entry per message (2), per tool call (3) and for the result, in order, inside the Activity Log.
        let entries = lines.filter { $0.hasPrefix("### ") }
        #expect(entries == [
            "### 03:33 - Agent: I'll look around first.",
            "### 03:33 - Bash `ls -la`",
            "### 03:35 - Write `/workspace/greet.txt`",
            "### 03:35 - Grep `/nowhere`",
            "### 03:36 - Agent: Added greet.txt and committed it.",
            "### 03:48 - ≈ Result: success · 3 turns · $0.0421 · 41.0s",
        ])
        let log = lines.firstIndex(of: "## Activity Log")!, git = lines.firstIndex(of: "## Git Activity")!
        #expect(lines.indices.filter { lines[$0].hasPrefix("### ") }.allSatisfy { $0 > log && $0 < git })
        // Each call's outcome, matched by id; errors visible.
        #expect(text.contains("### 03:33 - Bash `ls -la`\n\n→ total 8 (+2 more lines)\n"))
        #expect(text.contains("### 03:35 - Write `/workspace/greet.txt`\n\n→ File created successfully\n"))
        #expect(text.contains("### 03:35 - Grep `/nowhere`\n\n→ **error**: Path does not exist: /nowhere\n"))
        #expect(text.contains("Result: success · 3 turns · $0.0421 · 41.0s\n\n→ Added greet.txt.\n"))
        #expect(lines.contains("- [x] add a greeting ⏎ Say hello in greet.txt."))
        #expect(lines.contains("- `bbbbbbb` Add greet.txt"))
        #expect(lines.contains("- `greet.txt` — added, +1 −0"))
        #expect(lines.contains("- **Work type**: docs"))
        #expect(lines.contains("- **Tag range**: `session-20261201-033202-add-a-greeting-ab12-start..session-20261201-033202-add-a-greeting-ab12-end`"))
        #expect(lines.contains("- **Status**: succeeded"))
        #expect(lines.contains("- **Firewall**: nothing blocked"))
        #expect(lines.contains("- **Probe checks passed** (1): seccomp"))
    }

    @Test(arguments: [
        (RunStatus.succeeded, Bool?.none, true), (.succeeded, true, true), (.succeeded, false, false),
        (.failed, nil, false), (.failed, true, false), (.timedOut, nil, false), (.interrupted, nil, false), (.error, nil, false),
    ])
    func goalTickedOnlyWhenSucceededAndCheckDidNotFail(status: RunStatus, check: Bool?, ticked: Bool) {
        let text = Self.render(Self.record(status: status, check: check), [Self.result()])
        let goals = Self.lines(text).filter { $0.hasPrefix("- [") }
        #expect(goals == [(ticked ? "- [x] " : "- [ ] ") + "add a greeting ⏎ Say hello in greet.txt."])
        if check == false { #expect(text.contains("- **Check**: `test -f greet.txt` failed (exit 1, 0.4s); last output: no greet.txt")) }
    }

    @Test func timesComeFromTheLinesOrAreMarked() {
        // No timestamp before the first one: the agent's start (started + 60s image step);
        // the result without one: the end of the agent step (+900s).
        let text = Self.render(Self.record(), [
            Self.say("starting"),
            Self.assistant([Self.call("t1", "Bash", ["command": "make"])], at: "2026-12-01T03:40:10.5Z"),
            Self.results([("t1", "ok", false)]),
            Self.say("later, no timestamp"),
            Self.result(),
        ])
        #expect(Self.lines(text).filter { $0.hasPrefix("### ") } == [
            "### 03:33 - ≈ Agent: starting",
            "### 03:40 - Bash `make`",
            "### 03:40 - ≈ Agent: later, no timestamp",
            "### 03:48 - ≈ Result: success · 3 turns · $0.0421 · 41.0s",
        ])
        #expect(text.contains("≈ marks an entry whose line had none"))
    }

    @Test func emptySessionStillMakesTheWholeDocument() {
        var record = Self.record(status: .error)
        record.reason = "the image failed to build"
        record.headCommit = nil
        record.filesChanged = []
        record.commits = nil
        record.numTurns = nil
        record.costUSD = nil
        let text = Self.render(record, [], commits: [], commitsNote: "no head was collected", firewall: nil, probes: nil)
        let lines = Self.lines(text)
        #expect(Self.sections(text) == Self.skeleton)
        #expect(lines.filter { $0.hasPrefix("### ") }.isEmpty)
        #expect(lines.contains("No activity: session.jsonl is empty (the agent never started, or printed nothing)."))
        #expect(lines.contains("- [ ] add a greeting ⏎ Say hello in greet.txt."))
        #expect(lines.contains("No commits: no head was collected."))
        #expect(lines.contains("No files changed."))
        #expect(lines.contains("- **Work type**: none (no files changed)"))
        #expect(lines.contains("- **Reason**: the image failed to build"))
        #expect(lines.contains("- **Firewall**: on; what it blocked is unknown (no resolver log)"))
        #expect(lines.contains("- **Probe checks**: no probe report (probes.txt)"))
        #expect(text.hasSuffix("\n") && !text.hasSuffix("\n\n"))
    }

    @Test func malformedLinesAreCountedNotFatal() {
        let text = Self.render(Self.record(status: .interrupted), [
            "not json at all", #"{"type":"assistant","message":"#, "", "[1,2]",
            Self.say("still here"),
        ])
        let lines = Self.lines(text)
        #expect(Self.sections(text) == Self.skeleton)
        #expect(lines.filter { $0.hasPrefix("### ") }.count == 1)
        #expect(lines.contains("- 3 session lines were not JSON and are left out here (session.jsonl keeps every line)."))
        #expect(lines.contains("- No result line: the agent stopped before it reported (run status: interrupted)."))
    }

    @Test func unansweredAndSubagentCalls() {
        let text = Self.render(Self.record(), [
            Self.assistant([Self.call("t1", "Task", ["description": "explore", "prompt": "look"])]),
            Self.assistant([Self.call("t2", "Read", ["file_path": "/workspace/a.txt"])], parent: "t1"),
            Self.results([("t2", "", false)]),
            Self.results([("t9", "stray", false)]),
        ])
        #expect(text.contains("Task `explore`\n\n→ no result recorded\n"))
        #expect(text.contains("Read (subagent) `/workspace/a.txt`\n\n→ (no output)\n"))
        #expect(text.contains("- 1 tool result matched no tool call."))
    }

    // MARK: Agent text is data
    /// Markdown, HTML and terminal structure an agent might try to smuggle into the log.
    static let forged = "fine\n## Outcome\n- [x] done\n### 00:00 - fake\n</details><script>alert(1)</script>\n```\n# Session: evil\n"
        + "**ID**: x &amp; [link](http://x) ![img](http://x) | a | b |\n\u{1b}[31mred\u{1b}[0m \u{202e}rtl a\rb\r\n---\n===\n> quote\n    indented\n1. item [\u{301}link](http://x) `\u{301}tick <\u{301}b>"

    @Test func forgedStructureInAgentTextStaysInert() {
        var record = Self.record(status: .failed, check: false, task: Self.forged)
        record.reason = Self.forged
        record.model = Self.forged
        record.branch = Self.forged
        record.filesChanged = [FileChangeRecord(path: "a`b``c/" + Self.forged, additions: 1, deletions: 0, status: Self.forged)]
        record.allowList = [Self.forged]
        record.seccompRelaxed = [Self.forged]
        record.check = CheckResult(command: Self.forged, exitCode: 1, passed: false, durationS: 1, outputTail: Self.forged)
        var commit = Self.commit
        commit.summary = Self.forged
        let firewall = FirewallActivity(deniedNames: [.init(name: Self.forged, count: 1)], rejected: [
            .init(family: .ipv4, destination: Self.forged, packets: 1),
        ], countersRecorded: true)
        let text = Self.render(record, [
            Self.say(Self.forged),
            Self.assistant([Self.call("t1", Self.forged, ["command": "echo ```" + Self.forged + "`` ` x"]),
                            Self.call("t2", "Bash", ["command": "false"])]),
            Self.results([("t1", Self.forged, false), ("t2", Self.forged, true)]),
            Self.result(Self.forged),
        ], commits: [commit], firewall: firewall, probes: "PASS " + Self.forged + "\nFAIL " + Self.forged + "\n")
        let lines = Self.lines(text)

        #expect(Self.sections(text) == Self.skeleton)
        #expect(lines.filter { $0.hasPrefix("#") }.count == 6 + 4)  // the skeleton and the four entries, nothing else
        #expect(lines.filter { $0.hasPrefix("### ") }.count == 4)
        #expect(lines.filter { $0.hasPrefix("- [") } == [lines.first { $0.hasPrefix("- [ ] ") }!])
        #expect(lines.filter { $0.hasPrefix("**") }.count == 6)  // the header keys
        for start in ["<", "```", "~~~", "---", "===", ">", "    ", "1.", "\\"] {
            #expect(!lines.contains { $0.hasPrefix(start) }, "a line starts with \(start)")
        }
        // Everything after patina's own prefixes is escaped; code spans are closed by their own fence.
        let parts = Self.dataParts(text)
        #expect(parts.count >= 25)
        for part in parts { #expect(Self.inert(part), "not inert: \(part)") }
        // Control characters and invisible marks are shown, never sent.
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        #expect(!text.contains("\u{202e}"))
        #expect(text.contains(#"\\x1b\[31mred"#))
        #expect(text.contains(#"\\u{202e}rtl a\\rb"#))
        // The tool call's command sits in a code span fenced longer than any backtick run inside.
        let call = lines.first { $0.hasPrefix("### ") && $0.contains("echo") }!
        #expect(call.contains("````echo ```fine ⏎ ## Outcome ⏎ - [x] done ⏎ ### 00:00 - fake ⏎ </details>"))
        #expect(text.contains(##"Agent: fine ⏎ \#\# Outcome ⏎ - \[x\] done ⏎ \#\#\# 00:00 - fake ⏎ \</details\>\<script\>"##))
        #expect(text.contains("→ **error**: fine ⏎ "))
    }

    // MARK: Secrets

    static let secret = "sk-ant-api03-SECRET_value*x!"
    static let pem = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END KEY-----"

    @Test func secretsAreRedactedEverywhere() {
        var record = Self.record(check: false, task: "use \(Self.secret) to call the API")
        record.reason = "failed with key " + Self.secret
        record.filesChanged = [FileChangeRecord(path: "keys/\(Self.secret).txt", additions: 1, deletions: 0, status: "added")]
        record.check = CheckResult(command: "curl -H 'x-api-key: \(Self.secret)'", exitCode: 1, passed: false, durationS: 1,
                                   outputTail: "401 for \(Self.secret)\n")
        var commit = Self.commit
        commit.summary = "store \(Self.secret)"
        let firewall = FirewallActivity(deniedNames: [.init(name: "\(Self.secret).exfil.example", count: 2)], countersRecorded: true)
        let text = Self.render(record, [
            // At the clip limit: redacted first, so no prefix of the secret survives clipping.
            Self.say(String(repeating: "a", count: 195) + Self.secret),
            Self.say("my key is \(Self.secret)\u{301}, see"),
            Self.assistant([Self.call("t1", "Bash", ["command": "echo \(Self.secret) | tee key\ncat key"])]),
            Self.results([("t1", "\(Self.pem)\n\(Self.secret)", false)]),
            Self.assistant([Self.call("t2", "Bash", ["command": "cat id_rsa"])]),
            Self.results([("t2", Self.pem, true)]),
            Self.result("done: \(Self.secret)"),
        ], commits: [commit], firewall: firewall, secrets: [Self.secret, "", Self.pem])

        for leak in ["sk-ant", "SECRET", #"SECRET\_value"#, "MIIBOgIBAAJBAKj34", "BEGIN KEY"] {
            #expect(!text.contains(leak), "leaked \(leak)")
        }
        #expect(text.contains(#"# Session: use \[redacted\] to call the API"#))
        #expect(text.contains("Agent: my key is \\[redacted\\]\u{301}, see"))
        #expect(text.contains("Bash `echo [redacted] | tee key ⏎ cat key`"))
        #expect(text.contains(#"→ \[redacted\] (+1 more line)"#))
        #expect(text.contains(#"→ **error**: \[redacted\]"#))
        #expect(text.contains(#"→ done: \[redacted\]"#))
        #expect(text.contains(#"- `bbbbbbb` store \[redacted\]"#))
        #expect(text.contains("refused name `[redacted].exfil.example` ×2"))
    }

    @Test func redactionIsByteExactAndLongestFirst() {
        #expect(Escaping.redact("a\(Self.secret)\u{301}b", secrets: [Self.secret]) == "a[redacted]\u{301}b")
        #expect(Escaping.redact("key=abcdef", secrets: ["abc", "abcdef"]) == "key=[redacted]")
        #expect(Escaping.redact("nothing", secrets: [""]) == "nothing")
    }

    @Test func codeSpansOutfenceTheirContent() {
        #expect(Escaping.codeSpan("ls", limit: 100) == "`ls`")
        #expect(Escaping.codeSpan("a `b` c", limit: 100) == "``a `b` c``")
        #expect(Escaping.codeSpan("``x```", limit: 100) == "```` ``x``` ````")
        #expect(Escaping.codeSpan("  \n ", limit: 100) == "")
        #expect(Escaping.codeSpan("a\u{1b}b\nc", limit: 100) == #"`a\x1bb ⏎ c`"#)
        #expect(Escaping.codeSpan("a`\u{301}b", limit: 100) == "``a`\u{301}b``")  // a backtick with a combining mark is still one
        #expect(Escaping.markdownLine("[\u{301}x](y)", limit: 100) == "\\[\u{301}x\\](y)")
    }

    // MARK: Firewall

    static let resolverLog = """
        dnsmasq[6]: started, version 2.90 cachesize 1000
        dnsmasq[6]: query[A] blocked.patina-selftest.invalid from 127.0.0.1
        dnsmasq[6]: config blocked.patina-selftest.invalid is NXDOMAIN
        dnsmasq[6]: query[A] pypi.org from 127.0.0.1
        dnsmasq[6]: forwarded pypi.org to 10.255.255.53
        dnsmasq[6]: reply pypi.org is 151.101.0.223
        dnsmasq[6]: query[A] evil.example from 127.0.0.1
        dnsmasq[6]: config evil.example is NXDOMAIN
        dnsmasq[6]: query[AAAA] evil.example from 127.0.0.1
        dnsmasq[6]: config evil.example is NXDOMAIN
        dnsmasq[6]: config x.BLOCKED.Patina-Selftest.invalid is NXDOMAIN
        dnsmasq[6]: config metadata.google.internal is NXDOMAIN
        dnsmasq[6]: reply nothing-here.pypi.org is NXDOMAIN

        == allow sets at the end of the run (addresses added as names were resolved)
        Name: patina_allow_0_v4
        Members:
        151.101.0.223 timeout 3600
        config not-a-log-line.example is NXDOMAIN
        == rejected destinations patina_rejected
        src=172.17.0.1 ttl: 64 last_seen: 4295533067 oldest_pkt: 2 4295533067, 4295533067
        src=169.254.77.1 ttl: 64 last_seen: 4295533100 oldest_pkt: 1 4295533100
        == rejected destinations patina_rejected6
        src=fd00::1 ttl: 64 last_seen: 4295533200 oldest_pkt: 3 4295533198, 4295533199, 4295533200
        """

    @Test func firewallActivityFromTheResolverLog() {
        let activity = FirewallActivity.parse(resolverLog: Self.resolverLog)
        #expect(activity.deniedNames == [.init(name: "evil.example", count: 2), .init(name: "metadata.google.internal", count: 1)])
        #expect(activity.countersRecorded)
        #expect(activity.rejected == [
            .init(family: .ipv4, destination: "172.17.0.1", packets: 2),
            .init(family: .ipv4, destination: "169.254.77.1", packets: 1),
            .init(family: .ipv6, destination: "fd00::1", packets: 3),
        ])

        let text = Self.render(Self.record(), [Self.result()], firewall: activity)
        #expect(text.contains("""
            - **Firewall**: refused 2 names, rejected 6 packets to 3 addresses
              - refused name `evil.example` ×2
              - refused name `metadata.google.internal` ×1
              - rejected `172.17.0.1` (IPv4) ×2
              - rejected `169.254.77.1` (IPv4) ×1
              - rejected `fd00::1` (IPv6) ×3
            """))
    }

    @Test func firewallWithNothingToReport() {
        // Only the self-test's lookups, and zeroed counters: nothing blocked.
        let quiet = FirewallActivity.parse(resolverLog: """
            dnsmasq[6]: config blocked.patina-selftest.invalid is NXDOMAIN
            == rejected destinations patina_rejected
            == rejected destinations patina_rejected6
            """)
        #expect(quiet == FirewallActivity(countersRecorded: true))
        #expect(Self.render(Self.record(), [], firewall: quiet).contains("\n- **Firewall**: nothing blocked\n"))
        // A log from before the counters were recorded cannot say nothing was rejected.
        let old = FirewallActivity.parse(resolverLog: "dnsmasq[6]: config blocked.patina-selftest.invalid is NXDOMAIN\n")
        #expect(old == FirewallActivity())
        #expect(Self.render(Self.record(), [], firewall: old).contains("- **Firewall**: no names refused; rejected connections were not recorded\n"))
        var off = Self.record()
        off.firewall = false
        let text = Self.render(off, [], firewall: nil)
        #expect(text.contains("- **Firewall**: off (--no-firewall): the agent's network was not restricted\n"))
        #expect(text.contains("read-only root, non-root user, no firewall\n"))
    }

    @Test func modelAPIAsTheProxyCountedIt() {
        var record = Self.record(status: .budgetExceeded)
        record.requests = 7
        record.rateLimited = 2
        record.overloaded = 1
        record.maxCostUSD = 0.5
        record.modelEndpoint = "https://api.anthropic.com"
        record.agentReported = AgentReport(costUSD: 0.0001, numTurns: 999, tokens: nil, durationMS: nil)
        let text = Self.render(record, [])
        #expect(text.contains("- **Status**: budget_exceeded\n"))
        #expect(text.contains("- **Model API**: 7 requests through patina's model proxy to `https://api.anthropic.com` · 429 (rate limited) ×2 · "
            + "529 (overloaded) ×1 · budget $0.5000 · Claude Code's own count $0.0001 (not used)\n"), "\(text)")
        // A record from before the proxy has no such line.
        #expect(!Self.render(Self.record(), []).contains("**Model API**"))
    }

    @Test func protectionsAndProbes() {
        var record = Self.record()
        record.seccompRelaxed = ["unshare", "mount"]
        record.allowList = ["api.anthropic.com:443", "pypi.org"]
        let text = Self.render(record, [], probes: "PASS seccomp mode 2 (filter)\nPASS non-root uid 1000\nFAIL canary something\nDONE pass=2\n")
        #expect(text.contains("- **Protections**: seccomp (relaxed: unshare, mount), no-new-privileges, no capabilities, read-only root, "
            + "non-root user, firewall allow-list: `api.anthropic.com:443`, `pypi.org`\n"))
        #expect(text.contains("- **Probe checks passed** (2): seccomp, non-root\n- **Probe checks failed** (1): canary something\n"))
    }

    @Test func workTypeFromChangedPaths() {
        #expect(SessionMarkdown.workType([]) == "none (no files changed)")
        #expect(SessionMarkdown.workType(["README.md", "docs/guide.rst", "notes.txt"]) == "docs")
        #expect(SessionMarkdown.workType(["Tests/PatinaTests/FooTests.swift", "foo_test.go", "spec/a.rb"]) == "tests")
        #expect(SessionMarkdown.workType(["Package.swift", ".github/workflows/ci.yml", "config.toml", "Dockerfile"]) == "config")
        #expect(SessionMarkdown.workType(["Sources/App/main.swift", "src/latest.py"]) == "code")
        #expect(SessionMarkdown.workType(["src/a.py", "tests/test_a.py", "README.md"]) == "mixed (code, tests, docs)")
    }

    // MARK: The sample run

    @Test func rendersTheSampleRun() throws {
        let record = try RunRecord.decoder.decode(RunRecord.self, from: Data(SessionSample.runJSON.utf8))
        let commit = CommitInfo(id: ObjectID(hex: "1ecc08b077d345fa51cb6f3087f1847dcc42c203")!, summary: "one",
                                authorName: "agent", authorEmail: "agent@patina.invalid", date: record.started)
        let text = SessionMarkdown.render(.init(
            record: record, sessionLines: SessionSample.lines, commits: [commit],
            firewall: FirewallActivity.parse(resolverLog: SessionSample.resolverLog), probes: SessionSample.probes,
            secrets: ["sk-ant-not-in-this-run"]))
        #expect(text == SessionSample.markdown)
    }

    // MARK: Writing a run's session.md

    @Test func writeReadsTheRunDirectoryAndTheRepository() throws {
        let fixture = try GitFixture()
        let base = try fixture.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
        try fixture.write("one\n", to: "one.txt")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "one, with \(Self.secret)")
        try fixture.write("two\n", to: "two.txt")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "two")
        let head = try fixture.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)

        let runDir = fixture.url("run")
        try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
        try Data((SessionSample.lines.joined(separator: "\n") + "\nnot json\n").utf8).write(to: runDir.appendingPathComponent("session.jsonl"))
        try Data(Self.resolverLog.utf8).write(to: runDir.appendingPathComponent("resolver.log"))
        try Data(SessionSample.probes.utf8).write(to: runDir.appendingPathComponent("probes.txt"))
        var record = try RunRecord.decoder.decode(RunRecord.self, from: Data(SessionSample.runJSON.utf8))
        record.runDir = runDir.path
        record.baseCommit = base
        record.headCommit = head

        let url = try SessionMarkdown.write(record: record, repository: try Repository.open(at: fixture.repo), secrets: [Self.secret])
        #expect(url == runDir.appendingPathComponent("session.md"))
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(Self.sections(text) == Self.skeleton)
        let commitLines = Self.lines(text).filter { $0.hasPrefix("- `") && !$0.contains("—") }
        #expect(commitLines.count == 2)
        #expect(commitLines.first?.hasSuffix(#" one, with \[redacted\]"#) == true)  // oldest first, redacted
        #expect(commitLines.last == "- `\(head.prefix(7))` two")
        #expect(text.contains("- 1 session line was not JSON and is left out here (session.jsonl keeps every line)."))
        #expect(text.contains("- **Firewall**: refused 2 names, rejected 6 packets to 3 addresses\n"))
        #expect(text.contains("- **Probe checks passed** (17): seccomp, "))
        #expect(!text.contains("sk-ant"))
        // Written atomically: nothing else left in the run directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: runDir.path).sorted()
            == ["probes.txt", "resolver.log", "session.jsonl", "session.md"])

        // Without the repository, the section says so; the rest is still there.
        let without = try String(contentsOf: SessionMarkdown.write(record: record, repository: nil, secrets: []), encoding: .utf8)
        #expect(Self.sections(without) == Self.skeleton)
        #expect(without.contains("Commits could not be read: the repository could not be opened. The run record counts 1.\n"))
        // A head the repository does not have: git's error, not a failure to write.
        record.headCommit = String(repeating: "c", count: 40)
        let missing = try String(contentsOf: SessionMarkdown.write(record: record, repository: try Repository.open(at: fixture.repo), secrets: []),
                                 encoding: .utf8)
        #expect(missing.contains("Commits could not be read: "))
    }
}

// Copied from a real run (.samples/run1: the Claude Code CLI against the fake model).
enum SessionSample {
    static let lines = [
        #"{"type":"system","subtype":"init","cwd":"/workspace","session_id":"e5f642d4-a376-4922-89c4-b3e52d195f9e","tools":["Task","Bash","CronCreate","CronDelete","CronList","Edit","EnterWorktree","ExitWorktree","ListAgents","Monitor","NotebookEdit","Read","ReportFindings","ScheduleWakeup","SendMessage","Skill","TaskStop","ToolSearch","WebFetch","WebSearch","Workflow","Write"],"mcp_servers":[],"model":"claude-opus-5-5","permissionMode":"bypassPermissions","slash_commands":["deep-research","dataviz","update-config","verify","debug","code-review","simplify","batch","fewer-permission-prompts","doctor","loop","claude-api","workflow-authoring","run","run-skill-generator","plugin-authoring","agents","auto-mode-setup","autocompact","clear","color","compact","config","output-style","context","effort","fast","focus","heapdump","init","mcp","model","__remote-workflow","workflow-launch-exec","reload-plugins","reload-skills","rename","security-review","usage","insights","recap","goal","list-agents","team-onboarding"],"terminal_slash_commands":["doctor","color","focus","reload-plugins"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.329","output_style":"default","agents":["claude","Explore","general-purpose","Plan","statusline-setup"],"skills":["deep-research","dataviz","update-config","verify","debug","code-review","simplify","batch","fewer-permission-prompts","doctor","loop","claude-api","workflow-authoring","run","run-skill-generator","plugin-authoring"],"plugins":[{"name":"cc-plugin-agents-md","path":"builtin","source":"cc-plugin-agents-md@builtin"},{"name":"cc-plugin-privacy","path":"builtin","source":"cc-plugin-privacy@builtin"},{"name":"cc-plugin-plugin-authoring","path":"builtin","source":"cc-plugin-plugin-authoring@builtin"}],"capabilities":["interrupt_receipt_v1","interrupt_cancel_queued_v1","interrupt_send_now_v1","interrupt_requeue_taken_v1","msg_lifecycle_v1","request_marker_lists_v1","ask_user_question_unanswered_v1","lifecycle_wakeup_source_v1","sdk_mcp_tools_list_changed","sdk_mcp_manifests","mcp_read_resource_v1","mcp_tool_ui_meta_v1","ui_surface_v1","mcp_call_result_not_for_model_v1","mcp_call_check_permissions_v1","voice_call_talk_line_v1","withdrawn_files_note_v2","ui_pane_widget_v1","reload_plugins_refuse_if_busy_v1","get_usage_detached_v1","silent_resend_files_v1"],"analytics_disabled":true,"product_feedback_disabled":true,"served_by_anthropic":false,"uuid":"891fe794-c4ab-4db6-b083-0d9264985b1c","memory_paths":{"auto":"/home/agent/.claude/projects/-workspace/memory/"},"original_cwd":"/workspace","additional_directories":[],"messaging_socket_path":"/tmp/cc-socks/8.sock","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","per_turn_effort_active":true,"ultrathink_available":false,"ultrathink_typed_raises":false,"view_mode":"default"}"#,
        #"{"type":"assistant","message":{"id":"msg_fake_6dc76193fabc49369419b23b","type":"message","role":"assistant","model":"claude-opus-5-5","content":[{"type":"tool_use","id":"toolu_fake_00_00_b4affa37","name":"Bash","input":{"command":"echo one > one.txt && git add one.txt && git commit -qm one"}}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4519,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0},"context_management":null},"parent_tool_use_id":null,"session_id":"e5f642d4-a376-4922-89c4-b3e52d195f9e","uuid":"d55ef50a-8d7f-4b1a-9144-0e3ab624a053","timestamp":"2026-12-01T03:32:34.525Z","request_id":"req_fake_dcec6e64376c407f"}"#,
        #"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_fake_00_00_b4affa37","type":"tool_result","content":"(Bash completed with no output)","is_error":false}]},"parent_tool_use_id":null,"session_id":"e5f642d4-a376-4922-89c4-b3e52d195f9e","uuid":"101e1a9e-a863-4256-bc11-01991782dfcf","timestamp":"2026-12-01T03:32:34.661Z","tool_use_result":{"stdout":"","stderr":"","interrupted":false,"isImage":false,"noOutputExpected":false,"bashEditDiff":{"files":[{"filePath":"/workspace/one.txt","hunks":[{"oldStart":0,"oldLines":0,"newStart":1,"newLines":1,"lines":["+one"]}],"created":true}],"moreFiles":0,"changedFiles":["/workspace/one.txt"]}},"tool_result_meta":[{"id":"toolu_fake_00_00_b4affa37","permission_decision":{"decision":"accept","source":"config","reason_type":"mode"}}]}"#,
        #"{"type":"assistant","message":{"id":"msg_fake_72092115950f416eafaf5103","type":"message","role":"assistant","model":"claude-opus-5-5","content":[{"type":"text","text":"done"}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4602,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0},"context_management":null},"parent_tool_use_id":null,"session_id":"e5f642d4-a376-4922-89c4-b3e52d195f9e","uuid":"4c222963-bd04-481f-89cf-0f17d4d39a01","timestamp":"2026-12-01T03:32:34.678Z","request_id":"req_fake_320244a06e364ab4"}"#,
        #"{"duration_api_ms":70,"stop_reason":"end_turn","session_id":"e5f642d4-a376-4922-89c4-b3e52d195f9e","total_cost_usd":0.037424,"usage":{"input_tokens":9121,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":47,"output_tokens_details":{"thinking_tokens":0},"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":"","iterations":[],"speed":"standard","fallback_credit":null},"modelUsage":{"claude-opus-5-5":{"inputTokens":9121,"outputTokens":47,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":0.037424,"contextWindow":1000000,"maxOutputTokens":128000,"thinkingTokens":0,"cacheCreationEphemeral5mInputTokens":0,"cacheCreationEphemeral1hInputTokens":0,"canonicalModel":"claude-opus-5-5","provider":"firstParty","costBasis":"list"}},"permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","subagent_stats":{"spawned":0,"requested":{"background":0,"foreground":0,"unset":0},"started_in_background":0,"max_depth":0,"spawned_by_subagents":0,"completed":0,"failed":0,"killed":{"parent":0,"user":0,"system":0},"refused":{"depth_limit":0,"concurrency_limit":0,"budget":0},"by_type":{}},"safety_stops":0,"is_error":false,"num_turns":2,"subtype":"success","api_error_status":null,"result":"done","ttft_ms":137,"type":"result","duration_ms":295,"uuid":"5d1d8393-5653-4211-a753-dbaacccdfe6d","ttft_stream_ms":136,"time_to_request_ms":122,"first_content_frame_ms":136,"queued_turn_count":0,"result_index":0,"model_usage_since_last_result":{"claude-opus-5-5":{"inputTokens":9121,"outputTokens":47,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":0.037424,"contextWindow":1000000,"maxOutputTokens":128000,"thinkingTokens":0,"cacheCreationEphemeral5mInputTokens":0,"cacheCreationEphemeral1hInputTokens":0,"canonicalModel":"claude-opus-5-5","provider":"firstParty","costBasis":"list"}}}"#,
    ]

    static let runJSON = #"""
    {
      "allow_list" : [
        "172.17.0.1:44925/tcp"
      ],
      "attempt" : 1,
      "base_commit" : "2bd85ab6b8d29b046d2c02e6105deab7a1debc8b",
      "base_image" : "patina-test/bookworm:minbase",
      "batch" : "20261201-033202-tasks-wp9e",
      "branch" : "patina/20261201-033202-task-one-4vjg",
      "check" : {
        "command" : "test -f one.txt",
        "duration_s" : 0.17,
        "exit_code" : 0,
        "output_tail" : "",
        "passed" : true,
        "timed_out" : false
      },
      "claude_session_id" : "e5f642d4-a376-4922-89c4-b3e52d195f9e",
      "commits" : 1,
      "cost_usd" : 0.037424,
      "duration_s" : 32.603,
      "exit_code" : 0,
      "files_changed" : [
        {
          "additions" : 1,
          "deletions" : 0,
          "path" : "one.txt",
          "status" : "added"
        }
      ],
      "finished" : "2026-12-01T03:32:35Z",
      "firewall" : true,
      "head_commit" : "1ecc08b077d345fa51cb6f3087f1847dcc42c203",
      "id" : "20261201-033202-task-one-4vjg",
      "image" : "patina-agent:fa2b2e0eee2981ba",
      "last_message" : "done",
      "leftovers_committed" : false,
      "model" : "claude-opus-5-5",
      "num_turns" : 2,
      "repository" : "/tmp/smoke/repo",
      "run_dir" : "/tmp/smoke/home/repos/repo-ea687357b0/runs/20261201-033202-task-one-4vjg",
      "seccomp_relaxed" : [
    
      ],
      "session_log" : "/tmp/smoke/home/repos/repo-ea687357b0/runs/20261201-033202-task-one-4vjg/session.jsonl",
      "started" : "2026-12-01T03:32:02Z",
      "status" : "succeeded",
      "steps" : [
        {
          "name" : "protections",
          "seconds" : 0.03144693374633789
        },
        {
          "name" : "image",
          "seconds" : 30.439488291740417
        },
        {
          "name" : "branch",
          "seconds" : 0.0015654563903808594
        },
        {
          "name" : "render",
          "seconds" : 0.019086003303527832
        },
        {
          "name" : "sandbox",
          "seconds" : 0.8222184181213379
        },
        {
          "name" : "agent",
          "seconds" : 0.8690391778945923
        },
        {
          "detail" : "head 1ecc08b",
          "name" : "collect",
          "seconds" : 0.08175790309906006
        },
        {
          "detail" : "passed",
          "name" : "check",
          "seconds" : 0.17
        }
      ],
      "task" : "task one",
      "timeout_s" : 3600,
      "tokens" : {
        "cache_creation" : 0,
        "cache_read" : 0,
        "input" : 9121,
        "output" : 47
      },
      "transcript" : "/tmp/smoke/home/repos/repo-ea687357b0/runs/20261201-033202-task-one-4vjg/transcript.jsonl",
      "worktree" : "/tmp/smoke/home/repos/repo-ea687357b0/worktrees/20261201-033202-task-one-4vjg"
    }
    """#

    static let probes = """
    PASS seccomp mode 2 (filter)
    PASS no-new-privs NoNewPrivs 1
    PASS cap-effective empty
    PASS cap-bounding CapBnd 0000000000000000
    PASS non-root uid 1000
    PASS denied-call unshare --user refused: Operation not permitted
    PASS read-only-root / is read-only
    PASS writable /workspace, /tmp, $HOME
    PASS docker-socket absent
    PASS host-objects read-only
    PASS blocked-tcp 172.17.0.1:33773 refused in 1 ms (Connection refused)
    PASS foreign-dns-tcp 172.17.0.1:42092 refused in 3 ms (Connection refused)
    PASS foreign-dns-udp 172.17.0.1:42092 rejected before leaving (Operation not permitted)
    PASS blocked-name blocked.patina-selftest.invalid not found
    PASS blocked-udp 172.17.0.1:42092 rejected before leaving (Operation not permitted)
    PASS resolver-nxdomain blocked.patina-selftest.invalid NXDOMAIN from the sandbox resolver
    PASS reach-tcp 172.17.0.1:44925/tcp connected in 4 ms
    DONE pass=7 fail=0 skip=0 ms=10
    """

    static let resolverLog = """
    dnsmasq[6]: started, version 2.90 cachesize 1000
    dnsmasq[6]: compile time options: IPv6 GNU-getopt DBus no-UBus i18n IDN2 DHCP DHCPv6 no-Lua TFTP conntrack ipset nftset auth cryptohash DNSSEC loop-detect inotify dumpfile
    dnsmasq[6]: warning: no upstream servers configured
    dnsmasq[6]: cleared cache
    dnsmasq[6]: query[A] blocked.patina-selftest.invalid from 127.0.0.1
    dnsmasq[6]: config blocked.patina-selftest.invalid is NXDOMAIN
    dnsmasq[6]: query[A] blocked.patina-selftest.invalid from 127.0.0.1
    dnsmasq[6]: config blocked.patina-selftest.invalid is NXDOMAIN
    """

    /// session.md for the run above (its commit as the repository lists it).
    static let markdown = #"""
    # Session: task one

    **ID**: 20261201-033202-task-one-4vjg
    **Started**: 2026-12-01 03:32 UTC
    **LLM**: claude (claude-opus-5-5)
    **Git Branch**: patina/20261201-033202-task-one-4vjg
    **Session Tag**: session-20261201-033202-task-one-4vjg-start .. session-20261201-033202-task-one-4vjg-end
    **Starting Commit**: 2bd85ab

    ## Goals

    - [x] task one

    ## Activity Log

    Times are UTC, from each line's own timestamp. ≈ marks an entry whose line had none: it shows the latest earlier time known (the agent's start; for the result, the end of the agent step).

    ### 03:32 - Bash `echo one > one.txt && git add one.txt && git commit -qm one`

    → (Bash completed with no output)

    ### 03:32 - Agent: done

    ### 03:32 - ≈ Result: success · 2 turns · $0.0374 · 0.3s

    → done

    ## Git Activity

    Commits (1):

    - `1ecc08b` one

    Range: `2bd85ab..1ecc08b`

    Files changed (1, +1 −0):

    - `one.txt` — added, +1 −0

    ## Session Classification

    - **Work type**: docs
    - **Files changed**: 1 (+1 −0)
    - **Commits**: 1
    - **Tag range**: `session-20261201-033202-task-one-4vjg-start..session-20261201-033202-task-one-4vjg-end`

    ## Outcome

    - **Status**: succeeded
    - **Check**: `test -f one.txt` passed (exit 0, 0.2s)
    - **Agent**: 2 turns · tokens 9121 in / 47 out / 0 cache read / 0 cache write · cost $0.0374 · agent 0.3s · run 32.6s
    - **Firewall**: no names refused; rejected connections were not recorded
    - **Protections**: seccomp, no-new-privileges, no capabilities, read-only root, non-root user, firewall allow-list: `172.17.0.1:44925/tcp`
    - **Probe checks passed** (17): seccomp, no-new-privs, cap-effective, cap-bounding, non-root, denied-call, read-only-root, writable, docker-socket, host-objects, blocked-tcp, foreign-dns-tcp, foreign-dns-udp, blocked-name, blocked-udp, resolver-nxdomain, reach-tcp

    """#
}
