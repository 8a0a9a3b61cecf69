import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox

/// Plans every item of a batch before anything is created (one bad item stops
/// the batch with nothing left behind), then hands the plans to a BatchRunner.
public enum BatchLauncher {
    /// A new batch record and the plan of every item.
    public static func plan(
        items: [BatchItem], file: String?, check: String?, jobs: Int?, maxTotalCost: Double? = nil, engine: DockerEngine,
        directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> (batch: BatchRecord, plans: [Int: RunPlan], store: BatchStore) {
        guard let first = items.first else { throw PlanError("the batch has no runs") }
        let id = RunID.make(task: file.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent } ?? "attempts " + first.task)
        var batch = BatchRecord(id: id, started: Date(), jobs: jobs ?? 1, inputs: BatchInputs(file: file, check: check, items: items))
        batch.maxTotalCostUSD = maxTotalCost
        var plans = try await planItems(of: &batch, indices: Array(items.indices), engine: engine, directory: directory, environment: environment)
        if maxTotalCost != nil {
            for plan in plans.values.sorted(by: { $0.id < $1.id }) {
                if let model = plan.model { try Planner.requirePrice(of: model, in: plan.prices, budget: "--max-total-cost") }
            }
        }
        shareBudget(of: batch, with: &plans)
        guard let store = plans.values.first?.store else { throw PlanError("the batch has no runs") }
        batch.jobs = jobs ?? BatchPlanner.defaultJobs(memoryLimit: plans.values.first!.limits.memory)
        return (batch, plans, BatchStore(runs: store))
    }

    /// Plans the given items of `batch` (all of them, or those a resume runs again).
    public static func planItems(
        of batch: inout BatchRecord, indices: [Int], engine: DockerEngine,
        directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> [Int: RunPlan] {
        var plans: [Int: RunPlan] = [:]
        try await engine.ensureAvailable()
        for index in indices {
            let item = batch.inputs.items[index]
            do {
                var plan = try await Planner.plan(item.options, directory: directory, environment: environment, engine: engine, checkEngine: false)
                plan.batchID = batch.id
                plan.attempt = item.attempt
                plan.name = item.name
                // The protections are checked now too (allow-list, presets, seccomp), so a
                // bad line stops the batch before any run exists.
                _ = try ProtectionPlan.make(plan: plan)
                plans[index] = plan
            } catch {
                let label = batch.inputs.file.map { file in "\(file): task \(item.taskIndex + 1) (\(item.label.prefix(40)))" } ?? "attempt \(item.attempt)"
                throw PlanError("\(label): \(error)")
            }
        }
        return plans
    }

    /// `batch resume` of `run`, interrupted with rounds left (`--rounds`) and its conversation,
    /// branch and worktree still there: `plan` turned into the run's remaining rounds under its
    /// own id. Nil when the item runs again from the start as a new run (no rounds left, the
    /// agent never started, the branch or worktree gone).
    public static func continuation(of run: RunRecord, plan: RunPlan) -> RunPlan? {
        let fm = FileManager.default
        guard run.status == .interrupted, plan.rounds > 1, plan.check != nil, run.discarded == nil,
              (run.rounds?.last?.round ?? 1) < plan.rounds,
              run.claudeSessionID != nil, let transcript = run.transcript, fm.fileExists(atPath: transcript),
              let base = ObjectID(hex: run.baseCommit), let tip = try? plan.repository.branchTip(run.branch),
              fm.fileExists(atPath: URL(fileURLWithPath: run.worktree).appendingPathComponent(".git").path)
        else { return nil }
        var next = plan
        next.id = run.id
        next.branch = run.branch
        next.worktree = URL(fileURLWithPath: run.worktree)
        next.runDirectory = URL(fileURLWithPath: run.runDir)
        next.baseCommit = base
        var interrupted = run
        interrupted.headCommit = tip.hex
        next.continuing = interrupted
        return next
    }

    /// Gives every plan the batch's shared budget (`--max-total-cost`), counting what the
    /// batch's finished runs already spent (a resumed batch).
    public static func shareBudget(of batch: BatchRecord, with plans: inout [Int: RunPlan]) {
        guard let limit = batch.maxTotalCostUSD else { return }
        let spent = Money.exact(batch.runs.reduce(0) { $0 + ($1.costUSD ?? 0) } + batch.replacedCostUSD)
        let shared = SpendingLimit(limitUSD: limit, alreadySpent: spent)
        for index in plans.keys { plans[index]?.sharedBudget = shared }
    }

    /// report.md and report.html beside batch.json.
    public static func writeReports(_ batch: BatchRecord, store: BatchStore) {
        let directory = store.batchDirectory(batch.id)
        var diffs: [String: String] = [:]
        if let repository = try? Repository.discover(from: URL(fileURLWithPath: batch.runs.first?.repository ?? ".")) {
            for run in batch.runs {
                guard let head = run.headCommit, let from = ObjectID(hex: run.baseCommit), let to = ObjectID(hex: head) else { continue }
                diffs[run.id] = try? repository.diffPatch(from: from, to: to)
            }
        }
        try? Data(BatchReport.markdown(batch).utf8).write(to: directory.appendingPathComponent("report.md"), options: .atomic)
        try? Data(BatchReport.html(batch, diffs: diffs).utf8).write(to: directory.appendingPathComponent("report.html"), options: .atomic)
    }

    /// Seconds a rate-limited run waits before its first retry (doubling after).
    public static func backoffSeconds(environment: [String: String] = ProcessInfo.processInfo.environment) -> Double {
        environment["PATINA_RATE_LIMIT_BACKOFF"].flatMap(Double.init) ?? 15
    }
}
