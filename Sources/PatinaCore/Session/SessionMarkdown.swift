// Over 450 lines on purpose: every section of session.md escapes agent-written data the same way; the escaping stays next to each use.
import Foundation
import PatinaGit
import PatinaModelProxy

/// `session.md`: a run's human-readable session log, in the shape of the session logs patina
/// grew out of — a header, Goals, Activity Log, Git Activity, Session Classification, Outcome.
/// Rendered from the run record, session.jsonl and the run's reports, never typed by hand.
///
/// The header comes from the record alone. Everything the agent wrote — messages, tool calls
/// and their output, the result text, commit subjects, file names, names it looked up — is
/// data: secrets are redacted first, then it is collapsed to one line and escaped (commands
/// go in code spans fenced longer than any backtick run inside), and it only ever follows a
/// prefix patina wrote. So it cannot make a heading, an entry, a checklist item or raw HTML,
/// and control characters show as `\x1b`-style text.
public enum SessionMarkdown {
    public struct Input: Sendable {
        public var record: RunRecord
        /// session.jsonl: every stream-json line the agent printed.
        public var sessionLines: [String]
        /// The run's commits, base..head, oldest first; nil when they could not be read.
        public var commits: [CommitInfo]?
        /// Why `commits` is nil or empty, if there is more to say than "no commits".
        public var commitsNote: String?
        /// What the firewall stopped (from resolver.log); nil when there is no resolver log.
        public var firewall: FirewallActivity?
        /// probes.txt: the protection checks run before the agent started.
        public var probes: String?
        /// Credential values: each is replaced by `[redacted]` wherever it appears.
        public var secrets: [String]

        public init(record: RunRecord, sessionLines: [String] = [], commits: [CommitInfo]? = [], commitsNote: String? = nil,
                    firewall: FirewallActivity? = nil, probes: String? = nil, secrets: [String] = []) {
            self.record = record
            self.sessionLines = sessionLines
            self.commits = commits
            self.commitsNote = commitsNote
            self.firewall = firewall
            self.probes = probes
            self.secrets = secrets
        }
    }

