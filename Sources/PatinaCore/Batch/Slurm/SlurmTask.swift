import Foundation
import PatinaSandbox

/// What one array task needs beyond batch.json: which item it runs under which run id,
/// and its model endpoint — the submitting patina's proxy for that run and the run's own
/// placeholder (never the credential). `batches/<id>/slurm/task-<n>.json`, mode 0600.
public struct SlurmTask: Codable, Sendable, Equatable {
    /// The item's index in `batch.inputs.items`.
    public var item: Int
    public var runID: String
    public var modelBaseURL: String
    public var variable: String
    public var placeholder: String

    public init(item: Int, runID: String, modelBaseURL: String, variable: String, placeholder: String) {
        self.item = item
        self.runID = runID
        self.modelBaseURL = modelBaseURL
        self.variable = variable
        self.placeholder = placeholder
    }

    enum CodingKeys: String, CodingKey {
        case item, variable, placeholder
        case runID = "run_id"
        case modelBaseURL = "model_base_url"
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

    /// Written readable by its owner only: the placeholder opens the run's proxy.
    func write(to url: URL) throws {
        let data = try RunRecord.encoder.encode(self)
        guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw PlanError("could not create \(url.path)")
        }
        // An existing file keeps its mode: set it again.
        chmod(url.path, 0o600)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: data)
    }

    public static func load(from url: URL) throws -> SlurmTask {
        try RunRecord.decoder.decode(SlurmTask.self, from: Data(contentsOf: url))
    }
}

/// The node's side of a Slurm task: plans its item again here (this node's engine,
/// images and paths), under the run id, endpoint and placeholder the submitting patina
/// chose, and runs it like a local run.
public enum SlurmTaskRunner {
    public static func plan(
        batchID: String, index: Int, store: BatchStore, engine: DockerEngine,
        directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> RunPlan {
        let batch = try store.load(batchID)
        let task = try SlurmTask.load(from: SlurmTask.url(index: index, batch: batchID, store: store))
        guard batch.inputs.items.indices.contains(task.item) else { throw PlanError("batch \(batchID) has no item \(task.item)") }
        let item = batch.inputs.items[task.item]
        // Whatever credential the node's environment holds is not used: the model is
        // reached through the submitting patina's proxy only.
        var clean = environment
        for name in Credentials.secretNames { clean.removeValue(forKey: name) }
        var plan = try await Planner.plan(item.options, directory: directory, environment: clean, engine: engine,
                                          checkEngine: true, requireCredentials: false)
        plan = plan.withID(task.runID)
        plan.batchID = batch.id
        plan.attempt = item.attempt
        plan.name = item.name
        plan.remoteModel = ModelAccess(baseURL: task.modelBaseURL, variable: task.variable, placeholder: task.placeholder)
        let job = environment["SLURM_ARRAY_JOB_ID"].map { "\($0)_\(environment["SLURM_ARRAY_TASK_ID"] ?? String(index))" }
        plan.executor = RunExecutor(kind: ExecutorKind.slurm.rawValue, jobID: job, node: environment["SLURMD_NODENAME"], host: RunExecutor.thisHost)
        return plan
    }
}
