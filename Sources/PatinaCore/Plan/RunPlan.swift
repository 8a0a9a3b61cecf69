import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox
import PatinaTemplates

/// Everything a run needs, validated. Building a plan creates nothing: bad
/// input fails here with one clear line, before any branch, worktree, file or
/// container exists.
public struct RunPlan: Sendable {
    public internal(set) var id: String
    public internal(set) var task: String
    public let repository: Repository
    public let repositoryRoot: URL
    public internal(set) var baseCommit: ObjectID
    public internal(set) var branch: String
    public var store: RunStore
    public internal(set) var runDirectory: URL
    public internal(set) var worktree: URL
    public let config: PatinaConfig
    public let templates: TemplateSet
    public internal(set) var timeoutSeconds: Double
    public let model: String?
    public let maxTurns: Int?
    /// The image the sandbox starts from without a devcontainer, and the firewall's image.
    public let baseImage: String
    /// The repository's devcontainer or toolchains, Claude Code, the host's CAs and proxy.
    public let sandbox: SandboxSetup
    public let credentials: Credentials
    public let agentUID: UInt32
    public let agentGID: UInt32
    public let limits: ResourceLimits
    public let firewallEnabled: Bool
    public let allowEntries: [String]
    public let presets: [String]
    public let capAdd: [String]
    public let options: YoloOptions
    /// `--check CMD` and its own timeout.
    public let check: String?
    public let checkTimeoutSeconds: Double
    /// `--check-report`: the JUnit file the check writes, relative to its checkout.
    public let checkReport: String?
    /// `--rounds`: how many agent steps (each followed by the check) the run may take.
    public let rounds: Int
    /// Which round this plan is for (1 for the task; later rounds continue the conversation).
    public internal(set) var round = 1
    /// Set when the run belongs to a batch.
    public var batchID: String?
    public var attempt: Int?
    public var name: String?
    /// CLAUDE_CODE_MAX_RETRIES for the agent, from patina's environment: how long
    /// Claude Code itself retries a rate-limited API before giving up.
    public let claudeMaxRetries: Int?
    /// Set for `patina resume`: the conversation this run continues, on the earlier
    /// run's branch and worktree.
    public internal(set) var resume: ResumeSource? = nil
    /// Set when `patina batch resume` continues a run interrupted between its rounds: the run
    /// as it was; this plan runs its remaining rounds under the same id, branch and worktree.
    public internal(set) var continuing: RunRecord? = nil
    /// The run's budget in US dollars (`--max-cost`, `max_cost`): the model proxy refuses
    /// requests once the run's answers cost this much.
    public internal(set) var maxCostUSD: Double?
    /// What answers cost: the shipped table with the repository's `model_prices` on top.
    public let prices: PriceTable
    /// A budget shared with the other runs of a batch (`--max-total-cost`).
    public var sharedBudget: SpendingLimit?
    /// `--sparse`: the only directories (with the top level's files) the worktree holds, as
    /// paths in the repository.
    public let sparse: [String]
    /// What of the model API the run's proxy forwards (`allow_api_features` and `--allow-api-feature`).
    public let apiPolicy: APIPolicy
    /// What collection commits from the worktree and the free space the run leaves on its disks.
    public let disk: DiskPolicy
    /// Set for `patina shell`: the user's command instead of the agent, on an earlier
    /// run's branch and worktree. No record is kept and no credential enters.
    public internal(set) var shell: ShellRequest? = nil
    /// Set when the model proxy runs in another patina (a Slurm task's run: the submitting
    /// patina serves it and holds the credential): the sandbox's endpoint and placeholder.
    /// No proxy is started here and no credential is known here.
    public var remoteModel: ModelAccess? = nil
    /// Where the run executes, recorded in run.json (nil: this machine, as always).
    public var executor: RunExecutor? = nil

    /// The Claude Code executable copied into the image; nil when npm installs it.
    public var agentBinary: URL? { sandbox.claude.binary }