    public static func render(_ input: Input) -> String {
        let r = Renderer(input: input)
        let sections = [r.header(), r.goals(), r.activityLog(), r.gitActivity(), r.classification(), r.outcome()]
        let text = sections.map { $0.joined(separator: "\n") }.joined(separator: "\n\n") + "\n"
        // Every value was redacted before it was escaped; this catches any that was not.
        return Escaping.redact(text, secrets: input.secrets, replacement: #"\[redacted\]"#)
    }

    /// Reads a finished run's session.jsonl, resolver.log and probes.txt from `record.runDir`
    /// and its commits from `repository` (when that is nil or fails, Git Activity says so),
    /// and writes `session.md` in the run directory atomically. Returns its URL.
    @discardableResult
    public static func write(record: RunRecord, repository: Repository?, secrets: [String]) throws -> URL {
        let layout = RunLayout(runDirectory: URL(fileURLWithPath: record.runDir, isDirectory: true))
        func read(_ url: URL) -> String? {
            (try? Data(contentsOf: url)).map { String(decoding: $0, as: UTF8.self) }
        }
        var input = Input(record: record, secrets: secrets)
        input.sessionLines = (read(layout.sessionLog) ?? "").split(separator: "\n").map(String.init)
        (input.commits, input.commitsNote) = commits(of: record, in: repository)
        if record.firewall, let log = read(layout.resolverLog) { input.firewall = FirewallActivity.parse(resolverLog: log) }
        input.probes = read(layout.probeReport)
        try Data(render(input).utf8).write(to: layout.sessionMarkdown, options: .atomic)
        return layout.sessionMarkdown
    }

    /// base..head oldest first, or nil and why not.
    static func commits(of record: RunRecord, in repository: Repository?) -> ([CommitInfo]?, String?) {
        guard let head = record.headCommit else { return ([], "no head was collected") }
        guard let repository else { return (nil, "the repository could not be opened") }
        guard let base = ObjectID(hex: record.baseCommit), let headID = ObjectID(hex: head) else {
            return (nil, "the run record's base or head is not a commit id")
        }
        do {
            return (Array(try repository.commits(from: base, to: headID).reversed()), nil)
        } catch {
            return (nil, "\(error)")
        }
    }

    // MARK: Activity

    /// session.jsonl as log entries: one per assistant message, per tool call (with the
    /// outcome of its result) and per result line.
    struct Activity {
        struct Entry {
            enum Kind {
                case message(String)
                case tool(name: String, detail: String)
                case result(StreamEvent.ResultSummary)
            }

            var kind: Kind
            var time: Date
            /// The time is the line's own timestamp (otherwise the latest earlier time known).
            var exact: Bool
            /// Printed by a subagent (the line has a `parent_tool_use_id`).
            var subagent: Bool
            var toolID: String?
            var outcome: (isError: Bool, text: String)?
        }

        var entries: [Entry] = []
        var lines = 0
        var malformed = 0
        var unmatchedResults = 0
        var retries: [Int?] = []
    }

    /// `agentStart`: when the agent step began (before any timestamped line); `agentEnd`,
    /// when it ended, for a result line without a timestamp.
    static func activity(_ lines: [String], agentStart: Date, agentEnd: Date?) -> Activity {
        var activity = Activity()
        var latest = agentStart
        var openTools: [Int] = []  // tool entries still waiting for their result, in call order
        for line in lines {
            let object: [String: Any]
            switch StreamEvent.object(line) {
            case .blank: continue
            case .malformed:
                activity.lines += 1
                activity.malformed += 1
                continue
            case .object(let o): object = o
            }
            activity.lines += 1
            let stamp = StreamEvent.timestamp(object)
            if let stamp { latest = max(latest, stamp) }
            let subagent = object["parent_tool_use_id"] is String
            func add(_ kind: Activity.Entry.Kind, toolID: String? = nil, time: Date? = nil) {
                activity.entries.append(Activity.Entry(kind: kind, time: stamp ?? time ?? latest, exact: stamp != nil,
                                              subagent: subagent, toolID: toolID))
            }
            for event in StreamEvent.events(object, summaryLimit: nil) {
                switch event {
                case .assistantText(let text):
                    add(.message(text))
                case .toolUse(let id, let name, let detail):
                    openTools.append(activity.entries.count)
                    add(.tool(name: name, detail: detail), toolID: id)
                case .toolResult(let id, let isError, let text):
                    // By id; a result without one goes to the oldest call still open.
                    let match = id == nil ? openTools.indices.first : openTools.firstIndex { activity.entries[$0].toolID == id }
                    guard let match else {
                        activity.unmatchedResults += 1
                        continue
                    }
                    activity.entries[openTools.remove(at: match)].outcome = (isError, text)
                case .result(let summary):
                    add(.result(summary), time: max(latest, agentEnd ?? latest))
                case .apiRetry(let status):
                    activity.retries.append(status)
                case .initialized, .other, .malformed:
                    continue
                }
            }
        }
        return activity
    }

    /// When the agent step started and ended, from the record's step timings (steps run one
    /// after the other from `started`); without an agent step, the run's start.
    static func agentWindow(_ record: RunRecord) -> (start: Date, end: Date?) {
        guard let i = record.steps.firstIndex(where: { $0.name == "agent" }) else { return (record.started, nil) }
        let start = record.started.addingTimeInterval(record.steps[..<i].reduce(0) { $0 + $1.seconds })
        return (start, start.addingTimeInterval(record.steps[i].seconds))
    }

    // MARK: Classification

    enum WorkType: String, CaseIterable {
        case code, tests, docs, config
    }

    /// The kinds of work the changed paths look like: "docs", "code", "mixed (code, tests)", ...
    static func workType(_ paths: [String]) -> String {
        let kinds = Set(paths.map(kind))
        let ordered = WorkType.allCases.filter(kinds.contains).map(\.rawValue)
        switch ordered.count {
        case 0: return "none (no files changed)"
        case 1: return ordered[0]
        default: return "mixed (" + ordered.joined(separator: ", ") + ")"
        }
    }

    static func kind(_ path: String) -> WorkType {
        let parts = path.split(separator: "/").map { $0.lowercased() }
        let file = String(path.split(separator: "/").last ?? "")
        let lower = file.lowercased()
        let dot = lower.lastIndex(of: ".")
        let ext = dot.map { String(lower[lower.index(after: $0)...]) } ?? ""
        let stem = dot.map { String(file[..<$0]) } ?? file
        let lowerStem = stem.lowercased()
        let directories = parts.dropLast()

        let testDirectories: Set<String> = ["test", "tests", "spec", "specs", "__tests__", "testdata", "fixtures"]
        let testStem = lowerStem.hasPrefix("test_") || lowerStem.hasPrefix("test-") || ["test", "tests", "spec"].contains(lowerStem)
            || ["_test", "_tests", "-test", ".test", "_spec", "-spec", ".spec"].contains { lowerStem.hasSuffix($0) }
            || ["Test", "Tests", "Spec"].contains { stem.hasSuffix($0) }
        if directories.contains(where: testDirectories.contains) || testStem { return .tests }

        let configNames: Set<String> = ["dockerfile", "makefile", "cmakelists.txt", "package.swift", "package.resolved",
                                        "go.mod", "go.sum", "gemfile", "rakefile", "procfile", "justfile"]
        let configExtensions: Set<String> = ["json", "yaml", "yml", "toml", "ini", "cfg", "conf", "plist", "lock",
                                             "env", "properties", "gradle", "xcconfig", "editorconfig", "mustache"]
        if configNames.contains(lower) || configExtensions.contains(ext) || file.hasPrefix(".")
            || parts.first == ".github" || parts.first == ".devcontainer" { return .config }

        let docNames: Set<String> = ["readme", "license", "licence", "changelog", "contributing", "notice", "authors", "copying"]
        let docExtensions: Set<String> = ["md", "markdown", "rst", "txt", "adoc", "asciidoc", "org", "tex"]
        if docNames.contains(lowerStem) || docExtensions.contains(ext)
            || directories.contains(where: ["doc", "docs", "documentation"].contains) { return .docs }
        return .code
    }

    // MARK: Rendering

    /// Renders one input's sections. Every value that is not patina's own fixed text goes
    /// through `text` or `code`, which redact before they collapse, clip and escape.
    struct Renderer {
        let input: Input
        var record: RunRecord { input.record }
        let activity: Activity
        let utc: DateFormatter

        init(input: Input) {
            self.input = input
            let window = SessionMarkdown.agentWindow(input.record)
            activity = SessionMarkdown.activity(input.sessionLines, agentStart: window.start, agentEnd: window.end)
            utc = DateFormatter()
            utc.locale = Locale(identifier: "en_US_POSIX")
            utc.timeZone = TimeZone(identifier: "UTC")
        }

        /// Redacted, one line of at most `limit` characters, markdown-escaped.
        func text(_ s: String, _ limit: Int = 200) -> String {
            Escaping.markdownLine(redact(s), limit: limit)
        }

        /// Redacted, one line of at most `limit` characters, in an inline code span.
        func code(_ s: String, _ limit: Int = 160) -> String {
            Escaping.codeSpan(redact(s), limit: limit)
        }

        func redact(_ s: String) -> String { Escaping.redact(s, secrets: input.secrets) }

        func format(_ date: Date, _ pattern: String) -> String {
            utc.dateFormat = pattern
            return utc.string(from: date)
        }

        var tagStart: String { "session-\(record.id)-start" }
        var tagEnd: String { "session-\(record.id)-end" }

        func header() -> [String] {
            let firstLine = record.task.split(whereSeparator: \.isNewline)
                .first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init) ?? ""
            return [
                "# Session: " + (firstLine.isEmpty ? "(no task)" : text(firstLine, 120)),
                "",
                "**ID**: " + text(record.id),
                "**Started**: " + format(record.started, "yyyy-MM-dd HH:mm") + " UTC",
                "**LLM**: claude (" + (record.model.map { text($0, 80) } ?? "default model") + ")",
                "**Git Branch**: " + text(record.branch),
                "**Session Tag**: " + text(tagStart) + " .. " + text(tagEnd),
                "**Starting Commit**: " + text(String(record.baseCommit.prefix(7))),
            ]
        }

        func goals() -> [String] {
            let done = record.status == .succeeded && record.check?.passed != false
            let task = record.task.trimmingCharacters(in: .whitespacesAndNewlines)
            return ["## Goals", "", "- [\(done ? "x" : " ")] " + (task.isEmpty ? "(no task)" : text(task, 300))]
        }

        // MARK: Activity Log

        func activityLog() -> [String] {
            var out = ["## Activity Log"]
            if activity.lines == 0 {
                out += ["", "No activity: session.jsonl is empty (the agent never started, or printed nothing)."]
                return out
            }
            if activity.entries.contains(where: { !$0.exact }) {
                out += ["", "Times are UTC, from each line's own timestamp. ≈ marks an entry whose line had none: "
                    + "it shows the latest earlier time known (the agent's start; for the result, the end of the agent step)."]
            }
            for entry in activity.entries {
                out += ["", heading(entry)]
                if let body = body(entry) { out += ["", body] }
            }
            var notes: [String] = []
            if !activity.entries.contains(where: { if case .result = $0.kind { true } else { false } }) {
                notes.append("No result line: the agent stopped before it reported (run status: \(record.status.rawValue)).")
            }
            if activity.malformed > 0 {
                notes.append("\(activity.malformed) session line\(activity.malformed == 1 ? " was" : "s were") not JSON and "
                    + "\(activity.malformed == 1 ? "is" : "are") left out here (session.jsonl keeps every line).")
            }
            if activity.unmatchedResults > 0 {
                notes.append("\(activity.unmatchedResults) tool result\(activity.unmatchedResults == 1 ? "" : "s") matched no tool call.")
            }
            if !activity.retries.isEmpty {
                let statuses = Set(activity.retries.compactMap { $0 }).sorted().map(String.init)
                notes.append("Claude Code retried the model API \(activity.retries.count) time\(activity.retries.count == 1 ? "" : "s")"
                    + (statuses.isEmpty ? "." : " (HTTP \(statuses.joined(separator: ", "))."))
            }
            if !notes.isEmpty { out += [""] + notes.map { "- " + $0 } }
            return out
        }

        func heading(_ entry: Activity.Entry) -> String {
            let prefix = "### " + format(entry.time, "HH:mm") + " - " + (entry.exact ? "" : "≈ ")
            switch entry.kind {
            case .message(let message):
                return prefix + (entry.subagent ? "Subagent: " : "Agent: ") + text(message)
            case .tool(let name, let detail):
                let call = code(detail)
                return prefix + text(name, 60) + (entry.subagent ? " (subagent)" : "") + (call.isEmpty ? "" : " " + call)
            case .result(let r):
                var parts = [text(r.subtype, 40) + (r.isError ? " (error)" : "")]
                if let status = r.apiErrorStatus { parts.append("model API answered \(status)") }
                if let turns = r.numTurns { parts.append("\(turns) turn\(turns == 1 ? "" : "s")") }
                if let cost = r.costUSD { parts.append(String(format: "$%.4f", cost)) }
                if let ms = r.durationMS { parts.append(DurationParser.format(ms / 1000)) }
                return prefix + "Result: " + parts.joined(separator: " · ")
            }
        }

        /// The line under an entry: a tool call's outcome, the result's text.
        func body(_ entry: Activity.Entry) -> String? {
            switch entry.kind {
            case .message: return nil
            case .tool:
                guard let outcome = entry.outcome else { return "→ no result recorded" }
                let output = redact(outcome.text).trimmingCharacters(in: .whitespacesAndNewlines)
                if outcome.isError { return "→ **error**: " + (output.isEmpty ? "(no message)" : text(output)) }
                let lines = output.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" })
                    .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                guard let first = lines.first else { return "→ (no output)" }
                let more = lines.count - 1
                return "→ " + text(String(first), 160) + (more > 0 ? " (+\(more) more line\(more == 1 ? "" : "s"))" : "")
            case .result(let r):
                guard let message = r.text?.trimmingCharacters(in: .whitespacesAndNewlines), !message.isEmpty else { return nil }
                return "→ " + text(message)
            }
        }

        // MARK: Git Activity

        var commitCount: Int? { input.commits?.count ?? record.commits }

        func gitActivity() -> [String] {
            var out = ["## Git Activity", ""]
            if let commits = input.commits {
                if commits.isEmpty {
                    out.append("No commits" + (input.commitsNote.map { ": " + text($0) } ?? "") + ".")
                } else {
                    out += ["Commits (\(commits.count)):", ""]
                    out += commits.map { "- " + code($0.id.short) + " " + text($0.summary, 160) }
                }
            } else {
                out.append("Commits could not be read: " + text(input.commitsNote ?? "unknown reason") + "."
                    + (record.commits.map { " The run record counts \($0)." } ?? ""))
            }
            if let head = record.headCommit, head != record.baseCommit {
                out += ["", "Range: " + code(String(record.baseCommit.prefix(7)) + ".." + String(head.prefix(7)))]
            }
            if record.leftoversCommitted {
                out += ["", "patina committed changes the agent had left uncommitted."]
            }
            for note in BatchReport.historyNotes(record) {
                out += ["", "**" + text(note, 600) + "**"]
            }
            out.append("")
            if record.filesChanged.isEmpty {
                out.append("No files changed.")
            } else {
                out += ["Files changed (\(record.filesChanged.count), +\(record.additions) −\(record.deletions)):", ""]
                out += record.filesChanged.map { f in
                    "- " + code(f.path, 200) + " — " + text(f.status, 20) + ", +\(f.additions) −\(f.deletions)"
                }
            }
            return out
        }

        func classification() -> [String] {
            [
                "## Session Classification", "",
                "- **Work type**: " + text(SessionMarkdown.workType(record.filesChanged.map(\.path))),
                "- **Files changed**: \(record.filesChanged.count) (+\(record.additions) −\(record.deletions))",
                "- **Commits**: " + (commitCount.map(String.init) ?? "unknown"),
                "- **Tag range**: " + code(tagStart + ".." + tagEnd, 300),
            ]
        }

        // MARK: Outcome

        func outcome() -> [String] {
            var out = ["## Outcome", "", "- **Status**: " + record.status.rawValue]
            if let reason = record.reason { out.append("- **Reason**: " + text(reason, 300)) }
            for note in record.diskNotes { out.append("- **Disk**: " + text(note, 600)) }
            out.append("- **Check**: " + check())
            out.append("- **Agent**: " + usage())
            if let api = modelAPI() { out.append("- **Model API**: " + api) }
            if let requeues = record.requeues, !requeues.isEmpty {
                out.append("- **Requeued**: \(requeues.count) time\(requeues.count == 1 ? "" : "s") (rate limited)")
            }
            out += firewall()
            out.append("- **Protections**: " + protections())
            out += probes()
            return out
        }

        func check() -> String {
            guard let c = record.check else { return "none" }
            let command = code(c.command)
            if let error = c.error { return command + " could not run: " + text(error) }
            var verdict = c.timedOut ? "timed out" : c.passed ? "passed" : "failed"
            verdict += " (" + (c.exitCode.map { "exit \($0), " } ?? "") + DurationParser.format(c.durationS) + ")"
            var line = command + " " + verdict
            if !c.passed, let last = redact(c.outputTail).split(whereSeparator: \.isNewline)
                .last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                line += "; last output: " + text(String(last), 160)
            }
            return line
        }

