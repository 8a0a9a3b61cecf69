import Foundation
import PatinaModelProxy

/// How a batch ended; `patina batch` exits 0 exactly when it `succeeded`.
public enum BatchStatus: String, Codable, Sendable {
    case running
    /// Every run started, ended `succeeded` and passed its check (where it had one).
    case succeeded
    /// Some run ended without success (failed, timed out, error, its own budget, a failed
    /// check), or could not be started.
    case failed
    /// Stopped by Ctrl-C/SIGTERM: queued runs never started; `patina batch resume` finishes them.
    case interrupted
    /// `--max-total-cost` was spent: queued runs never started.
    case budgetExceeded = "budget_exceeded"
}

/// One planned run of a batch: a task, an attempt number and a model. Items are
/// planned before anything is created; `runID` is set once the item's run starts.
public struct BatchItem: Codable, Sendable, Equatable {
    /// Position of the task in the input (0-based), shared by its attempts and models.
    public var taskIndex: Int
    public var name: String?
    public var task: String
    /// 1-based attempt number.
    public var attempt: Int
    public var model: String?
    /// Everything the run was asked for (flags merged with the line's keys).
    public var options: YoloOptions
    public var runID: String?
    /// Earlier runs of this item that did not finish (interrupted, or failed before `--failed` resumed them).
    public var previousRuns: [String] = []

    public init(taskIndex: Int, name: String?, task: String, attempt: Int, model: String?, options: YoloOptions) {
        self.taskIndex = taskIndex
        self.name = name
        self.task = task
        self.attempt = attempt
        self.model = model
        self.options = options
    }

    enum CodingKeys: String, CodingKey {
        case name, task, attempt, model, options
        case taskIndex = "task_index"
        case runID = "run_id"
        case previousRuns = "previous_runs"
    }

    /// What a report calls the task: its name, else the task's first line.
    public var label: String {
        name ?? String(task.split(separator: "\n", omittingEmptySubsequences: true).first ?? "")
    }
}

/// A run of the batch that `batch resume` replaced, with what it spent.
public struct ReplacedRun: Codable, Sendable, Equatable {
    public var id: String
    public var status: RunStatus
    public var costUSD: Double?
    public var requests: Int?
    /// The run that took its place.
    public var replacedBy: String?

    public init(_ run: RunRecord) {
        id = run.id
        status = run.status
        costUSD = run.costUSD
        requests = run.requests
    }

    enum CodingKeys: String, CodingKey {
        case id, status, requests
        case costUSD = "cost_usd"
        case replacedBy = "replaced_by"
    }
}

/// What the batch was started from.
public struct BatchInputs: Codable, Sendable, Equatable {
    /// The batch file, or nil for `patina yolo --attempts/--model`.
    public var file: String?
    public var check: String?
    public var items: [BatchItem]

    public init(file: String?, check: String?, items: [BatchItem]) {
        self.file = file
        self.check = check
        self.items = items
    }
}

/// `batches/<batch-id>/batch.json`: the record of one batch. `--json` prints exactly this.
public struct BatchRecord: Codable, Sendable {
    public var id: String
    public var status: BatchStatus
    public var started: Date
    public var finished: Date?
    public var durationS: Double?
    public var jobs: Int
    public var inputs: BatchInputs
    /// The record of every run that started, in input order.
    public var runs: [RunRecord]
    /// `--max-total-cost`: the budget all runs share.
    public var maxTotalCostUSD: Double?
    /// Runs `batch resume` replaced (interrupted, or failed with `--failed`): no longer the
    /// batch's runs, but what they spent was spent.
    public var replacedRuns: [ReplacedRun] = []
    /// The patina process running the batch, to tell a batch in flight from one whose
    /// patina died (`Recovery` then marks it `interrupted`).
    public var pid: Int32?
    /// The host `pid` lives on (nil: this one, for records made before it was kept): a
    /// patina on another host (a Slurm node) cannot tell whether it is alive.
    public var host: String?
    /// `--on slurm`: the job array of the batch's last submission.
    public var slurmJob: String?
    /// Set when queued runs did not start because a disk was below its floor (`--min-free`):
    /// the first such shortage.
    public var diskLow: DiskShortage?

