// Over 450 lines on purpose: run.json's schema (every field, its JSON key and the one decoder that tolerates older records) stays in one place.
import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox

/// How a run ended.
public enum RunStatus: String, Codable, Sendable, CaseIterable {
    case running
    case succeeded
    /// The agent succeeded but the run's check (`--check`) did not pass on the collected head.
    case checkFailed = "check_failed"
    case failed
    case timedOut = "timed_out"
    /// Stopped by the user (Ctrl-C, SIGTERM) or by a batch being stopped; collected.
    case interrupted
    case error
    /// The model proxy refused a request because the run's (or the batch's) budget was spent; collected.
    case budgetExceeded = "budget_exceeded"

    /// The run ended and will not change any more.
    public var isFinal: Bool { self != .running }

    /// The status as a headline: `CHECK FAILED`, `TIMED OUT`.
    public var headline: String { rawValue.replacingOccurrences(of: "_", with: " ").uppercased() }

    /// Every status, for help texts and errors: `running, succeeded, check_failed, …`.
    public static func list(including running: Bool = true) -> String {
        allCases.filter { running || $0 != .running }.map(\.rawValue).joined(separator: ", ")
    }
}

/// The result of the run's check (`--check CMD`): the command run in a fresh
/// sandbox on a clean checkout of the collected head.
public struct CheckResult: Codable, Sendable, Equatable {
    public var command: String
    public var exitCode: Int?
    public var passed: Bool
    public var durationS: Double
    public var outputTail: String
    public var timedOut: Bool = false
    /// Why the check could not run at all (no branch, the sandbox failed), if so.
    public var error: String?
    /// From the check's JUnit report (`--check-report`), when one was read.
    public var tests: TestCounts?
    public var failures: [TestFailure]?
    /// Failing tests beyond those kept in `failures`.
    public var failuresNotKept: Int?
    /// Why the report was not read (missing, too big, malformed): a note, not a failure.
    public var reportNote: String?

    /// One line: what ran, how it ended, how long it took.
    public var summary: String {
        var text = "`\(command.split(separator: "\n").first.map(String.init) ?? "")` "
        if passed {
            text += "passed"
        } else if let exitCode {
            text += "FAILED (exit \(exitCode)" + (timedOut ? ", timed out" : "") + ")"
        } else {
            text += "FAILED"
        }
        text += " in \(DurationParser.format(durationS))"
        if let error { text += ": \(error)" }
        return text
    }

    public init(command: String, exitCode: Int?, passed: Bool, durationS: Double, outputTail: String, timedOut: Bool = false, error: String? = nil) {
        self.command = command
        self.exitCode = exitCode
        self.passed = passed
        self.durationS = durationS
        self.outputTail = outputTail
        self.timedOut = timedOut
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case command, passed, error
        case exitCode = "exit_code"
        case durationS = "duration_s"
        case outputTail = "output_tail"
        case timedOut = "timed_out"
        case tests, failures
        case failuresNotKept = "failures_not_kept"
        case reportNote = "report_note"
    }
}

/// A run put back in the queue because the model's API rate-limited it.
public struct RequeueRecord: Codable, Sendable, Equatable {
    public var at: Date
    public var reason: String
    public var backoffS: Double

    public init(at: Date, reason: String, backoffS: Double) {
        self.at = at
        self.reason = reason
        self.backoffS = backoffS
    }

    enum CodingKeys: String, CodingKey {
        case at, reason
        case backoffS = "backoff_s"
    }
}

/// One file changed on the run's branch.
public struct FileChangeRecord: Codable, Sendable, Equatable {
    public var path: String
    public var additions: Int
    public var deletions: Int
    public var status: String

    public init(path: String, additions: Int, deletions: Int, status: String) {
        self.path = path
        self.additions = additions
        self.deletions = deletions
        self.status = status
    }
}

public struct TokenCounts: Codable, Sendable, Equatable {
    public var input: Int = 0
    public var output: Int = 0
    public var cacheRead: Int = 0
    public var cacheCreation: Int = 0

    public init() {}

    public init(input: Int, output: Int, cacheRead: Int, cacheCreation: Int) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheCreation = cacheCreation
    }

    enum CodingKeys: String, CodingKey {
        case input, output
        case cacheRead = "cache_read"
        case cacheCreation = "cache_creation"
    }
}