        /// What the run's model proxy saw (requests, rate limits, the budget), and the status
        /// the agent stopped on.
        func modelAPI() -> String? {
            var parts: [String] = []
            if let requests = record.requests {
                parts.append("\(requests) request\(requests == 1 ? "" : "s") through patina's model proxy"
                    + (record.modelEndpoint.map { " to " + code($0, 120) } ?? ""))
            }
            if let limited = record.rateLimited, limited > 0 { parts.append("429 (rate limited) ×\(limited)") }
            if let overloaded = record.overloaded, overloaded > 0 { parts.append("529 (overloaded) ×\(overloaded)") }
            if let budget = record.maxCostUSD { parts.append("budget " + Money.format(budget)) }
            if let unpriced = record.unpriced, !unpriced.isEmpty {
                parts.append("no price for: " + unpriced.map { text($0, 120) }.joined(separator: "; "))
            }
            if let status = record.apiErrorStatus { parts.append("stopped on HTTP \(status)") }
            if let agent = record.agentReported?.costUSD, record.requests != nil {
                parts.append(String(format: "Claude Code's own count $%.4f (not used)", agent))
            }
            return parts.isEmpty ? nil : parts.joined(separator: " · ")
        }

        func usage() -> String {
            var parts: [String] = []
            parts.append(record.numTurns.map { "\($0) turn\($0 == 1 ? "" : "s")" } ?? "turns unknown")
            if let t = record.tokens {
                parts.append("tokens \(t.input) in / \(t.output) out / \(t.cacheRead) cache read / \(t.cacheCreation) cache write")
            }
            parts.append(record.costUSD.map { String(format: "cost $%.4f", $0) } ?? "cost unknown")
            let agentMS = activity.entries.reversed().lazy.compactMap { entry -> Double? in
                if case .result(let r) = entry.kind { r.durationMS } else { nil }
            }.first
            if let agentMS { parts.append("agent " + DurationParser.format(agentMS / 1000)) }
            if let d = record.durationS { parts.append("run " + DurationParser.format(d)) }
            return parts.joined(separator: " · ")
        }

