import ArgumentParser
import Foundation
import PatinaCore
import PatinaModelProxy
import PatinaSandbox

/// `patina batch FILE`: many runs side by side, scored by a check, compared in one report.
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run a file of tasks (× attempts × models) side by side, each on its own branch.",
        subcommands: [BatchRunCommand.self, BatchResumeCommand.self, BatchShowCommand.self],
        defaultSubcommand: BatchRunCommand.self
    )
}

/// `patina batch FILE` (the default subcommand).
struct BatchRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every task of FILE.",
        discussion: """
            FILE is .txt (one task per line; blank lines and # lines ignored) or .jsonl (one object per \
            line: "task" required; optional "name", "attempts", "model" or "models", "base", "timeout", \
            "max_turns", "check", "allow", "max_cost", "rounds", "check_report"). Flags give the defaults; a line's keys win. A bad line stops \
            the batch before anything is created. Records: batches/<id>/batch.json, report.md and \
            report.html in patina's store; `patina batch show` prints the table. Ctrl-C stops the \
            batch: queued runs never start, running ones are collected; `patina batch resume` finishes it.
            """
    )

    @Argument(help: "The batch file (.txt or .jsonl).")
    var file: String

    @Option(help: "Claude model to use. Repeat to run every task once per model.")
    var model: [String] = []

    @Option(parsing: .unconditional, help: "Run each task this many times (1-100).")
    var attempts: Int = 1

    @OptionGroup var flags: RunFlags
    @OptionGroup var batchFlags: BatchFlags
    @OptionGroup var executor: ExecutorFlags

    func validate() throws {
        do {
            try BatchPlanner.validate(attempts: attempts, jobs: batchFlags.jobs)
            try flags.options(task: "x", model: nil).validateFlags()
            _ = try batchFlags.totalBudget()
        } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        if executor.kind == .slurm { try await BatchSession.checkCluster() }
        let tasks = try BatchFile.load(file)
        let items = try BatchPlanner.items(
            tasks: tasks, defaults: flags.options(task: "", model: nil), attempts: attempts, models: model, path: file)
        try await BatchSession.start(items: items, file: file, check: flags.check, jobs: batchFlags.jobs, maxTotalCost: try batchFlags.totalBudget(),
                                     executor: executor, quiet: flags.quiet, json: flags.json)
    }
}

/// `patina batch resume BATCH`: runs what never finished.
struct BatchResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Run the items of a batch that never finished (not started or interrupted)."
    )

    @Argument(help: "Batch id (a unique prefix or part of it), or `latest`.")
    var batch: String

    @Flag(help: "Also run again the items whose run failed, timed out or ended in an error.")
    var failed = false

    @OptionGroup var batchFlags: BatchFlags

    @OptionGroup var executor: ExecutorFlags

    @Flag(help: "No progress output (warnings still show).")
    var quiet = false

    @Flag(help: "Print the batch record as one JSON object on stdout at the end.")
    var json = false

    func validate() throws {
        if let jobs = batchFlags.jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1 (got \(jobs))") }
        do { _ = try batchFlags.totalBudget() } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        // --on slurm: sbatch and a controller that answers before anything changes (exit 3).
        if executor.kind == .slurm { try await BatchSession.checkCluster() }
        let store = BatchStore(runs: try RunStore.forCurrentRepository())
        var record = try store.resolve(batch)
        let indices = record.unfinishedItems(includingFailed: failed)
        guard !indices.isEmpty else {
            say("batch \(record.id): every run finished; nothing to resume" + (failed ? "" : " (--failed runs failed ones again)"))
            return
        }
        let engine = DockerEngine()
        if let total = try batchFlags.totalBudget() { record.maxTotalCostUSD = total }
        var plans = try await BatchLauncher.planItems(of: &record, indices: indices, engine: engine)
        for index in indices {
            // Interrupted between or in its rounds: the same run goes on with the rounds left
            // (here only: a Slurm task plans its item afresh on its node, so on Slurm it starts over).
            if executor.kind != .slurm, let previous = record.inputs.items[index].runID, let run = record.runs.first(where: { $0.id == previous }),
               let plan = plans[index], let continued = BatchLauncher.continuation(of: run, plan: plan) {
                plans[index] = continued
                continue
            }
            if let previous = record.inputs.items[index].runID {
                record.inputs.items[index].previousRuns.append(previous)
                if let replaced = record.runs.first(where: { $0.id == previous }) {
                    var entry = ReplacedRun(replaced)
                    entry.replacedBy = plans[index]?.id
                    record.replacedRuns.append(entry)
                }
                record.runs.removeAll { $0.id == previous }
                record.inputs.items[index].runID = nil
            }
        }
        if let jobs = batchFlags.jobs { record.jobs = jobs } else if executor.kind == .slurm { record.jobs = plans.count }
        // The budget counts what the runs that stay in the batch already spent.
        BatchLauncher.shareBudget(of: record, with: &plans)
        record.status = .running
        record.finished = nil
        try await BatchSession.run(batch: record, plans: plans, store: store, engine: engine, executor: executor, quiet: quiet, json: json)
    }
}

/// `patina batch show BATCH`: the batch's table in the terminal.
struct BatchShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a batch's runs as a table (the best run of each task marked)."
    )

    @Argument(help: "Batch id (a unique prefix or part of it), or `latest`.")
    var batch: String

    @Flag(help: "Print batch.json.")
    var json = false

    func run() async throws {
        let store = BatchStore(runs: try RunStore.forCurrentRepository())
        let record = try store.resolve(batch)
        if json {
            printJSON(record.json())
            return
        }
        say("batch \(record.id)  \(record.status.rawValue)  jobs \(record.jobs)" + (record.inputs.file.map { "  file \($0)" } ?? "")
            + (record.maxTotalCostUSD.map { "  budget " + Money.format($0) } ?? ""))
        say(Terminal.inert(BatchReport.table(record)))
        say("report: \(store.batchDirectory(record.id).appendingPathComponent("report.html").path)")
    }
}
