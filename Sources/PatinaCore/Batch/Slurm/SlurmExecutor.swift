import Foundation
import Synchronization
import PatinaGit
import PatinaModelProxy
import PatinaSandbox

/// A batch as one Slurm job array. Everything is planned here first; then this patina
/// serves every run's model proxy (the credential, the accounting and the budgets stay
/// in this process), writes each task's file (its run id, its proxy's URL and its own
/// placeholder, mode 0600) beside batch.json on the shared filesystem, and submits one
/// array whose task `n` runs `patina batch-task --batch ID --index n` on its node. It
/// stays attached: it follows the tasks through squeue, reads each run's record from the
/// shared store when its task ends, adds what the proxy counted, and writes batch.json.
public final class SlurmExecutor: BatchExecutor, Sendable {
    /// What the executor follows and the batch record, under the lock; the rest is set in init.
    private let shared: Mutex<State>
    private let plans: [Int: RunPlan]
    private let store: BatchStore
    private let engine: DockerEngine
    private let options: SlurmOptions
    private let handler: RunEventHandler
    /// The patina each node runs (the same version at the same path).
    private let patina: String
    private let pollSeconds: Double

    private struct State {
        var batch: BatchRecord
        var job: String?
        var stopping = false
        var cancelled = false
        var cancelledForBudget = false
    }

    public init(batch: BatchRecord, plans: [Int: RunPlan], store: BatchStore, engine: DockerEngine, options: SlurmOptions,
                patina: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                handler: @escaping RunEventHandler) {
        self.shared = Mutex(State(batch: batch))
        self.plans = plans
        self.store = store
        self.engine = engine
        self.options = options
        self.patina = patina
        self.handler = handler
        self.pollSeconds = environment["PATINA_SLURM_POLL"].flatMap(Double.init) ?? 2
    }

    public var record: BatchRecord { shared.withLock { state in state.batch } }

    /// The environment sbatch (and so every task) gets: this one without any credential.
    public static func jobEnvironment(_ environment: [String: String], secrets: [String]) -> [String: String?] {
        var changes: [String: String?] = [:]
        for (name, value) in environment where Credentials.secretNames.contains(name) || secrets.contains(where: { !$0.isEmpty && value.contains($0) }) {
            changes[name] = .some(nil)
        }
        return changes
    }

    public func stop() async {
        let job = shared.withLock { state -> String? in
            state.stopping = true
            return state.job
        }
        if let job { await cancel(job) }
    }

    private func cancel(_ job: String, pendingOnly: Bool = false) async {
        let done = shared.withLock { state -> Bool in
            if pendingOnly { defer { state.cancelledForBudget = true }; return state.cancelledForBudget || state.cancelled }
            defer { state.cancelled = true }
            return state.cancelled
        }
        guard !done else { return }
        _ = try? await Command.run(["scancel"] + (pendingOnly ? ["--state=PENDING"] : []) + [job])
    }