        func firewall() -> [String] {
            guard record.firewall else { return ["- **Firewall**: off (--no-firewall): the agent's network was not restricted"] }
            guard let fw = input.firewall else { return ["- **Firewall**: on; what it blocked is unknown (no resolver log)"] }
            if fw.isEmpty {
                return ["- **Firewall**: " + (fw.countersRecorded ? "nothing blocked"
                    : "no names refused; rejected connections were not recorded")]
            }
            let packets = fw.rejected.reduce(0) { $0 + $1.packets }
            var summary: [String] = []
            if !fw.deniedNames.isEmpty {
                summary.append("refused \(fw.deniedNames.count) name\(fw.deniedNames.count == 1 ? "" : "s")")
            }
            if !fw.rejected.isEmpty {
                summary.append("rejected \(packets) packet\(packets == 1 ? "" : "s") to \(fw.rejected.count) address\(fw.rejected.count == 1 ? "" : "es")")
            }
            if !fw.countersRecorded { summary.append("rejected connections were not recorded") }
            var out = ["- **Firewall**: " + summary.joined(separator: ", ")]
            let limit = 20
            for denied in fw.deniedNames.prefix(limit) {
                out.append("  - refused name " + code(denied.name, 120) + " ×\(denied.count)")
            }
            if fw.deniedNames.count > limit { out.append("  - … and \(fw.deniedNames.count - limit) more names") }
            for r in fw.rejected.prefix(limit) {
                out.append("  - rejected " + code(r.destination, 60) + " (\(r.family.rawValue)) ×\(r.packets)")
            }
            if fw.rejected.count > limit { out.append("  - … and \(fw.rejected.count - limit) more addresses") }
            return out
        }

