import Foundation
import PatinaModelProxy

/// What the user asked for on the command line, before validation.
public struct YoloOptions: Sendable, Codable, Equatable {
    public var task: String
    public var base: String?
    public var baseImage: String?
    public var agentBinary: String?
    public var model: String?
    public var maxTurns: Int?
    public var timeout: String?
    public var allow: [String] = []
    public var presets: [String] = []
    public var noFirewall = false
    public var quiet = false
    public var json = false
    /// A command run after the agent, in a fresh sandbox on a clean checkout of the collected head.
    public var check: String?
    public var checkTimeout: String?
    /// `--devcontainer NAME`: `.devcontainer/NAME/devcontainer.json` (`none`: no devcontainer).
    public var devcontainer: String?
    /// `--no-auto-presets`: the toolchains' registry presets are not added to the allow-list.
    public var noAutoPresets = false
    /// `--no-host-ca`: the image does not trust this machine's CA certificates.
    public var noHostCA = false
    /// `--max-cost USD`: the run's budget, as typed.
    public var maxCost: String?
    /// `--sparse DIR`: only these directories (and the top level's files) are checked out.
    public var sparse: [String] = []
    /// `--allow-api-feature NAME`: server-side network features of the model API the proxy forwards.
    public var allowAPIFeatures: [String] = []
    /// `--rounds N`: after a failing check, the same conversation goes on with the failures, up to N rounds.
    public var rounds: Int?
    /// `--check-report PATH`: the JUnit XML file the check writes, relative to its checkout.
    public var checkReport: String?
    /// `--max-file-size SIZE`: a leftover larger than this is not committed.
    public var maxFileSize: String?
    /// `--max-new-paths N`: at most this many new paths are committed from the worktree.
    public var maxNewPaths: Int?
    /// `--min-free SIZE|N%`: the agent is stopped when a disk the run uses has less free.
    public var minFree: String?

    public static let defaultCheckTimeout = "10m"

    public init(task: String) {
        self.task = task
    }

    enum CodingKeys: String, CodingKey {
        case task, base, baseImage, agentBinary, model, maxTurns, timeout, allow, presets, noFirewall, quiet, json
        case check, checkTimeout, devcontainer, noAutoPresets, noHostCA, sparse, allowAPIFeatures, maxCost
        case rounds, checkReport, maxFileSize, maxNewPaths, minFree
    }