    public func run() async -> BatchRecord {
        let started = Date()
        let order = plans.keys.sorted()
        let batchID = record.id
        let slurmDirectory = SlurmTask.directory(batch: batchID, store: store)
        var proxies: [Int: ModelProxy] = [:]
        var progress: [Int: Progress] = [:]
        do {
            try FileManager.default.createDirectory(at: slurmDirectory, withIntermediateDirectories: true)
            let listen: String
            if let address = options.proxyListen { listen = address } else { listen = try await engine.bridgeGateway() }
            for (arrayIndex, itemIndex) in order.enumerated() {
                guard let plan = plans[itemIndex] else { continue }
                let runProgress = Progress(runID: plan.id, handler: handler)
                progress[arrayIndex] = runProgress
                let credentials = plan.credentials
                let placeholder = ModelProxyConfiguration.makePlaceholder(scheme: credentials.upstream.scheme)
                var configuration = ModelProxyConfiguration(
                    listenAddress: listen, upstream: credentials.baseURL, credential: credentials.upstream, placeholder: placeholder,
                    prices: plan.prices, maxCostUSD: plan.maxCostUSD, sharedLimit: plan.sharedBudget,
                    apiLog: slurmDirectory.appendingPathComponent("\(plan.id).api.jsonl"), secrets: credentials.secretValues)
                configuration.apiPolicy = plan.apiPolicy
                // The agent runs on a node: its proxy cannot stop it there; the budget's refusal does.
                let proxy = try ModelProxy(configuration: configuration,
                                           onEvent: RunLifecycle.proxyEventHandler(progress: runProgress, control: RunControl(engine: engine)))
                proxies[arrayIndex] = proxy
                try SlurmTask(item: itemIndex, runID: plan.id, modelBaseURL: proxy.baseURL, variable: credentials.variable, placeholder: placeholder)
                    .write(to: SlurmTask.url(index: arrayIndex, batch: batchID, store: store))
                shared.withLock { state in state.batch.inputs.items[itemIndex].runID = plan.id }
            }
            shared.withLock { state in state.batch.pid = getpid() }
            save()
            let script = slurmDirectory.appendingPathComponent("job.sh")
            try Data(SlurmCommands.jobScript(patina: patina, batchID: batchID).utf8).write(to: script)
            chmod(script.path, 0o755)
            guard let first = plans[order[0]] else { throw ClusterError("the batch has no runs") }
            let request = SlurmCommands.request(for: first.limits)
            let arguments = SlurmCommands.sbatch(
                script: script, jobName: "patina-\(batchID)", tasks: order.count, jobs: record.jobs, cpus: request.cpus,
                memoryMB: request.memoryMB, directory: first.repositoryRoot,
                output: slurmDirectory.appendingPathComponent("task-%a.out"), options: options)
            let secrets = Array(Set(plans.values.flatMap(\.credentials.secretValues)))
            let result = try await Command.check(arguments, environment: Self.jobEnvironment(ProcessInfo.processInfo.environment, secrets: secrets))
            let job = result.standardOutput.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            guard !job.isEmpty else { throw ClusterError("sbatch answered no job id") }
            let stopNow = shared.withLock { state -> Bool in
                state.job = job
                return state.stopping
            }
            for (arrayIndex, runProgress) in progress {
                runProgress.phase(.queued)
                runProgress.step("slurm job \(job)_\(arrayIndex) submitted")
            }
            if stopNow { await cancel(job) }
            await follow(job: job, order: order, proxies: proxies, progress: progress)
        } catch {
            // Nothing ran: every run of the batch ends `error` with the reason.
            for (arrayIndex, itemIndex) in order.enumerated() {
                guard let plan = plans[itemIndex] else { continue }
                var record = Self.errorRecord(plan: plan, reason: "could not submit the batch to Slurm: \(error)")
                record.executor = RunExecutor(kind: ExecutorKind.slurm.rawValue)
                finish(record, itemIndex: itemIndex, progress: progress[arrayIndex] ?? Progress(runID: plan.id, handler: handler))
            }
        }
        for proxy in proxies.values { proxy.stop() }
        return shared.withLock { state in
            let finished = Date()
            state.batch.finished = finished
            state.batch.durationS = (state.batch.durationS ?? 0) + (finished.timeIntervalSince(started) * 1000).rounded() / 1000
            let unstartedForBudget = state.cancelledForBudget ? state.batch.unstartedItems.count : 0
            state.batch.status = state.batch.outcome(stopped: state.stopping, unstartedForBudget: unstartedForBudget)
            try? store.save(state.batch)
            return state.batch
        }
    }

