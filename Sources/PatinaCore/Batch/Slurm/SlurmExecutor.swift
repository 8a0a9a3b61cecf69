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
        // A submitting patina inside a requeued Slurm job: its count is not its tasks'
        // (Slurm sets it in a task only once that task was requeued).
        if environment["SLURM_RESTART_COUNT"] != nil { changes["SLURM_RESTART_COUNT"] = .some(nil) }
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

    /// One array task as the executor follows it: the run its current start runs, that
    /// run's proxy and progress, and the starts Slurm requeued before it.
    private struct Slot {
        var itemIndex: Int
        var plan: RunPlan
        var proxy: ModelProxy
        var progress: Progress
        /// Slurm's restart count of the start this slot's task file is for.
        var restarts = 0
        var requeues: [RequeueRecord] = []
    }

    public func run() async -> BatchRecord {
        let started = Date()
        let order = plans.keys.sorted()
        let batchID = record.id
        let slurmDirectory = SlurmTask.directory(batch: batchID, store: store)
        var slots: [Int: Slot] = [:]
        do {
            // Readable by this user only: the task files hold the runs' placeholders.
            try FileManager.default.createDirectory(at: slurmDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let listen: String
            if let address = options.proxyListen { listen = address } else { listen = try await engine.bridgeGateway() }
            for (arrayIndex, itemIndex) in order.enumerated() {
                guard let plan = plans[itemIndex] else { continue }
                slots[arrayIndex] = try open(plan, itemIndex: itemIndex, arrayIndex: arrayIndex, listen: listen,
                                             progress: Progress(runID: plan.id, handler: handler))
            }
            shared.withLock { state in
                state.batch.pid = getpid()
                state.batch.host = RunExecutor.thisHost
            }
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
                state.batch.slurmJob = job
                return state.stopping
            }
            save()
            for (arrayIndex, slot) in slots {
                slot.progress.phase(.queued)
                slot.progress.step("slurm job \(job)_\(arrayIndex) submitted")
            }
            if stopNow { await cancel(job) }
            await follow(job: job, order: order, slots: &slots, listen: listen)
        } catch {
            // Nothing ran: every run of the batch ends `error` with the reason.
            for (arrayIndex, itemIndex) in order.enumerated() {
                guard let plan = plans[itemIndex] else { continue }
                var record = Self.errorRecord(plan: plan, reason: "could not submit the batch to Slurm: \(error)")
                record.executor = RunExecutor(kind: ExecutorKind.slurm.rawValue)
                finish(record, itemIndex: itemIndex, progress: slots[arrayIndex]?.progress ?? Progress(runID: plan.id, handler: handler))
            }
        }
        for slot in slots.values { slot.proxy.stop() }
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

    /// A run's proxy (the credential, the accounting, the budgets stay here) and its
    /// task's file for the start `restarts` of array task `arrayIndex`.
    private func open(_ plan: RunPlan, itemIndex: Int, arrayIndex: Int, listen: String, progress: Progress, restarts: Int = 0) throws -> Slot {
        let credentials = plan.credentials
        let placeholder = ModelProxyConfiguration.makePlaceholder(scheme: credentials.upstream.scheme)
        var configuration = ModelProxyConfiguration(
            listenAddress: listen, upstream: credentials.baseURL, credential: credentials.upstream, placeholder: placeholder,
            prices: plan.prices, maxCostUSD: plan.maxCostUSD, sharedLimit: plan.sharedBudget,
            apiLog: SlurmTask.directory(batch: record.id, store: store).appendingPathComponent("\(plan.id).api.jsonl"),
            secrets: credentials.secretValues)
        configuration.apiPolicy = plan.apiPolicy
        // The agent runs on a node: its proxy cannot stop it there; the budget's refusal does.
        let proxy = try ModelProxy(configuration: configuration,
                                   onEvent: RunLifecycle.proxyEventHandler(progress: progress, control: RunControl(engine: engine)))
        do {
            let model = ModelAccess(baseURL: proxy.baseURL, variable: credentials.variable, placeholder: placeholder)
            try SlurmTask(item: itemIndex, runID: plan.id, model: model, restarts: restarts)
                .write(to: SlurmTask.url(index: arrayIndex, batch: record.id, store: store))
        } catch {
            proxy.stop()
            throw error
        }
        shared.withLock { state in state.batch.inputs.items[itemIndex].runID = plan.id }
        return Slot(itemIndex: itemIndex, plan: plan, proxy: proxy, progress: progress, restarts: restarts)
    }

    /// Until every task ended: Slurm's state of each (shown when it changes), a requeued
    /// task handed a new run, each run's record collected as its task ends.
    private func follow(job: String, order: [Int], slots: inout [Int: Slot], listen: String) async {
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
                    slots.values.first?.progress.warn("squeue does not answer (\(SlurmCluster.lastLine(answer?.standardError ?? "not found"))); still waiting for job \(job)")
                }
                try? await Task.sleep(nanoseconds: UInt64(pollSeconds * 1_000_000_000))
                continue
            }
            failedPolls = 0
            let tasks = SlurmCommands.parseTasks(answer.standardOutput)
            for arrayIndex in order.indices where !finished.contains(arrayIndex) {
                guard let slot = slots[arrayIndex] else { continue }
                // A task squeue no longer lists (aged out) has ended too.
                let task = tasks[arrayIndex]
                    ?? tasks[SlurmCommands.remainingTasks].map { SlurmCommands.TaskState(index: arrayIndex, state: $0.state, node: nil, reason: $0.reason) }
                    ?? SlurmCommands.TaskState(index: arrayIndex, state: "GONE", node: shown[arrayIndex]?.node, reason: nil, restarts: slot.restarts)
                // (A task requeued and then ended, e.g. cancelled while pending, ends the slot's run below.)
                if task.restarts > slot.restarts && !task.isFinished {
                    // Slurm requeued the task (its node lost, preemption). Once the start this
                    // slot followed is over (a live node's patina collects its run while the
                    // task completes), the next start gets a new run.
                    guard task.isPastEarlierStart else { continue }
                    if let next = await requeued(slot, arrayIndex: arrayIndex, job: job, task: task, node: shown[arrayIndex]?.node, listen: listen) {
                        slots[arrayIndex] = next
                    } else {
                        finished.insert(arrayIndex)
                    }
                    shown[arrayIndex] = nil
                    continue
                }
                if shown[arrayIndex] != task && !task.isFinished {
                    if task.reason == SlurmCommands.launchFailedHeld {
                        // Slurm holds a task whose start failed on its node (a prolog, the
                        // node's set-up) until an administrator releases it: nothing more starts.
                        slot.progress.warn("slurm holds task \(job)_\(arrayIndex) (\(task.reason ?? "")); cancelled it, see the node's slurmd log")
                        _ = try? await Command.run(["scancel", "\(job)_\(arrayIndex)"])
                    }
                    if task.state == "RUNNING" { slot.progress.phase(.agent) }
                    slot.progress.emit(.placement(state: task.state, node: task.node, reason: task.state == "RUNNING" ? nil : task.reason))
                }
                if task.node == nil, let node = shown[arrayIndex]?.node {
                    shown[arrayIndex] = SlurmCommands.TaskState(index: arrayIndex, state: task.state, node: node, reason: task.reason, restarts: task.restarts)
                } else {
                    shown[arrayIndex] = task
                }
                guard task.isFinished else { continue }
                finished.insert(arrayIndex)
                slot.proxy.stop()
                await collect(slot, arrayIndex: arrayIndex, job: job, task: shown[arrayIndex] ?? task)
            }
            if finished.count < order.count { try? await Task.sleep(nanoseconds: UInt64(pollSeconds * 1_000_000_000)) }
        }
    }

    /// Slurm requeued array task `arrayIndex` (restart `task.restarts`) and its earlier
    /// start is over (no longer completing). Its proxy is closed: its placeholder opens
    /// nothing any more, whatever still runs on a lost node. The item starts over as a new
    /// run, as a local run requeued for the API's pushback does: the new run's task file is
    /// written first (the task waits on its node until it names that start), then the
    /// earlier run is collected here from the shared filesystem, and discarded when it left
    /// nothing (no commit, no request), else kept whole as one the batch replaced. Returns
    /// the slot to follow, or nil when the task is done with: its earlier run had already
    /// ended on its own (it stays the item's), or the batch stops, or the new run could not
    /// be handed over; the requeued start is cancelled then.
    private func requeued(_ slot: Slot, arrayIndex: Int, job: String, task: SlurmCommands.TaskState, node: String?, listen: String) async -> Slot? {
        let taskID = "\(job)_\(arrayIndex)"
        let cause = "slurm requeued task \(taskID) (restart \(task.restarts)) while its run \(slot.plan.id) was on \(node ?? "a node")"
            + (node.map { " (node \($0) lost?)" } ?? "")
        slot.proxy.stop()
        let executor = RunExecutor(kind: ExecutorKind.slurm.rawValue, jobID: taskID, node: node)
        // A run that reached its own verdict before the requeue (not one the requeue's
        // SIGTERM interrupted) is the item's run: it does not start over.
        let ended = (try? slot.plan.store.load(slot.plan.id)).map { ![.running, .interrupted].contains($0.status) } ?? false
        let stopping = shared.withLock { state in state.stopping || state.cancelled || state.cancelledForBudget }
            || slot.plan.sharedBudget?.isReached == true
        let replanned = ended || stopping ? nil : try? slot.plan.replanned()
        guard let replanned else {
            await keepEarlier(slot, taskID: taskID, cause: cause, executor: executor,
                              because: ended ? "; its run had ended already, so it does not start again" : "; the batch is stopping, so it does not start again")
            return nil
        }
        let progress = Progress(runID: replanned.id, handler: handler)
        let next: Slot
        do {
            next = try open(replanned, itemIndex: slot.itemIndex, arrayIndex: arrayIndex, listen: listen, progress: progress, restarts: task.restarts)
        } catch {
            await keepEarlier(slot, taskID: taskID, cause: cause, executor: executor, because: "; could not start it again: \(error)")
            return nil
        }
        var following = next
        following.requeues = slot.requeues + [RequeueRecord(at: Date(), reason: cause, backoffS: 0)]
        let earlier = await settle(slot, cause: cause + " before the run was collected", executor: executor)
        // A run still `running` is another patina's to collect: kept, never removed under it.
        if let earlier, earlier.status == .running || (earlier.commits ?? 0) > 0 || earlier.leftoversCommitted || (earlier.requests ?? 0) > 0 {
            var replaced = ReplacedRun(earlier)
            replaced.replacedBy = replanned.id
            shared.withLock { state in
                state.batch.runs.removeAll { $0.id == earlier.id }
                state.batch.replacedRuns.append(replaced)
            }
        } else {
            let record = earlier ?? Self.errorRecord(plan: slot.plan, reason: cause)
            _ = try? slot.plan.repository.removeRunGitState(of: record)
            try? FileManager.default.removeItem(at: slot.plan.runDirectory)
            slot.plan.store.clearRunning(record.id)
        }
        try? FileManager.default.removeItem(at: SlurmTask.directory(batch: record.id, store: store).appendingPathComponent("\(slot.plan.id).api.jsonl"))
        slot.progress.warn(cause + "; it starts over as run \(replanned.id)"
            + (earlier.map { " (\($0.id) \($0.status.rawValue)" + ((($0.commits ?? 0) > 0) ? ", its work kept on \($0.branch))" : ")") } ?? ""))
        slot.progress.emit(.replaced(by: replanned.id))
        progress.phase(.queued)
        progress.step("slurm task \(taskID) requeued (restart \(task.restarts)): run \(replanned.id)")
        save()
        return following
    }

    /// A requeued start that does not run: it is cancelled, and the earlier run (collected
    /// here if its node did not) stays the item's.
    private func keepEarlier(_ slot: Slot, taskID: String, cause: String, executor: RunExecutor, because: String) async {
        slot.progress.warn(cause + because)
        _ = try? await Command.run(["scancel", taskID])
        var run: RunRecord
        if let settled = await settle(slot, cause: cause + " before the run was collected", executor: executor) {
            run = settled
        } else {
            run = Self.errorRecord(plan: slot.plan, reason: cause + because)
            run.requeues = slot.requeues.isEmpty ? nil : slot.requeues
            try? slot.plan.store.save(run)
        }
        finish(run, itemIndex: slot.itemIndex, progress: slot.progress)
    }

    /// The record of a task that ended: the node's run.json with what this patina's proxy
    /// counted, or an `error` naming the node when the task left none.
    private func collect(_ slot: Slot, arrayIndex: Int, job: String, task: SlurmCommands.TaskState) async {
        let plan = slot.plan, itemIndex = slot.itemIndex, progress = slot.progress
        let executor = RunExecutor(kind: ExecutorKind.slurm.rawValue, jobID: "\(job)_\(arrayIndex)", node: task.node)
        let output = SlurmTask.outputURL(index: arrayIndex, batch: record.id, store: store)
        let apiLog = SlurmTask.directory(batch: record.id, store: store).appendingPathComponent("\(plan.id).api.jsonl")
        guard (try? plan.store.load(plan.id)) != nil else {
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
            record.requeues = slot.requeues.isEmpty ? nil : slot.requeues
            try? FileManager.default.removeItem(at: apiLog)
            finish(record, itemIndex: itemIndex, progress: progress)
            return
        }
        let node = task.node ?? "?"
        let cause = task.state == "NODE_FAIL"
            ? "node \(node) was lost (slurm task \(job)_\(arrayIndex) ended NODE_FAIL) before the run was collected"
            : "slurm task \(job)_\(arrayIndex) on \(node) ended \(task.state) before its run was collected"
        guard let run = await settle(slot, cause: cause, executor: executor) else { return }
        finish(run, itemIndex: itemIndex, progress: progress)
    }

    /// The run of a task's start that is over, as its node left it on the shared
    /// filesystem: collected here when the node did not (SIGKILL past KillWait, node lost),
    /// with what this patina's proxy counted, its api.jsonl and the requeues before it; saved.
    /// Nil when it left no record.
    private func settle(_ slot: Slot, cause: String, executor: RunExecutor) async -> RunRecord? {
        let plan = slot.plan, progress = slot.progress
        guard var run = try? plan.store.load(plan.id) else { return nil }
        if run.status == .running {
            // Its containers are removed here when it ran on this host, else by the next
            // patina command on its host (a pid and containers mean something only there).
            let host = run.executor?.host.flatMap { $0 == RunExecutor.thisHost ? nil : $0 }
            progress.warn(cause + "; collecting it here" + (host.map { " (its containers on \($0) are removed by the next patina command there)" } ?? ""))
            let recovered = await Recovery.collect(run, repository: plan.repository, store: plan.store, engine: engine, now: Date(), cause: cause)
            run = recovered.record
            if let problem = recovered.problem { progress.warn("could not collect it: \(problem)") }
        }
        let usage = slot.proxy.usage
        if run.requests == nil || usage.requests > 0 {
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
        if !slot.requeues.isEmpty { run.requeues = slot.requeues }
        let apiLog = SlurmTask.directory(batch: record.id, store: store).appendingPathComponent("\(plan.id).api.jsonl")
        if FileManager.default.fileExists(atPath: plan.runDirectory.path), FileManager.default.fileExists(atPath: apiLog.path) {
            let kept = plan.runDirectory.appendingPathComponent("api.jsonl")
            try? FileManager.default.removeItem(at: kept)
            try? FileManager.default.moveItem(at: apiLog, to: kept)
        }
        try? plan.store.save(run)
        return run
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