/// One of the devcontainer's lifecycle commands and how it ended (nil: it never ran).
public struct LifecycleResult: Codable, Sendable, Equatable {
    public var label: String
    public var exitCode: Int?

    public init(label: String, exitCode: Int?) {
        self.label = label
        self.exitCode = exitCode
    }

    enum CodingKeys: String, CodingKey {
        case label
        case exitCode = "exit_code"
    }
}

/// What Claude Code itself said the run cost (its `result` line): kept to compare with
/// what the model proxy counted. Anything in the sandbox can print such a line, so
/// nothing patina decides rests on it.
public struct AgentReport: Codable, Sendable, Equatable {
    public var costUSD: Double?
    public var numTurns: Int?
    public var tokens: TokenCounts?
    public var durationMS: Double?

    public init(costUSD: Double?, numTurns: Int?, tokens: TokenCounts?, durationMS: Double?) {
        self.costUSD = costUSD
        self.numTurns = numTurns
        self.tokens = tokens
        self.durationMS = durationMS
    }

    enum CodingKeys: String, CodingKey {
        case tokens
        case costUSD = "cost_usd"
        case numTurns = "num_turns"
        case durationMS = "duration_ms"
    }
}

/// A step of the run with its duration, for the step log and run.json.
public struct StepTiming: Codable, Sendable, Equatable {
    public var name: String
    public var seconds: Double
    public var detail: String?
}