    /// Until every task ended: Slurm's state of each (shown when it changes), each run's
    /// record collected as its task ends.
    private func follow(job: String, order: [Int], proxies: [Int: ModelProxy], progress: [Int: Progress]) async {
        var shown: [Int: SlurmCommands.TaskState] = [:]
        var finished = Set<Int>()
        var failedPolls = 0
        while finished.count < order.count {
            if let budget = plans.values.first?.sharedBudget, budget.isReached {
                // Queued tasks never start once the batch's budget is spent.
                await cancel(job, pendingOnly: true)
            }
            let answer = try? await Command.run(SlurmCommands.squeue(job: job))
            guard let answer, answer.succeeded else {
                failedPolls += 1
                if failedPolls == 5 {
                    progress.values.first?.warn("squeue does not answer (\(SlurmCluster.lastLine(answer?.standardError ?? "not found"))); still waiting for job \(job)")
                }
                try? await Task.sleep(nanoseconds: UInt64(pollSeconds * 1_000_000_000))
                continue
            }
            failedPolls = 0
            let tasks = SlurmCommands.parseTasks(answer.standardOutput)
            for (arrayIndex, itemIndex) in order.enumerated() where !finished.contains(arrayIndex) {
                guard let plan = plans[itemIndex], let runProgress = progress[arrayIndex] else { continue }
                // A task squeue no longer lists (aged out) has ended too.
                let task = tasks[arrayIndex]
                    ?? tasks[SlurmCommands.remainingTasks].map { SlurmCommands.TaskState(index: arrayIndex, state: $0.state, node: nil, reason: $0.reason) }
                    ?? SlurmCommands.TaskState(index: arrayIndex, state: "GONE", node: shown[arrayIndex]?.node, reason: nil)
                if shown[arrayIndex] != task && !task.isFinished {
                    if task.state == "RUNNING" { runProgress.phase(.agent) }
                    runProgress.emit(.placement(state: task.state, node: task.node, reason: task.state == "RUNNING" ? nil : task.reason))
                }
                if task.node == nil, let node = shown[arrayIndex]?.node {
                    shown[arrayIndex] = SlurmCommands.TaskState(index: arrayIndex, state: task.state, node: node, reason: task.reason)
                } else {
                    shown[arrayIndex] = task
                }
                guard task.isFinished else { continue }
                finished.insert(arrayIndex)
                proxies[arrayIndex]?.stop()
                await collect(plan: plan, itemIndex: itemIndex, arrayIndex: arrayIndex, job: job, task: shown[arrayIndex] ?? task,
                        usage: proxies[arrayIndex]?.usage, progress: runProgress)
            }
            if finished.count < order.count { try? await Task.sleep(nanoseconds: UInt64(pollSeconds * 1_000_000_000)) }
        }
    }