    /// The earlier run whose branch and worktree this one works on (resume, shell).
    public var continuesRun: String? { resume?.runID ?? shell?.runID }

    /// The worktree's name in the repository's git directory (the id of the run that
    /// created it: a resumed run works in its predecessor's worktree).
    public var worktreeName: String { worktree.lastPathComponent }

    /// The same run under a new id (a new branch, worktree and run directory):
    /// for a run that is queued again.
    public func replanned() throws -> RunPlan {
        var copy = self
        copy.id = Planner.reserveID(task: task, repository: repository, store: store)
        copy.branch = "patina/\(copy.id)"
        copy.runDirectory = store.runDirectory(copy.id)
        copy.worktree = store.worktree(copy.id)
        return copy
    }

    /// The same plan under the id another patina chose for it (a Slurm task's run is
    /// planned by the submitting patina, then again on its node).
    public func withID(_ id: String) -> RunPlan {
        var copy = self
        copy.id = id
        copy.branch = "patina/\(id)"
        copy.runDirectory = store.runDirectory(id)
        copy.worktree = store.worktree(id)
        return copy
    }

    public static let defaultBaseImage = "debian:bookworm-slim"
    public static let pinnedClaudeVersion = "2.1.329"
    public static let defaultTimeout = "60m"
}

/// The earlier run a resumed run continues.
public struct ResumeSource: Sendable, Equatable {
    public let runID: String
    /// Claude Code's session id, passed to `claude --resume`.
    public let sessionID: String
    /// patina's copy of the earlier conversation (the run directory's transcript.jsonl).
    public let transcript: URL
}

/// `patina shell RUN [-- CMD...]`.
public struct ShellRequest: Sendable, Equatable {
    /// The command's arguments; empty for an interactive shell.
    public var command: [String]
    public var runID: String
}

/// Resource limits of the agent's container.
public struct ResourceLimits: Sendable, Equatable {
    public var memory = "4g"
    public var cpus = "2"
    public var pids = 512
    public var tmp = "1g"

    /// The agent's commands may hold this many of the container's processes; the rest
    /// is Claude Code's, so a fork flood fails the command, not the agent.
    public var commandProcesses: Int { pids - max(32, pids / 8) }
}

