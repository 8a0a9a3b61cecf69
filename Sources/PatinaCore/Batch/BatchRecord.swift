import Foundation

/// How a batch ended.
public enum BatchStatus: String, Codable, Sendable {
    case running
    /// Every run ended and was collected (whatever each run's own status).
    case succeeded
    /// Some run could not be started or collected.
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

    /// What the batch's runs cost in all, as their model proxies counted; nil when some
    /// run's cost is unknown.
    public var costUSD: Double? {
        runs.reduce(Double?(0)) { total, run in
            guard let total else { return nil }
            if run.requests == nil && run.costUSD == nil { return total }  // never reached the model
            return run.costUSD.map { total + $0 }
        }
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
        case id, status, started, finished, jobs, inputs, runs
        case durationS = "duration_s"
        case maxTotalCostUSD = "max_total_cost_usd"
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
