import ArgumentParser
import Foundation
import PatinaCore
import PatinaSandbox

/// `patina batch-task --batch ID --index N` (hidden): one Slurm array task on its node —
/// one run of the batch, planned here and run as a local run is, its model reached
/// through the submitting patina's proxy. Slurm's SIGTERM (scancel) stops the agent and
/// the run is still collected, as for Ctrl-C.
struct BatchTaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch-task",
        abstract: "Run one task of a batch submitted with --on slurm (started by Slurm on a node).",
        shouldDisplay: false
    )

    @Option(help: "The batch's id.")
    var batch: String

    @Option(help: "The array task's index ($SLURM_ARRAY_TASK_ID).")
    var index: Int

    func run() async throws {
        let node = ProcessInfo.processInfo.environment["SLURMD_NODENAME"] ?? RunExecutor.thisHost
        let engine = DockerEngine()
        let plan: RunPlan
        do {
            let store = BatchStore(runs: try RunStore.forCurrentRepository())
            plan = try await SlurmTaskRunner.plan(batchID: batch, index: index, store: store, engine: engine)
        } catch {
            // The submitting patina reads this line from the task's output into the run's record.
            throw ClusterError("node \(node): \(error)")
        }
        let control = RunControl(engine: engine)
        let interrupts = InterruptHandler { signal in
            say("[\(plan.id)] signal \(signal): stopping the agent; the run is collected")
            Task { await control.stop(.interrupted) }
        }
        say("[\(plan.id)] on \(node): batch \(batch), task \(index)")
        let progress = Progress(runID: plan.id) { envelope in
            switch envelope.event {
            case .step(let text), .note(let text): say("[\(envelope.runID)] \(text)")
            case .warning(let text): say("[\(envelope.runID)] warning: \(text)")
            case .phase(let phase): say("[\(envelope.runID)] \(phase.rawValue)")
            case .finished(let record): say("[\(envelope.runID)] \(record.status.rawValue)" + (record.reason.map { ": \($0)" } ?? ""))
            default: break
            }
        }
        let record = await RunLifecycle(plan: plan, engine: engine, progress: progress, control: control).execute()
        interrupts.cancel()
        switch record.status {
        case .succeeded: return
        case .interrupted: throw ExitCode(130)
        default: throw ExitCode(1)
        }
    }
}