        func protections() -> String {
            var parts = [
                "seccomp" + (record.seccompRelaxed.isEmpty ? "" : " (relaxed: " + record.seccompRelaxed.map { text($0, 40) }.joined(separator: ", ") + ")"),
                "no-new-privileges", "no capabilities", "read-only root", "non-root user",
            ]
            if record.firewall {
                parts.append("firewall allow-list: " + (record.allowList.isEmpty ? "none"
                    : record.allowList.map { code($0, 120) }.joined(separator: ", ")))
            } else {
                parts.append("no firewall")
            }
            return parts.joined(separator: ", ")
        }

        func probes() -> [String] {
            guard let report = input.probes else { return ["- **Probe checks**: no probe report (probes.txt)"] }
            let lines = report.split(whereSeparator: \.isNewline).map(String.init)
            let passed = lines.filter { $0.hasPrefix("PASS ") }.compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
            let failed = lines.filter { $0.hasPrefix("FAIL ") }
            var out = ["- **Probe checks passed** (\(passed.count)): "
                + (passed.isEmpty ? "none" : passed.map { text($0, 40) }.joined(separator: ", "))]
            if !failed.isEmpty {
                out.append("- **Probe checks failed** (\(failed.count)): " + failed.prefix(5).map { text(String($0.dropFirst(5)), 120) }.joined(separator: "; "))
            }
            return out
        }
    }
}
