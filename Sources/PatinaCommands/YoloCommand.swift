import ArgumentParser
import Foundation
import PatinaCore
import PatinaSandbox

/// `patina yolo TASK`: one sandboxed Claude Code run (or several: --attempts, --model).
struct YoloCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yolo",
        abstract: "Run Claude Code with --dangerously-skip-permissions in a locked-down container on a new branch.",
        discussion: """
            Creates branch patina/<run-id> and a worktree outside the repository, builds (or reuses) the \
            sandbox image, applies the egress firewall and seccomp profile, runs the agent, and collects \
            its commits, any uncommitted changes and the full session log. Exits 0 only when the run \
            succeeded (and its --check passed). With --attempts N or several --model, the task runs once \
            per attempt × model as a batch (see `patina batch --help`).
            """
    )

    @Argument(help: "What the agent should do (after `--` when it starts with `-`).")
    var task: String

    @Option(help: "Claude model to use. Repeat to run the task once per model.")
    var model: [String] = []

    @Option(parsing: .unconditional, help: "Run the task this many times, each on its own branch (1-100).")
    var attempts: Int = 1

    @OptionGroup var flags: RunFlags
    @OptionGroup var batchFlags: BatchFlags
    @OptionGroup var executor: ExecutorFlags

    func validate() throws {
        do {
            try flags.options(task: task, model: nil).validateFlags()
            try BatchPlanner.validate(attempts: attempts, jobs: batchFlags.jobs)
            _ = try batchFlags.totalBudget()
        } catch { throw ValidationError("\(error)") }
        if batchFlags.maxTotalCost != nil && attempts == 1 && model.count <= 1 {
            throw ValidationError("--max-total-cost is a batch's budget (--attempts, several --model, or patina batch); use --max-cost for one run")
        }
        if executor.kind == .slurm && attempts == 1 && model.count <= 1 {
            throw ValidationError("--on slurm runs a batch (--attempts N, several --model, or patina batch)")
        }
    }

    func run() async throws {
        if attempts > 1 || model.count > 1 {
            if executor.kind == .slurm { try await BatchSession.checkCluster() }
            let items = try BatchPlanner.items(
                tasks: [BatchTask(line: 1, task: task)], defaults: flags.options(task: task, model: nil),
                attempts: attempts, models: model, path: nil)
            try await BatchSession.start(items: items, file: nil, check: flags.check, jobs: batchFlags.jobs, maxTotalCost: try batchFlags.totalBudget(),
                                         executor: executor, quiet: flags.quiet, json: flags.json)
            return
        }
        let engine = DockerEngine()
        let plan = try await Planner.plan(flags.options(task: task, model: model.first), engine: engine)
        try await SingleRun.execute(plan, engine: engine, quiet: flags.quiet, json: flags.json)
    }
}

/// One planned run in the foreground (`yolo`, `resume`): progress on stderr,
/// Ctrl-C stops the agent and still collects, the summary (or JSON) at the end.
/// Exits 0 only when the run succeeded and its check, if any, passed.
enum SingleRun {
    static func execute(_ plan: RunPlan, engine: DockerEngine, quiet: Bool, json: Bool) async throws {
        let control = RunControl(engine: engine)
        let renderer = SingleRunRenderer(quiet: quiet)
        let interrupts = InterruptHandler { _ in
            renderer.warn("stopping: the agent is being stopped and the run collected")
            Task { await control.stop(.interrupted) }
        }
        defer { interrupts.cancel() }
        let progress = Progress(runID: plan.id, handler: renderer.handle)
        let record = await RunLifecycle(plan: plan, engine: engine, progress: progress, control: control).execute()
        if record.createdNothing {
            // Nothing exists: one line, with the kind of what stopped it (bad input, the environment).
            if record.status == .interrupted { throw ExitCode(130) }
            throw record.failure ?? PatinaError(.environment, record.reason ?? "the run could not start")
        }
        if json {
            printJSON(record.json())
        } else if quiet {
            // Scripts still need to know which run and branch this was.
            say("\(record.id) \(record.branch)")
        } else {
            say(Terminal.inert(RunSummary.text(record)))
        }
        if let kind = PatinaError.kind(of: record) { throw ExitCode(kind.exitCode) }
    }
}