    /// Records written by earlier versions lack the newer keys: each one is optional.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        task = try c.decode(String.self, forKey: .task)
        base = try c.decodeIfPresent(String.self, forKey: .base)
        baseImage = try c.decodeIfPresent(String.self, forKey: .baseImage)
        agentBinary = try c.decodeIfPresent(String.self, forKey: .agentBinary)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        maxTurns = try c.decodeIfPresent(Int.self, forKey: .maxTurns)
        timeout = try c.decodeIfPresent(String.self, forKey: .timeout)
        allow = try c.decodeIfPresent([String].self, forKey: .allow) ?? []
        presets = try c.decodeIfPresent([String].self, forKey: .presets) ?? []
        noFirewall = try c.decodeIfPresent(Bool.self, forKey: .noFirewall) ?? false
        quiet = try c.decodeIfPresent(Bool.self, forKey: .quiet) ?? false
        json = try c.decodeIfPresent(Bool.self, forKey: .json) ?? false
        check = try c.decodeIfPresent(String.self, forKey: .check)
        checkTimeout = try c.decodeIfPresent(String.self, forKey: .checkTimeout)
        devcontainer = try c.decodeIfPresent(String.self, forKey: .devcontainer)
        noAutoPresets = try c.decodeIfPresent(Bool.self, forKey: .noAutoPresets) ?? false
        noHostCA = try c.decodeIfPresent(Bool.self, forKey: .noHostCA) ?? false
        sparse = try c.decodeIfPresent([String].self, forKey: .sparse) ?? []
        allowAPIFeatures = try c.decodeIfPresent([String].self, forKey: .allowAPIFeatures) ?? []
        maxCost = try c.decodeIfPresent(String.self, forKey: .maxCost)
        rounds = try c.decodeIfPresent(Int.self, forKey: .rounds)
        checkReport = try c.decodeIfPresent(String.self, forKey: .checkReport)
        maxFileSize = try c.decodeIfPresent(String.self, forKey: .maxFileSize)
        maxNewPaths = try c.decodeIfPresent(Int.self, forKey: .maxNewPaths)
        minFree = try c.decodeIfPresent(String.self, forKey: .minFree)
    }

    /// The checks that need nothing but the flags themselves; run by the
    /// command before anything else and again by the planner.
    public func validateFlags() throws {
        guard !task.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw PlanError("the task is empty: say what the agent should do, e.g. patina yolo \"add a health endpoint\"")
        }
        if let maxTurns, maxTurns < 1 { throw PlanError("--max-turns must be at least 1 (got \(maxTurns))") }
        if let timeout { _ = try DurationParser.seconds(timeout) }
        if let check, check.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw PlanError("--check is empty: give the command that tells whether the task is done, e.g. --check 'make test'")
        }
        if let checkTimeout { _ = try DurationParser.seconds(checkTimeout) }
        if let rounds {
            if rounds < 1 { throw PlanError("--rounds must be at least 1 (got \(rounds))") }
            if rounds > 1 && check == nil {
                throw PlanError("--rounds \(rounds) needs --check: the check's failures are what the next round is given")
            }
            if rounds > Self.maxRounds { throw PlanError("--rounds must be at most \(Self.maxRounds) (got \(rounds))") }
        }
        if let checkReport {
            if check == nil { throw PlanError("--check-report needs --check: the report is what the check writes") }
            _ = try Self.reportPath(checkReport)
        }
        if let maxCost { _ = try Budget.parse(maxCost, setting: "--max-cost") }
        for directory in sparse { _ = try Self.sparseDirectory(directory) }
        if let maxFileSize { _ = try ByteSize.parse(maxFileSize, setting: "--max-file-size") }
        if let maxNewPaths, maxNewPaths < 1 { throw PlanError("--max-new-paths must be at least 1 (got \(maxNewPaths))") }
        if let minFree { _ = try DiskFloor.parse(minFree, setting: "--min-free") }
        for feature in allowAPIFeatures {
            if let problem = APIPolicy.problem(with: feature) { throw PlanError("--allow-api-feature: \(problem)") }
        }
    }

    public static let maxRounds = 50

    /// A `--check-report` path as a path in the check's checkout: relative, no "." or ".." step.
    public static func reportPath(_ text: String) throws -> String {
        let steps = text.split(separator: "/", omittingEmptySubsequences: true)
        guard !text.hasPrefix("/"), !steps.isEmpty, !steps.contains(where: { $0 == "." || $0 == ".." }),
              !text.contains("\0"), text.utf8.count <= 1024 else {
            throw PlanError("--check-report \(Escaping.visible(text)): give a file relative to the checkout the check runs in, e.g. --check-report report.xml")
        }
        return steps.joined(separator: "/")
    }

    /// A `--sparse` directory as a path in the repository ("src/api"): relative, no "." or
    /// ".." step, a trailing "/" allowed.
    public static func sparseDirectory(_ text: String) throws -> String {
        let steps = text.split(separator: "/", omittingEmptySubsequences: false)
        let trimmed = text.hasSuffix("/") ? steps.dropLast() : steps[...]
        guard !text.hasPrefix("/"), !trimmed.isEmpty, !trimmed.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw PlanError("--sparse \(text): give a directory of the repository relative to its top, e.g. --sparse src/api")
        }
        return trimmed.joined(separator: "/")
    }
}

/// Errors that mean the user asked for something that cannot be: one line, exit 2,
/// nothing changed.
public protocol BadInput: Error {}

/// Bad input, found while planning, before anything is created.
public struct PlanError: BadInput, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The credential patina forwards to the model API, and the endpoint it forwards to.
/// The value stays in patina: the sandbox gets a placeholder under the same variable
/// name (so Claude Code sends the same kind of header), and patina's model proxy puts
/// the real one on each request it forwards.
public struct Credentials: Sendable {
    /// In the order they are used when several are set (Claude Code's own order).
    public static let secretNames = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"]
    /// Not secret: passed into the sandbox by name when set.
    public static let passThroughNames = ["ANTHROPIC_MODEL"]