/// `run.json`: the record of one run. Key names are part of patina's interface.
public struct RunRecord: Codable, Sendable {
    public var id: String
    public var task: String
    public var status: RunStatus
    public var reason: String?
    public var branch: String
    public var baseCommit: String
    public var headCommit: String?
    public var repository: String
    public var worktree: String
    public var runDir: String
    public var sessionLog: String
    public var transcript: String?
    public var started: Date
    public var finished: Date?
    public var durationS: Double?
    /// What the run's answers cost, counted by the model proxy (api.jsonl); nil when some
    /// answer's model or kind of usage has no price (see `unpriced`).
    public var costUSD: Double?
    /// The model's answers to the agent loop's requests, counted by the model proxy.
    public var numTurns: Int?
    public var tokens: TokenCounts?
    public var filesChanged: [FileChangeRecord] = []
    public var commits: Int?
    public var leftoversCommitted: Bool = false
    /// Leftovers a collection limit kept out of the branch (too large, too deep, too many,
    /// out of time): they stay in the worktree. The first ones only; the count says how many.
    public var leftoversSkipped: [SkippedLeftover]?
    public var leftoversSkippedCount: Int?
    /// The leftovers policy the run was collected under (`--max-file-size`, `max_new_paths`).
    public var maxFileSizeBytes: Int?
    public var maxNewPaths: Int?
    /// Files over `maxFileSizeBytes` in the agent's own commits: they stay (its business), flagged.
    public var largeFilesCommitted: [LargeFile]?
    /// Set when the disk floor stopped the run (`--min-free`).
    public var diskLow: DiskShortage?
    /// What of the agent's output was cut to stay bounded (its stderr, its stdout lines,
    /// session.jsonl, the transcript copy), each with how much was left out.
    public var outputTruncated: [String]?
    public var model: String?
    public var maxTurns: Int?
    public var timeoutS: Double
    public var image: String?
    public var baseImage: String
    public var exitCode: Int?
    public var claudeSessionID: String?
    public var firewall: Bool = true
    public var allowList: [String] = []
    public var seccompRelaxed: [String] = []
    public var steps: [StepTiming] = []
    /// Set for runs of a batch (`patina batch`, `patina yolo --attempts`).
    public var batch: String?
    public var attempt: Int?
    /// The task's name in a batch file, when it has one.
    public var name: String?
    public var check: CheckResult?
    /// A run with `--rounds`: each round in order; `check` is the last round's.
    public var rounds: [RoundRecord]?
    /// The round whose check passed; nil when none did (JSON `null` once the rounds ended,
    /// absent for a run without rounds).
    @NullOnceSet public var passedAtRound: Int? = nil
    /// Why the rounds stopped.
    public var stopReason: RoundStopReason?
    /// The agent's final message (its `result` text), for reports. Written by the agent: data, never markup.
    public var lastMessage: String?
    /// HTTP status of the API error the agent stopped on (429, 529, ...), if any, as the
    /// model proxy saw it.
    public var apiErrorStatus: Int?
    /// Requests the model proxy answered, and how many answers were 429 (rate limited)
    /// and 529 (overloaded).
    public var requests: Int?
    public var rateLimited: Int?
    public var overloaded: Int?
    /// Why `cost_usd` is null: each answer without a price, once.
    public var unpriced: [String]?
    /// The run's budget (`--max-cost`), if it had one.
    public var maxCostUSD: Double?
    /// The real model endpoint the proxy forwarded to (never a credential).
    public var modelEndpoint: String?
    /// Requests the model proxy refused for asking for a server-side network feature: feature → count.
    public var apiRefused: [String: Int]?
    /// Clients the model proxy answered and dropped for breaking its rules or caps.
    public var proxyRefusedClients: Int?
    /// What Claude Code's own result line said, for comparison.
    public var agentReported: AgentReport?
    public var requeues: [RequeueRecord]?
    /// What the run was asked with (flags and task), so `patina resume` and `patina shell`
    /// can rebuild the same sandbox. Absent in records written before it existed.
    public var options: YoloOptions?
    /// The run this one continues (`patina resume`).
    public var resumedFrom: String?
    /// When `patina discard` removed the run's branch, worktree and tags.
    public var discarded: Date?
    /// Changed paths that alter what a later sandbox allows or what runs on the user's
    /// machine (`SensitivePaths`): `.patina/`, `.devcontainer/`, CI, hooks, git attributes,
    /// build scripts. Empty when none; absent in older records.
    public var sensitiveChanges: [String]?
    /// The patina process that ran it, to tell a run in flight from one whose patina died.
    public var pid: Int32?
    /// Whether the branch's head does not descend from the base commit (the agent rewrote,
    /// rebased or reset history that existed before it); `history` says what was found,
    /// and names commits dated before the run started. Absent in older records.
    public var historyRewritten: Bool?
    public var history: HistoryCheck?
    /// The Claude Code in the image: its version, where it came from (`--agent-binary`,
    /// `agent_binary`, `installed`, `npm`) and the executable copied in.
    public var claudeVersion: String?
    public var claudeSource: String?
    public var claudeBinary: String?
    /// The repository's devcontainer.json the image was built on, and the keys patina did not act on.
    public var devcontainer: String?
    public var devcontainerNotActedOn: [String]?
    /// Toolchains found in the repository (or named in its config), as installed.
    public var toolchains: [Toolchain]?
    /// Registry presets added to the allow-list for those toolchains.
    public var autoPresets: [String]?
    /// Names those presets brought in that did not resolve in the sandbox: left out, the run went on.
    public var unresolvedPresetNames: [String]?
    /// Warm caches mounted into the run.
    public var caches: [String]?
    /// CA bundles of this machine the image trusts, and proxies passed in (host:port).
    public var hostCA: [String]?
    public var proxies: [String]?
    /// Allowed names answered with this machine's own addresses for them.
    public var dnsPinned: [PinnedName]?
    /// The devcontainer's lifecycle commands, as they ran before the agent.
    public var lifecycle: [LifecycleResult]?
    /// Runs that never created anything (bad input found late, an image that failed to build):
    /// nothing is on disk for them. Not part of run.json.
    public var createdNothing = false
    /// What stopped a run that ended in `error` (or created nothing), with its kind: the
    /// exit code is chosen from it at the edge. Not part of run.json.
    public var failure: PatinaError?
    /// Where the run executed: `local`, or `slurm` with its job array task and node.
    public var executor: RunExecutor?

