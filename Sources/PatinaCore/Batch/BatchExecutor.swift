import Foundation

/// Where a batch's runs execute. The batch is planned on this machine either way; an
/// executor takes the plans, runs them (reporting through the batch's event handler),
/// and returns the batch's record once every run ended. The model proxy — credential,
/// accounting, budgets — always stays in this process, whatever the executor.
///
/// - `local` (`BatchRunner`): a queue of at most `--jobs` runs on this machine.
/// - `slurm` (`SlurmExecutor`): one job array; each task runs one run on a node.
public protocol BatchExecutor: AnyObject, Sendable {
    /// Runs every planned item; returns the batch's record with every run that started.
    func run() async -> BatchRecord
    /// Ctrl-C/SIGTERM: nothing new starts; running runs stop and are collected.
    func stop() async
}

extension BatchRunner: BatchExecutor {}

/// Which executor a batch uses (`--on`).
public enum ExecutorKind: String, Sendable, CaseIterable {
    case local
    case slurm
}