    /// What the batch's runs cost in all, replaced runs included, as their model proxies
    /// counted; nil when some run's cost is unknown.
    public var costUSD: Double? {
        let figures = runs.map { ($0.requests, $0.costUSD) } + replacedRuns.map { ($0.requests, $0.costUSD) }
        return figures.reduce(Double?(0)) { total, run in
            guard let total else { return nil }
            if run.0 == nil && run.1 == nil { return total }  // never reached the model
            return run.1.map { Money.exact(total + $0) }
        }
    }

    /// What the replaced runs spent (known costs only).
    public var replacedCostUSD: Double { Money.exact(replacedRuns.reduce(0) { $0 + ($1.costUSD ?? 0) }) }

    /// Items whose run never started (Ctrl-C or a spent budget before their turn).
    public var unstartedItems: [BatchItem] {
        let started = Set(runs.map(\.id))
        return inputs.items.filter { item in item.runID.map { !started.contains($0) } ?? true }
    }

    /// How the batch ended, from its runs: `stopped` by Ctrl-C, `unstartedForBudget` items
    /// held back by a spent `--max-total-cost`.
    public func outcome(stopped: Bool, unstartedForBudget: Int) -> BatchStatus {
        let unfinished = unfinishedItems(includingFailed: false)
        if stopped || !unfinished.isEmpty && runs.contains(where: { $0.status == .interrupted }) { return .interrupted }
        if unstartedForBudget > 0 { return .budgetExceeded }
        let allGood = unstartedItems.isEmpty && !runs.isEmpty
            && runs.allSatisfy { $0.status == .succeeded && $0.check?.passed != false && !$0.createdNothing }
        return allGood ? .succeeded : .failed
    }

    public init(id: String, started: Date, jobs: Int, inputs: BatchInputs) {
        self.id = id
        self.status = .running
        self.started = started
        self.jobs = jobs
        self.inputs = inputs
        self.runs = []
    }

    enum CodingKeys: String, CodingKey {
        case id, status, started, finished, jobs, inputs, runs, pid, host
        case durationS = "duration_s"
        case maxTotalCostUSD = "max_total_cost_usd"
        case replacedRuns = "replaced_runs"
        case diskLow = "disk_low"
        case slurmJob = "slurm_job"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        status = try c.decode(BatchStatus.self, forKey: .status)
        started = try c.decode(Date.self, forKey: .started)
        finished = try c.decodeIfPresent(Date.self, forKey: .finished)
        durationS = try c.decodeIfPresent(Double.self, forKey: .durationS)
        jobs = try c.decode(Int.self, forKey: .jobs)
        inputs = try c.decode(BatchInputs.self, forKey: .inputs)
        runs = try c.decode([RunRecord].self, forKey: .runs)
        maxTotalCostUSD = try c.decodeIfPresent(Double.self, forKey: .maxTotalCostUSD)
        replacedRuns = try c.decodeIfPresent([ReplacedRun].self, forKey: .replacedRuns) ?? []
        pid = try c.decodeIfPresent(Int32.self, forKey: .pid)
        host = try c.decodeIfPresent(String.self, forKey: .host)
        slurmJob = try c.decodeIfPresent(String.self, forKey: .slurmJob)
        diskLow = try c.decodeIfPresent(DiskShortage.self, forKey: .diskLow)
    }

    public func json() -> String {
        String(decoding: try! RunRecord.encoder.encode(self), as: UTF8.self)
    }

    /// Items whose run never finished: never started, or interrupted; with
    /// `failed`, also those whose run failed, timed out or ended in an error.
    public func unfinishedItems(includingFailed failed: Bool) -> [Int] {
        let byID = Dictionary(runs.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        return inputs.items.indices.filter { index in
            guard let id = inputs.items[index].runID, let run = byID[id] else { return true }
            switch run.status {
            case .interrupted, .running: return true
            case .failed, .checkFailed, .timedOut, .error, .budgetExceeded: return failed
            case .succeeded: return false
            }
        }
    }
}
