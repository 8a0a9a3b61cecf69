import Foundation
import PatinaSandbox

/// What one array task needs beyond batch.json: which item it runs under which run id,
/// and its model endpoint — the submitting patina's proxy for that run and the run's own
/// placeholder (never the credential). `batches/<id>/slurm/task-<n>.json`, mode 0600.
/// When Slurm requeues the task, the submitting patina writes it again for the task's
/// next start (`restarts`): a new run id, a new proxy and placeholder.
public struct SlurmTask: Codable, Sendable, Equatable {
    /// The item's index in `batch.inputs.items`.
    public var item: Int
    public var runID: String
    public var model: ModelAccess
    /// The task's start this file is for: Slurm's restart count (`SLURM_RESTART_COUNT`).
    public var restarts: Int

    public init(item: Int, runID: String, model: ModelAccess, restarts: Int = 0) {
        self.item = item
        self.runID = runID
        self.model = model
        self.restarts = restarts
    }

    enum CodingKeys: String, CodingKey {
        case item, variable, placeholder, restarts
        case runID = "run_id"
        case modelBaseURL = "model_base_url"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        item = try c.decode(Int.self, forKey: .item)
        runID = try c.decode(String.self, forKey: .runID)
        model = ModelAccess(baseURL: try c.decode(String.self, forKey: .modelBaseURL), variable: try c.decode(String.self, forKey: .variable),
                            placeholder: try c.decode(String.self, forKey: .placeholder))
        restarts = try c.decodeIfPresent(Int.self, forKey: .restarts) ?? 0
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(item, forKey: .item)
        try c.encode(runID, forKey: .runID)
        try c.encode(model.baseURL, forKey: .modelBaseURL)
        try c.encode(model.variable, forKey: .variable)
        try c.encode(model.placeholder, forKey: .placeholder)
        try c.encode(restarts, forKey: .restarts)
    }

    public static func directory(batch: String, store: BatchStore) -> URL {
        store.batchDirectory(batch).appendingPathComponent("slurm")
    }

    public static func url(index: Int, batch: String, store: BatchStore) -> URL {
        directory(batch: batch, store: store).appendingPathComponent("task-\(index).json")
    }

    /// The task's output (its node-side patina's progress and errors).
    public static func outputURL(index: Int, batch: String, store: BatchStore) -> URL {
        directory(batch: batch, store: store).appendingPathComponent("task-\(index).out")
    }

    /// Written readable by its owner only from its first byte (the placeholder opens the
    /// run's proxy), and whole: a node reading it while it is written again sees the old
    /// file or the new one.
    func write(to url: URL) throws {
        let data = try RunRecord.encoder.encode(self)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString)")
        let descriptor = open(temporary.path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw PlanError("could not create \(temporary.path): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: data)
            try handle.close()
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw PlanError("could not write \(url.path): \(reason)")
        }
    }

    public static func load(from url: URL) throws -> SlurmTask {
        try RunRecord.decoder.decode(SlurmTask.self, from: Data(contentsOf: url))
    }
}

/// The node's side of a Slurm task: plans its item again here (this node's engine,
/// images and paths), under the run id, endpoint and placeholder the submitting patina
/// chose, and runs it like a local run.
public enum SlurmTaskRunner {
    /// How long a requeued task waits for the submitting patina to hand it its new run.
    static let handoverSeconds: Double = 120

    public static func plan(
        batchID: String, index: Int, store: BatchStore, engine: DockerEngine,
        directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> RunPlan {
        let batch = try store.load(batchID)
        let restarts = environment["SLURM_RESTART_COUNT"].flatMap { Int($0) } ?? 0
        let task = try await handedOver(index: index, batch: batchID, store: store, restarts: restarts)
        guard batch.inputs.items.indices.contains(task.item) else { throw PlanError("batch \(batchID) has no item \(task.item)") }
        let item = batch.inputs.items[task.item]
        // Whatever credential the node's environment holds is not used: the model is
        // reached through the submitting patina's proxy only.
        var clean = environment
        for name in Credentials.secretNames { clean.removeValue(forKey: name) }
        var plan = try await Planner.plan(item.options, directory: directory, environment: clean, engine: engine,
                                          checkEngine: true, requireCredentials: false)
        plan = plan.withID(task.runID)
        // Once the submitting patina handed this task's next start a new run (Slurm requeued
        // it while this node was cut off), this run's record is the submitting patina's.
        plan.store.owns = owner(of: task, file: SlurmTask.url(index: index, batch: batchID, store: store))
        plan.batchID = batch.id
        plan.attempt = item.attempt
        plan.name = item.name
        plan.remoteModel = task.model
        let job = environment["SLURM_ARRAY_JOB_ID"].map { "\($0)_\(environment["SLURM_ARRAY_TASK_ID"] ?? String(index))" }
        plan.executor = RunExecutor(kind: ExecutorKind.slurm.rawValue, jobID: job, node: environment["SLURMD_NODENAME"], host: RunExecutor.thisHost,
                                    restarts: restarts)
        return plan
    }

    /// Whether this start of a task still owns `task`'s run: as long as the task's file
    /// names it (an unreadable file changes nothing).
    static func owner(of task: SlurmTask, file: URL) -> @Sendable (String) -> Bool {
        { id in
            guard id == task.runID, let now = try? SlurmTask.load(from: file) else { return true }
            return now.runID == task.runID && now.restarts == task.restarts
        }
    }

    /// The task's file for this start of the task. A task Slurm requeued starts again
    /// under a new run, which the submitting patina writes once it sees the requeue (it
    /// polls squeue): until then the file is the earlier start's, and this waits for it.
    static func handedOver(index: Int, batch: String, store: BatchStore, restarts: Int,
                           patience: Double = handoverSeconds) async throws -> SlurmTask {
        let url = SlurmTask.url(index: index, batch: batch, store: store)
        let deadline = Date().addingTimeInterval(patience)
        while true {
            let task = try SlurmTask.load(from: url)
            if task.restarts == restarts { return task }
            // Slurm requeued the task again meanwhile: this start is not the task's any more.
            guard task.restarts < restarts else {
                throw PlanError("task \(index) of batch \(batch) was requeued again (restart \(task.restarts)) while this start (restart \(restarts)) waited: nothing to run here")
            }
            guard Date() < deadline else {
                throw PlanError("Slurm requeued task \(index) of batch \(batch) (restart \(restarts)), but the submitting patina did not hand it a new run within \(Int(patience)) s (is it still running?); `patina batch resume \(batch)` runs the item again")
            }
            try await Task.sleep(nanoseconds: 500_000_000)
        }
    }
}