    enum CodingKeys: String, CodingKey {
        case id, task, status, reason, branch, repository, worktree, started, finished, tokens, model, image, firewall, steps, commits, transcript
        case baseCommit = "base_commit"
        case headCommit = "head_commit"
        case runDir = "run_dir"
        case sessionLog = "session_log"
        case durationS = "duration_s"
        case costUSD = "cost_usd"
        case numTurns = "num_turns"
        case filesChanged = "files_changed"
        case leftoversCommitted = "leftovers_committed"
        case leftoversSkipped = "leftovers_skipped"
        case leftoversSkippedCount = "leftovers_skipped_count"
        case maxFileSizeBytes = "max_file_size_bytes"
        case maxNewPaths = "max_new_paths"
        case largeFilesCommitted = "large_files_committed"
        case diskLow = "disk_low"
        case outputTruncated = "output_truncated"
        case maxTurns = "max_turns"
        case timeoutS = "timeout_s"
        case baseImage = "base_image"
        case exitCode = "exit_code"
        case claudeSessionID = "claude_session_id"
        case allowList = "allow_list"
        case seccompRelaxed = "seccomp_relaxed"
        case batch, attempt, name, check, requeues, options, discarded, pid, rounds
        case passedAtRound = "passed_at_round"
        case stopReason = "stop_reason"
        case resumedFrom = "resumed_from"
        case sensitiveChanges = "sensitive_changes"
        case historyRewritten = "history_rewritten"
        case history
        case lastMessage = "last_message"
        case apiErrorStatus = "api_error_status"
        case claudeVersion = "claude_version"
        case claudeSource = "claude_source"
        case claudeBinary = "claude_binary"
        case devcontainer
        case devcontainerNotActedOn = "devcontainer_not_acted_on"
        case toolchains, caches, proxies, lifecycle
        case autoPresets = "auto_presets"
        case unresolvedPresetNames = "unresolved_preset_names"
        case hostCA = "host_ca"
        case dnsPinned = "dns_pinned"
        case requests, unpriced
        case rateLimited = "rate_limited"
        case overloaded
        case maxCostUSD = "max_cost_usd"
        case modelEndpoint = "model_endpoint"
        case apiRefused = "api_refused"
        case proxyRefusedClients = "proxy_refused_clients"
        case agentReported = "agent_reported"
        case executor
    }

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    public func json() -> String {
        // Encoding plain values cannot fail.
        String(decoding: try! Self.encoder.encode(self), as: UTF8.self)
    }

    /// The tags marking the run's work in the repository: `git diff START..END`.
    public var startTag: String { "session-\(id)-start" }
    public var endTag: String { "session-\(id)-end" }
    /// The mark at round `round`'s head, for a run with rounds.
    public static func roundTag(_ id: String, _ round: Int) -> String { "session-\(id)-round-\(round)" }
    /// Every mark the run may have made: start, end, and one per round it may have reached.
    public var sessionRefs: [String] {
        let rounds = max(self.rounds?.count ?? 0, options?.rounds ?? 1)
        return [startTag, endTag] + (rounds > 1 ? (1...rounds).map { Self.roundTag(id, $0) } : [])
    }

    public var additions: Int { filesChanged.reduce(0) { $0 + $1.additions } }
    public var deletions: Int { filesChanged.reduce(0) { $0 + $1.deletions } }
}

extension RunRecord {
    /// The trusted numbers of run.json: what the model proxy counted (live, or replayed
    /// from api.jsonl when its patina died first).
    public mutating func takeFigures(from usage: ModelUsage) {
        costUSD = usage.costUSD
        numTurns = usage.turns
        tokens = TokenCounts(usage.usage)
        requests = usage.requests
        rateLimited = usage.rateLimited
        overloaded = usage.overloaded
        unpriced = usage.unpriced.isEmpty ? nil : usage.unpriced
        apiRefused = usage.refusedFeatures.isEmpty ? nil : usage.refusedFeatures
        proxyRefusedClients = usage.refusedClients == 0 ? nil : usage.refusedClients
    }
}

extension TokenCounts {
    /// The record's counts of what the model proxy added up.
    init(_ usage: APIUsage) {
        self.init(input: usage.inputTokens, output: usage.outputTokens, cacheRead: usage.cacheReadTokens, cacheCreation: usage.cacheWriteTokens)
    }
}

/// Where a run executed (run.json's `executor`).
public struct RunExecutor: Codable, Sendable, Equatable {
    /// `local` or `slurm`.
    public var kind: String
    /// Slurm: the array job and task, `JOB_TASK`.
    public var jobID: String?
    /// The node (Slurm's node name) the run executed on.
    public var node: String?
    /// The host name the node's patina saw: where the run's processes and containers lived.
    public var host: String?
    /// Slurm: how often the task had been requeued when this run started on its node
    /// (`SLURM_RESTART_COUNT`); a higher count in squeue means this run's start is over.
    public var restarts: Int?

    public init(kind: String, jobID: String? = nil, node: String? = nil, host: String? = nil, restarts: Int? = nil) {
        self.kind = kind
        self.jobID = jobID
        self.node = node
        self.host = host
        self.restarts = restarts
    }

    /// This machine's host name, as a run's `host` records it.
    public static var thisHost: String { ProcessInfo.processInfo.hostName }

    enum CodingKeys: String, CodingKey {
        case kind, node, host, restarts
        case jobID = "job_id"
    }
}