    /// The variable whose value is forwarded, and that the sandbox holds a placeholder in.
    public let variable: String
    public let upstream: UpstreamCredential
    /// The real model endpoint: ANTHROPIC_BASE_URL, else the Anthropic API.
    public let baseURL: URL
    public let usesOAuth: Bool
    /// Names from `passThroughNames` that are set.
    public let passThrough: [String]
    /// Every credential value in the environment, to redact from what patina writes and prints.
    public let secretValues: [String]

    /// The credential values set in `environment`, to redact (short ones would match everywhere).
    public static func secretValues(in environment: [String: String]) -> [String] {
        secretNames.compactMap { environment[$0] }.filter { $0.count >= 8 }
    }

    /// `required: false` (`patina detect`): plans without credentials too.
    public init(environment: [String: String], required: Bool = true) throws {
        let found = Self.secretNames.first(where: { !(environment[$0] ?? "").isEmpty })
        guard found != nil || !required else {
            throw PlanError("no credentials for Claude Code: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN (and ANTHROPIC_BASE_URL for another endpoint)")
        }
        let variable = found ?? "ANTHROPIC_API_KEY"
        let value = environment[variable] ?? ""
        self.variable = variable
        upstream = UpstreamCredential(scheme: variable == "ANTHROPIC_API_KEY" ? .apiKey : .bearer, value: value)
        usesOAuth = variable == "CLAUDE_CODE_OAUTH_TOKEN"
        passThrough = Self.passThroughNames.filter { !(environment[$0] ?? "").isEmpty }
        secretValues = Self.secretValues(in: environment)
        if let raw = environment["ANTHROPIC_BASE_URL"], !raw.isEmpty {
            guard let url = URL(string: raw), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
                  let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil
            else {
                throw PlanError("ANTHROPIC_BASE_URL \"\(raw)\" is not an http(s) URL (e.g. https://api.anthropic.com)")
            }
            baseURL = url
        } else {
            baseURL = ModelProxyConfiguration.defaultUpstream
        }
    }
}

extension YoloOptions {
    /// These options with what `flags` sets on top: a value given there wins, allow
    /// entries and presets are added, `--no-firewall` only ever switches the firewall off.
    /// The task, base and output flags come from `flags`.
    public func overridden(by flags: YoloOptions) -> YoloOptions {
        var o = self
        o.task = flags.task
        o.base = flags.base
        o.baseImage = flags.baseImage ?? baseImage
        o.agentBinary = flags.agentBinary ?? agentBinary
        o.model = flags.model ?? model
        o.maxTurns = flags.maxTurns ?? maxTurns
        o.timeout = flags.timeout ?? timeout
        o.allow = allow + flags.allow.filter { !allow.contains($0) }
        o.presets = presets + flags.presets.filter { !presets.contains($0) }
        o.noFirewall = noFirewall || flags.noFirewall
        o.check = flags.check ?? check
        o.checkTimeout = flags.checkTimeout ?? checkTimeout
        o.devcontainer = flags.devcontainer ?? devcontainer
        o.noAutoPresets = noAutoPresets || flags.noAutoPresets
        o.noHostCA = noHostCA || flags.noHostCA
        o.maxCost = flags.maxCost ?? maxCost
        o.rounds = flags.rounds ?? rounds
        o.checkReport = flags.checkReport ?? checkReport
        o.maxFileSize = flags.maxFileSize ?? maxFileSize
        o.maxNewPaths = flags.maxNewPaths ?? maxNewPaths
        o.minFree = flags.minFree ?? minFree
        o.allowAPIFeatures = allowAPIFeatures + flags.allowAPIFeatures.filter { !allowAPIFeatures.contains($0) }
        o.quiet = flags.quiet
        o.json = flags.json
        return o
    }
}

/// Budgets in US dollars: `--max-cost`, `--max-total-cost`, `max_cost`.
public enum Budget {
    /// A positive amount, written `2.50` or `$2.50`.
    public static func parse(_ text: String, setting: String) throws -> Double {
        var trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("$") { trimmed.removeFirst() }
        guard let value = Double(trimmed), value.isFinite, value > 0,
              trimmed.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) else {
            throw PlanError("\(setting) must be a positive number of US dollars, e.g. 2.50 (got \"\(text)\")")
        }
        return value
    }

    public static func check(_ value: Double, setting: String) throws -> Double {
        guard value.isFinite, value > 0 else {
            throw PlanError("\(setting) must be a positive number of US dollars, e.g. 2.50 (got \(value))")
        }
        return value
    }
}