public enum Planner {
    public static func plan(
        _ options: YoloOptions,
        directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        environment: [String: String] = ProcessInfo.processInfo.environment,
        engine: DockerEngine = DockerEngine(),
        checkEngine: Bool = true,
        requireCredentials: Bool = true
    ) async throws -> RunPlan {
        try options.validateFlags()
        let task = options.task.trimmingCharacters(in: .whitespacesAndNewlines)
        if let binary = options.agentBinary {
            _ = try ClaudeCodeLocator.check(binary, what: "--agent-binary \(binary)", base: nil, environment: environment)
        }
        let credentials = try Credentials(environment: environment, required: requireCredentials)

        let repository = try Repository.discover(from: directory)
        guard let root = repository.workingDirectory else {
            throw PlanError("\(repository.commonDirectory.path) is a bare repository; run patina inside a checkout")
        }
        let baseRevision = options.base ?? "HEAD"
        let baseCommit = try repository.resolveCommit(baseRevision)
        let sparse = try options.sparse.map { text in
            let directory = try YoloOptions.sparseDirectory(text)
            guard try repository.isDirectory(directory, in: baseCommit) else {
                throw PlanError("--sparse \(text): \(baseRevision) (\(baseCommit.short)) has no directory \(directory); give a directory it has")
            }
            return directory
        }

        let overrides = root.appendingPathComponent(".patina")
        let config = try PatinaConfig.load(from: overrides)
        let timeoutText = options.timeout ?? config.timeout ?? RunPlan.defaultTimeout
        let timeout = try DurationParser.seconds(timeoutText)
        if let turns = config.maxTurns, turns < 1 { throw PlanError("max_turns in .patina/config.json must be at least 1") }

        let templates = TemplateSet(dataDirectory: try DataDirectory.locate(environment: environment), overrideDirectory: overrides)
        var limits = ResourceLimits()
        if let l = config.limits {
            if let m = l.memory { limits.memory = m }
            if let c = l.cpus { limits.cpus = c }
            if let p = l.pids { limits.pids = p }
            if let t = l.tmp { limits.tmp = t }
        }
        try validate(limits)

        let store = RunStore(home: RunStore.home(environment: environment), repositoryCommonDirectory: repository.commonDirectory)
        let id = reserveID(task: task, repository: repository, store: store)
        let branch = "patina/\(id)"
        let checkTimeout = try DurationParser.seconds(options.checkTimeout ?? YoloOptions.defaultCheckTimeout)
        let check = options.check?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let rounds = config.rounds, rounds < 1 || rounds > YoloOptions.maxRounds {
            throw PlanError("rounds in .patina/config.json must be between 1 and \(YoloOptions.maxRounds)")
        }
        // A configured number of rounds applies to runs with a check; `--rounds` without one is refused.
        let rounds = check == nil ? 1 : options.rounds ?? config.rounds ?? 1
        let checkReport = try check == nil ? nil : (options.checkReport ?? config.checkReport).map(YoloOptions.reportPath)

        // Asked while the rest is planned; its answer counts before anything is created.
        let engineCheck = Task { if checkEngine { try await engine.ensureAvailable() } }
        let baseImage = options.baseImage ?? config.baseImage ?? RunPlan.defaultBaseImage
        let presets = (config.presets ?? []) + options.presets
        let sandbox: SandboxSetup
        do {
            try validateImageReference(baseImage)
            sandbox = try await SandboxSetup.plan(
                options: options, config: config, repositoryRoot: root, environment: environment,
                firewallEnabled: !options.noFirewall, explicitPresets: presets)
        } catch {
            // Nothing is left running behind the first error.
            _ = await engineCheck.result
            throw error
        }
        try await engineCheck.value
        let maxCost = try options.maxCost.map { try Budget.parse($0, setting: "--max-cost") }
            ?? config.maxCost.map { try Budget.check($0, setting: "max_cost in .patina/config.json") }
        let prices = try loadPrices(templates: templates, config: config)
        let model = options.model ?? config.model
        if maxCost != nil, let model { try requirePrice(of: model, in: prices, budget: "--max-cost") }
        for feature in config.allowAPIFeatures ?? [] {
            if let problem = APIPolicy.problem(with: feature) {
                throw PlanError("allow_api_features in .patina/config.json: \(problem)")
            }
        }
        let apiFeatures = (config.allowAPIFeatures ?? []) + options.allowAPIFeatures
        let disk = try DiskPolicy.plan(options: options, config: config)

        let (uid, gid) = agentIDs()
        return RunPlan(
            id: id, task: task, repository: repository, repositoryRoot: root, baseCommit: baseCommit,
            branch: branch, store: store, runDirectory: store.runDirectory(id), worktree: store.worktree(id),
            config: config, templates: templates, timeoutSeconds: timeout,
            model: model, maxTurns: options.maxTurns ?? config.maxTurns,
            baseImage: baseImage, sandbox: sandbox, credentials: credentials,
            agentUID: uid, agentGID: gid, limits: limits,
            firewallEnabled: !options.noFirewall,
            allowEntries: (config.allow ?? []) + options.allow,
            presets: presets + sandbox.autoPresets,
            capAdd: try Capabilities.validate(config.capAdd ?? []),
            options: options,
            check: check, checkTimeoutSeconds: checkTimeout, checkReport: checkReport, rounds: rounds,
            batchID: nil, attempt: nil, name: nil,
            claudeMaxRetries: environment["CLAUDE_CODE_MAX_RETRIES"].flatMap { Int($0) },
            maxCostUSD: maxCost, prices: prices, sharedBudget: nil, sparse: sparse,
            apiPolicy: APIPolicy(allowed: apiFeatures), disk: disk)
    }

