import ArgumentParser
import Foundation
import PatinaCore
import PatinaModelProxy
import PatinaSandbox

/// What `yolo --attempts`, `batch FILE` and `batch resume` share: signals
/// installed once, the batch's renderer, the run, the reports, the result.
enum BatchSession {
    /// `check`: the batch's own `--check` (a line's key may override it for that line).
    static func start(items: [BatchItem], file: String?, check: String?, jobs: Int?, maxTotalCost: Double?,
                      executor: ExecutorFlags, quiet: Bool, json: Bool) async throws {
        let engine = DockerEngine()
        var (batch, plans, store) = try await BatchLauncher.plan(items: items, file: file, check: check, jobs: jobs,
                                                                 maxTotalCost: maxTotalCost, engine: engine)
        // On a cluster --jobs is the array's limit; this machine's memory says nothing of it.
        if executor.kind == .slurm, jobs == nil { batch.jobs = plans.count }
        try await run(batch: batch, plans: plans, store: store, engine: engine, executor: executor, quiet: quiet, json: json)
    }

    /// `--on slurm`: sbatch there, a controller that answers, and a store the nodes can see,
    /// before anything is created (exit 3).
    static func checkCluster() async throws {
        do {
            try await SlurmCluster.check()
            if let store = try? RunStore.forCurrentRepository() { try SlurmCluster.checkShared(store) }
        } catch let error as ClusterError {
            try? FileHandle.standardError.write(contentsOf: Data("error: \(Terminal.line(error.description))\n".utf8))
            throw ExitCode(3)
        }
    }

    static func run(batch: BatchRecord, plans: [Int: RunPlan], store: BatchStore, engine: DockerEngine,
                    executor: ExecutorFlags? = nil, quiet: Bool, json: Bool) async throws {
        let renderer = BatchRenderer(total: plans.count, quiet: quiet)
        for (index, plan) in plans {
            let item = batch.inputs.items[index]
            renderer.describe(runID: plan.id, label: item.label, attempt: item.attempt, model: item.model)
        }
        if !quiet {
            Terminal.write("• batch \(batch.id): \(counted(plans.count, "run")), \(batch.jobs) at a time"
                + (executor?.kind == .slurm ? " on Slurm" : "")
                + (batch.maxTotalCostUSD.map { ", budget \(Money.format($0)) in all" } ?? "") + "\n")
        }
        let runner: any BatchExecutor
        if let executor, executor.kind == .slurm {
            let config = plans.keys.min().flatMap { plans[$0]?.config.slurm }
            runner = SlurmExecutor(batch: batch, plans: plans, store: store, engine: engine, options: executor.slurm.over(config),
                                   patina: ownExecutable(), handler: renderer.handle)
        } else {
            runner = BatchRunner(
                batch: batch, plans: plans, store: store, engine: engine,
                backoffSeconds: BatchLauncher.backoffSeconds(),
                handler: renderer.handle)
        }
        let interrupts = InterruptHandler { _ in
            renderer.warn(executor?.kind == .slurm
                ? "stopping: the job array is cancelled; each node stops its agent and collects its run (this takes a moment)"
                : "stopping: queued runs will not start; running agents are being stopped and collected (this takes a moment)")
            Task { await runner.stop() }
        }
        let record = await runner.run()
        interrupts.cancel()
        renderer.finish()
        BatchLauncher.writeReports(record, store: store)
        if json {
            printJSON(record.json())
        } else if quiet {
            // Scripts still need the runs and their branches: one "RUN BRANCH" line each.
            say(record.id)
            for run in record.runs { say("\(run.id) \(run.branch)") }
        } else {
            say(Terminal.inert(BatchReport.table(record)))
            say("report: \(store.batchDirectory(record.id).appendingPathComponent("report.html").path)")
        }
        switch record.status {
        case .interrupted: throw ExitCode(130)
        case .failed, .running, .budgetExceeded: throw ExitCode(1)
        case .succeeded: break
        }
    }

    /// This patina's executable, which each Slurm node runs at the same path.
    static func ownExecutable() -> String {
        if let path = Bundle.main.executablePath { return URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
        return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    }
}
