import ArgumentParser
import Foundation
import PatinaCore
import PatinaModelProxy
import PatinaSandbox

/// What `yolo --attempts`, `batch FILE` and `batch resume` share: signals
/// installed once, the batch's renderer, the run, the reports, the result.
enum BatchSession {
    /// `check`: the batch's own `--check` (a line's key may override it for that line).
    static func start(items: [BatchItem], file: String?, check: String?, jobs: Int?, maxTotalCost: Double?, quiet: Bool, json: Bool) async throws {
        let engine = DockerEngine()
        let (batch, plans, store) = try await BatchLauncher.plan(items: items, file: file, check: check, jobs: jobs,
                                                                 maxTotalCost: maxTotalCost, engine: engine)
        try await run(batch: batch, plans: plans, store: store, engine: engine, quiet: quiet, json: json)
    }

    static func run(batch: BatchRecord, plans: [Int: RunPlan], store: BatchStore, engine: DockerEngine, quiet: Bool, json: Bool) async throws {
        let renderer = BatchRenderer(total: plans.count, quiet: quiet)
        for (index, plan) in plans {
            let item = batch.inputs.items[index]
            renderer.describe(runID: plan.id, label: item.label, attempt: item.attempt, model: item.model)
        }
        if !quiet {
            Terminal.write("• batch \(batch.id): \(counted(plans.count, "run")), \(batch.jobs) at a time"
                + (batch.maxTotalCostUSD.map { ", budget \(Money.format($0)) in all" } ?? "") + "\n")
        }
        let runner = BatchRunner(
            batch: batch, plans: plans, store: store, engine: engine,
            backoffSeconds: BatchLauncher.backoffSeconds(),
            handler: renderer.handle)
        let interrupts = InterruptHandler { _ in
            renderer.warn("stopping: queued runs will not start; running agents are being stopped and collected (this takes a moment)")
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
}