    /// The record of a task that ended: the node's run.json with what this patina's proxy
    /// counted, or an `error` naming the node when the task left none.
    private func collect(plan: RunPlan, itemIndex: Int, arrayIndex: Int, job: String, task: SlurmCommands.TaskState,
                         usage: ModelUsage?, progress: Progress) async {
        let executor = RunExecutor(kind: ExecutorKind.slurm.rawValue, jobID: "\(job)_\(arrayIndex)", node: task.node)
        let output = SlurmTask.outputURL(index: arrayIndex, batch: record.id, store: store)
        let apiLog = SlurmTask.directory(batch: record.id, store: store).appendingPathComponent("\(plan.id).api.jsonl")
        guard var run = try? plan.store.load(plan.id) else {
            if task.state == "CANCELLED" && shared.withLock({ state in state.cancelled || state.cancelledForBudget }) && task.node == nil {
                // Cancelled before it started: the item never ran (`batch resume` runs it).
                shared.withLock { state in state.batch.inputs.items[itemIndex].runID = nil }
                try? FileManager.default.removeItem(at: apiLog)
                save()
                progress.emit(.phase(.done))
                return
            }
            let said = Self.lastLines(of: output)
            var record = Self.errorRecord(plan: plan, reason: "slurm task \(job)_\(arrayIndex) on \(task.node ?? "no node") ended \(task.state) without a run"
                + (said.isEmpty ? "" : ": \(said)"))
            record.executor = executor
            try? FileManager.default.removeItem(at: apiLog)
            finish(record, itemIndex: itemIndex, progress: progress)
            return
        }
        if run.status == .running {
            // The task ended without collecting (SIGKILL past KillWait, node lost): the run is
            // collected here from the shared filesystem. Its containers are removed here when
            // it ran on this host, else by the next patina command on its host (a pid and
            // containers mean something only there).
            let node = task.node ?? run.executor?.node ?? "?"
            let cause = task.state == "NODE_FAIL"
                ? "node \(node) was lost (slurm task \(job)_\(arrayIndex) ended NODE_FAIL) before the run was collected"
                : "slurm task \(job)_\(arrayIndex) on \(node) ended \(task.state) before its run was collected"
            let host = run.executor?.host.flatMap { $0 == RunExecutor.thisHost ? nil : $0 }
            progress.warn(cause + "; collecting it here" + (host.map { " (its containers on \($0) are removed by the next patina command there)" } ?? ""))
            let recovered = await Recovery.collect(run, repository: plan.repository, store: plan.store, engine: engine, now: Date(), cause: cause)
            run = recovered.record
            if let problem = recovered.problem { progress.warn("could not collect it: \(problem)") }
        }
        if let usage, run.requests == nil || usage.requests > 0 {
            run.takeFigures(from: usage)
            // The node saw its requests refused; only this patina knows it was the budget.
            if let budget = usage.budgetExceeded, [.failed, .succeeded].contains(run.status) {
                run.status = .budgetExceeded
                run.reason = budget
            }
        }
        run.modelEndpoint = plan.credentials.baseURL.absoluteString
        run.maxCostUSD = plan.maxCostUSD
        var recorded = run.executor ?? executor
        recorded.jobID = recorded.jobID ?? executor.jobID
        recorded.node = recorded.node ?? executor.node
        run.executor = recorded
        if FileManager.default.fileExists(atPath: plan.runDirectory.path) {
            let kept = plan.runDirectory.appendingPathComponent("api.jsonl")
            try? FileManager.default.removeItem(at: kept)
            try? FileManager.default.moveItem(at: apiLog, to: kept)
        }
        try? plan.store.save(run)
        finish(run, itemIndex: itemIndex, progress: progress)
    }

    private func finish(_ run: RunRecord, itemIndex: Int, progress: Progress) {
        shared.withLock { state in
            state.batch.inputs.items[itemIndex].runID = run.id
            state.batch.runs.removeAll { $0.id == run.id }
            state.batch.runs.append(run)
            let order = Dictionary(state.batch.inputs.items.enumerated().compactMap { i, item in item.runID.map { ($0, i) } }, uniquingKeysWith: { a, _ in a })
            state.batch.runs.sort { (order[$0.id] ?? .max, $0.id) < (order[$1.id] ?? .max, $1.id) }
        }
        save()
        progress.phase(.done)
        progress.emit(.finished(run))
    }

    /// A run that never ran on its node.
    static func errorRecord(plan: RunPlan, reason: String) -> RunRecord {
        var record = RunRecord(
            id: plan.id, task: plan.task, status: .error, reason: reason, branch: plan.branch,
            baseCommit: plan.baseCommit.hex, headCommit: nil, repository: plan.repositoryRoot.path,
            worktree: plan.worktree.path, runDir: plan.runDirectory.path,
            sessionLog: RunLayout(runDirectory: plan.runDirectory).sessionLog.path, transcript: nil,
            started: Date(), finished: Date(), durationS: 0, costUSD: nil, numTurns: nil, tokens: nil,
            model: plan.model, maxTurns: plan.maxTurns, timeoutS: plan.timeoutSeconds, image: nil,
            baseImage: plan.baseImage, exitCode: nil, claudeSessionID: nil)
        record.batch = plan.batchID
        record.attempt = plan.attempt
        record.name = plan.name
        record.createdNothing = true
        return record
    }

    /// The last lines a task wrote (its node-side patina's errors), on one line.
    static func lastLines(of url: URL) -> String {
        guard let data = try? Data(contentsOf: url) else { return "" }
        let text = String(decoding: data.suffix(4096), as: UTF8.self)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.suffix(2).joined(separator: " / ")
    }

    private func save() {
        shared.withLock { try? store.save($0.batch) }
    }
}
