import Foundation

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

    public static let defaultCheckTimeout = "10m"

    public init(task: String) {
        self.task = task
    }

    enum CodingKeys: String, CodingKey {
        case task, base, baseImage, agentBinary, model, maxTurns, timeout, allow, presets, noFirewall, quiet, json
        case check, checkTimeout, devcontainer, noAutoPresets, noHostCA
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

/// The credentials and endpoint Claude Code gets, by name only: values stay in
/// patina's environment and reach the container through `docker run -e NAME`.
public struct Credentials: Sendable, Equatable {
    public static let secretNames = ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"]
    public static let passThroughNames = secretNames + ["ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"]

    /// Names of the variables that are set (non-empty) in the environment.
    public let present: [String]
    public let baseURL: URL?
    public let usesOAuth: Bool
    /// The secret values themselves, only to redact them from what patina writes.
    public let secretValues: [String]

    /// `required: false` (`patina detect`): plans without credentials too.
    public init(environment: [String: String], required: Bool = true) throws {
        present = Self.passThroughNames.filter { !(environment[$0] ?? "").isEmpty }
        secretValues = Self.secretNames.compactMap { environment[$0] }.filter { $0.count >= 8 }
        guard present.contains(where: Self.secretNames.contains) || !required else {
            throw PlanError("no credentials for Claude Code: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN (and ANTHROPIC_BASE_URL for another endpoint)")
        }
        usesOAuth = present.contains("CLAUDE_CODE_OAUTH_TOKEN") && !present.contains("ANTHROPIC_API_KEY")
        if let raw = environment["ANTHROPIC_BASE_URL"], !raw.isEmpty {
            guard let url = URL(string: raw), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw PlanError("ANTHROPIC_BASE_URL \"\(raw)\" is not an http(s) URL")
            }
            baseURL = url
        } else {
            baseURL = nil
        }
    }

    /// host:port of the endpoint the agent must reach.
    public var endpoint: (host: String, port: Int) {
        guard let baseURL, let host = baseURL.host else { return ("api.anthropic.com", 443) }
        return (host, baseURL.port ?? (baseURL.scheme == "https" ? 443 : 80))
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
        o.quiet = flags.quiet
        o.json = flags.json
        return o
    }
}
