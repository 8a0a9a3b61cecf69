import ArgumentParser
import PatinaCore

/// The flags of one run, shared by `yolo` and `batch` (in a batch they are the
/// defaults that a line's keys override).
struct RunFlags: ParsableArguments {
    @Option(help: "Start the branch at this commit, branch or tag (default: HEAD).")
    var base: String?

    @OptionGroup var sandbox: SandboxFlags

    @Option(name: .customLong("max-turns"), parsing: .unconditional, help: "Stop the agent after this many turns.")
    var maxTurns: Int?

    @Option(help: "Stop the agent after this long, e.g. 90s, 15m, 2h (default: 60m). The run is still collected.")
    var timeout: String?

    @Option(help: ArgumentHelp(
        "After the agent, run CMD in a fresh sandbox (same image, protections, firewall) on a clean checkout of the collected branch; its exit code is recorded as the run's check.",
        valueName: "cmd"))
    var check: String?

    @Option(name: .customLong("check-timeout"), help: "Stop the check after this long (default: 10m).")
    var checkTimeout: String?

    @Option(name: .customLong("rounds"), parsing: .unconditional, help: ArgumentHelp(
        "With --check: when the check fails, the same conversation goes on in a fresh sandbox on the same branch with the check's failures, until it passes or N rounds, the budget or the timeout are used up (default: rounds in .patina/config.json, else 1).",
        valueName: "n"))
    var rounds: Int?

    @Option(name: .customLong("check-report"), help: ArgumentHelp(
        "The JUnit XML file the check writes, relative to its checkout (pytest --junitxml, swift test --xunit-output, …): its failing tests go into the record and the next round's follow-up.",
        valueName: "path"))
    var checkReport: String?

    @Option(name: .customLong("max-cost"), help: ArgumentHelp(
        "The run's budget in US dollars: once its model answers cost this much, patina's model proxy refuses further requests and the run ends budget_exceeded (still collected). Default: max_cost in .patina/config.json, else none.",
        valueName: "usd"))
    var maxCost: String?

    @Option(name: .customLong("allow-api-feature"), help: ArgumentHelp(
        "Let the model proxy forward a server-side network feature of the model API (the provider's servers reach the network for it, past the sandbox's firewall): mcp, web_search, web_fetch, code_execution, url_sources; or beta:NAME, field:NAME, tool:TYPE. Repeatable. Default: allow_api_features in .patina/config.json, else none.",
        valueName: "name"))
    var allowAPIFeatures: [String] = []

    @Option(name: .customLong("sparse"), help: ArgumentHelp(
        "Check out only DIR (and the files at the top of the repository) into the run's worktree: for a big repository whose task needs a part of it. The rest stays on the branch as it is. Repeatable.",
        valueName: "dir"))
    var sparse: [String] = []

    @Option(name: .customLong("max-file-size"), help: ArgumentHelp(
        "A file the agent leaves uncommitted that is larger than SIZE (e.g. 50m, 1g) is not committed by patina: it stays in the worktree and run.json lists it (leftovers_skipped). Default: max_file_size in .patina/config.json, else 50m.",
        valueName: "size"))
    var maxFileSize: String?

    @Option(name: .customLong("max-new-paths"), help: ArgumentHelp(
        "At most N new paths the agent leaves uncommitted are committed by patina; the rest stay in the worktree, listed. Default: max_new_paths in .patina/config.json, else 10000.",
        valueName: "n"))
    var maxNewPaths: Int?

    @Option(name: .customLong("min-free"), help: ArgumentHelp(
        "Stop the agent (the run is still collected, status error) when the filesystem holding the run's worktree or patina's home has less free space than SIZE (e.g. 2g) or N% of it. Default: min_free in .patina/config.json, else the smaller of 2g and 10%; 0 switches it off.",
        valueName: "size"))
    var minFree: String?

    @Flag(help: "No progress output (warnings still show).")
    var quiet = false

    @Flag(help: "Print the record as one JSON object on stdout at the end.")
    var json = false

    func options(task: String, model: String?) -> YoloOptions {
        var options = YoloOptions(task: task)
        sandbox.apply(to: &options)
        options.base = base
        options.model = model
        options.maxTurns = maxTurns
        options.timeout = timeout
        options.quiet = quiet
        options.json = json
        options.check = check
        options.checkTimeout = checkTimeout
        options.maxCost = maxCost
        options.rounds = rounds
        options.checkReport = checkReport
        options.sparse = sparse
        options.allowAPIFeatures = allowAPIFeatures
        options.maxFileSize = maxFileSize
        options.maxNewPaths = maxNewPaths
        options.minFree = minFree
        return options
    }
}