    /// With a budget, a model must have a price: its spending could not be counted otherwise.
    static func requirePrice(of model: String, in prices: PriceTable, budget: String) throws {
        guard prices.price(for: model) == nil else { return }
        throw PlanError("\(budget) needs the price of model \(model), which patina does not know; add it under \"model_prices\" in .patina/config.json")
    }

    /// The shipped price table (a repository may override the file in .patina/templates/)
    /// with `model_prices` from .patina/config.json on top.
    static func loadPrices(templates: TemplateSet, config: PatinaConfig) throws -> PriceTable {
        let file = "templates/model-prices.json"
        do {
            var table = try PriceTable.parse(Data(try templates.read(file).utf8), source: try templates.url(for: file).path)
            if let extra = config.modelPrices { try table.add(extra, source: ".patina/config.json model_prices") }
            return table
        } catch let error as PriceTable.Invalid {
            throw PlanError(error.description)
        }
    }

    /// A run id no other run of this process, branch or run directory holds.
    static func reserveID(task: String, repository: Repository, store: RunStore) -> String {
        RunID.reserve(task: task) { candidate in
            repository.branchExists("patina/\(candidate)") || FileManager.default.fileExists(atPath: store.runDirectory(candidate).path)
        }
    }

    /// The agent runs as the invoking user, or as uid 1000 when that is root.
    static func agentIDs() -> (UInt32, UInt32) {
        let uid = getuid(), gid = getgid()
        return uid == 0 ? (1000, 1000) : (uid, gid)
    }

    static func validate(_ limits: ResourceLimits) throws {
        let size = #"^[0-9]+[bkmg]?$"#
        guard limits.memory.lowercased().range(of: size, options: .regularExpression) != nil else {
            throw PlanError("invalid memory limit \"\(limits.memory)\": use e.g. 4g or 512m")
        }
        guard let cpus = Double(limits.cpus), cpus > 0 else {
            throw PlanError("invalid cpus limit \"\(limits.cpus)\": use a positive number like 2 or 1.5")
        }
        guard limits.pids >= 64 else { throw PlanError("invalid pids limit \(limits.pids): use at least 64 (the agent's commands get all but 32 of them)") }
        guard limits.tmp.lowercased().range(of: size, options: .regularExpression) != nil else {
            throw PlanError("invalid tmp size \"\(limits.tmp)\": use e.g. 1g or 256m")
        }
    }

    /// Docker's image reference grammar (distribution/reference): an optional registry
    /// host[:port], lower-case path components, an optional tag and digest. Nothing else
    /// (no whitespace, no newline) can reach the Dockerfile's FROM line.
    static let imageReference: NSRegularExpression = {
        let domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
        let domain = "\(domainComponent)(?:\\.\(domainComponent))*(?::[0-9]+)?"
        let pathComponent = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
        let name = "(?:\(domain)/)?\(pathComponent)(?:/\(pathComponent))*"
        let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
        let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
        return try! NSRegularExpression(pattern: "\\A\(name)(?::\(tag))?(?:@\(digest))?\\z")
    }()

    static func validateImageReference(_ image: String) throws {
        let range = NSRange(image.startIndex..., in: image)
        guard image.utf8.count <= 255, imageReference.firstMatch(in: image, range: range) != nil else {
            throw PlanError("invalid --base-image \"\(Escaping.visible(image))\": expected an image reference like debian:bookworm-slim or registry.example:5000/team/image:tag")
        }
    }
}

/// How the agent reaches the model: its run's proxy, with a placeholder credential
/// that is worth nothing anywhere else.
public struct ModelAccess: Sendable, Equatable {
    /// The proxy's URL, the sandbox's ANTHROPIC_BASE_URL.
    public var baseURL: String
    /// The variable Claude Code reads the credential from (the one the user set).
    public var variable: String
    public var placeholder: String

    public init(baseURL: String, variable: String, placeholder: String) {
        self.baseURL = baseURL
        self.variable = variable
        self.placeholder = placeholder
    }
}