/// What the sandbox is built from and lets through: a run's flags, and `patina detect`'s
/// (which shows what a run with them would get).
struct SandboxFlags: ParsableArguments {
    @Option(name: .customLong("base-image"), help: "Image the sandbox is built from (default: debian:bookworm-slim); beside a repository devcontainer, the firewall helper's base only.")
    var baseImage: String?

    @Option(name: .customLong("agent-binary"), help: "Copy this local Linux `claude` executable into the image (default: agent_binary in .patina/config.json, else the claude installed on this machine, else npm).")
    var agentBinary: String?

    @Option(help: ArgumentHelp("Build on .devcontainer/NAME/devcontainer.json (`none`: ignore the repository's devcontainer).", valueName: "name"))
    var devcontainer: String?

    @Flag(name: .customLong("no-auto-presets"), help: "Do not add the detected toolchains' registry presets (pypi, npm, …) to the allow-list.")
    var noAutoPresets = false

    @Flag(name: .customLong("no-host-ca"), help: "Do not make the image trust this machine's CA certificates.")
    var noHostCA = false

    @Option(name: .customLong("allow"), help: "Allow egress to HOST[:PORT] (a name, *.suffix, IP or CIDR). Repeatable.")
    var allow: [String] = []

    @Option(name: .customLong("preset"), help: "Switch on a firewall preset from firewall/presets (e.g. github, pypi). Repeatable.")
    var presets: [String] = []

    @Flag(name: .customLong("no-firewall"), help: "Without the egress firewall (a run records it in its record).")
    var noFirewall = false

    func apply(to options: inout YoloOptions) {
        options.baseImage = baseImage
        options.agentBinary = agentBinary
        options.devcontainer = devcontainer
        options.noAutoPresets = noAutoPresets
        options.noHostCA = noHostCA
        options.allow = allow
        options.presets = presets
        options.noFirewall = noFirewall
    }
}

/// How many runs at once, for `--attempts` and `batch`.
struct BatchFlags: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp(
        "How many runs are in flight at once. Default: what this machine holds given the per-run limits: 75% of its memory divided by one run's memory limit (4g unless .patina/config.json says otherwise), at most 2 per CPU core, at least 1.",
        valueName: "n"))
    var jobs: Int?

    @Option(name: .customLong("max-total-cost"), help: ArgumentHelp(
        "The batch's budget in US dollars, shared by all its runs: once their answers cost this much, running runs are refused further model requests (budget_exceeded) and queued runs do not start.",
        valueName: "usd"))
    var maxTotalCost: String?

    /// The parsed budget (checked in `validate()`).
    func totalBudget() throws -> Double? {
        try maxTotalCost.map { try Budget.parse($0, setting: "--max-total-cost") }
    }
}

/// Where a batch's runs execute (`--on`) and the Slurm executor's options.
struct ExecutorFlags: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Where the runs execute: local (this machine, --jobs at once) or slurm (one job array; nodes with Docker, the repository and patina's home on a shared filesystem; see docs/CLUSTER.md).",
        valueName: "executor"))
    var on: String = ExecutorKind.local.rawValue

    @Option(name: .customLong("slurm-partition"), help: "--on slurm: the partition (sbatch --partition).")
    var slurmPartition: String?

    @Option(name: .customLong("slurm-account"), help: "--on slurm: the account (sbatch --account).")
    var slurmAccount: String?

    @Option(name: .customLong("slurm-time"), help: "--on slurm: each task's time limit (sbatch --time, e.g. 2:00:00).")
    var slurmTime: String?

    @Option(name: .customLong("slurm-arg"), parsing: .unconditionalSingleValue, help: ArgumentHelp("--on slurm: one more sbatch argument, as given. Repeatable.", valueName: "arg"))
    var slurmArgs: [String] = []

    @Option(name: .customLong("proxy-listen"), help: ArgumentHelp(
        "--on slurm: the address of this machine where patina serves the runs' model proxy; the nodes' sandboxes must reach it (default: the docker bridge's gateway, right only when the nodes are this machine).",
        valueName: "addr"))
    var proxyListen: String?

    var kind: ExecutorKind { ExecutorKind(rawValue: on) ?? .local }

    func validate() throws {
        guard let kind = ExecutorKind(rawValue: on) else {
            throw ValidationError("--on \(on): use local or slurm")
        }
        if kind == .local && (slurmPartition != nil || slurmAccount != nil || slurmTime != nil || !slurmArgs.isEmpty || proxyListen != nil) {
            throw ValidationError("--slurm-* and --proxy-listen go with --on slurm")
        }
        if let address = proxyListen, !address.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) {
            throw ValidationError("--proxy-listen \(address): give an IP address of this machine")
        }
    }

    var slurm: SlurmOptions {
        SlurmOptions(partition: slurmPartition, account: slurmAccount, time: slurmTime, extraArguments: slurmArgs, proxyListen: proxyListen)
    }
}
