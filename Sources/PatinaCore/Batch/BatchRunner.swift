import Foundation
import PatinaModelProxy
import PatinaSandbox
import Synchronization

/// Runs a batch's items through a queue: never more than `jobs` runs past
/// planning at once, images built once (ImageCache), every started run
/// collected. A run the model's API rate-limited (429/529) before it did any
/// work goes back in the queue after a backoff, and the batch runs fewer at
/// once until a run succeeds again. `stop()` (Ctrl-C) starts nothing new,
/// stops the running agents, and still collects them.
public final class BatchRunner: Sendable {
    /// What the runs change, under the lock.
    private struct State {
        var batch: BatchRecord
        var controls: [String: RunControl] = [:]
        var stopping = false
        /// Items that never started because the batch's budget was spent.
        var unstartedForBudget = 0
    }
    private let state: Mutex<State>
    private let plans: [Int: RunPlan]
    private let store: BatchStore
    private let engine: DockerEngine
    private let handler: RunEventHandler
    private let gate: Gate
    private let backoff: Double
    public static let maxRequeues = 3

    /// `plans`: the plan of each item to run, by index into `batch.inputs.items`.
    public init(batch: BatchRecord, plans: [Int: RunPlan], store: BatchStore, engine: DockerEngine,
                backoffSeconds: Double, handler: @escaping RunEventHandler) {
        self.state = Mutex(State(batch: batch))
        self.plans = plans
        self.store = store
        self.engine = engine
        self.handler = handler
        self.backoff = backoffSeconds
        self.gate = Gate(limit: batch.jobs)
    }

    public var record: BatchRecord { state.withLock { $0.batch } }

    public func run() async -> BatchRecord {
        let started = Date()
        state.withLock { state in
            state.batch.pid = getpid()
            state.batch.host = RunExecutor.thisHost
        }
        // Before the batch's folder exists: its runs' store lies in the neutral folder from the
        // start (not for Slurm's batches: their nodes must find the store on the shared filesystem).
        StorePlacement.place(store.runs)
        save()
        await withTaskGroup(of: Void.self) { group in
            for index in plans.keys.sorted() {
                group.addTask { await self.runItem(index) }
            }
        }
        return state.withLock { state in
            let finished = Date()
            state.batch.finished = finished
            state.batch.durationS = (state.batch.durationS ?? 0) + (finished.timeIntervalSince(started) * 1000).rounded() / 1000
            state.batch.status = state.batch.outcome(stopped: state.stopping, unstartedForBudget: state.unstartedForBudget)
            try? store.save(state.batch)
            return state.batch
        }
    }

    /// Ctrl-C/SIGTERM: queued runs never start; running agents are stopped and collected.
    public func stop() async {
        let running = state.withLock { state -> [RunControl] in
            state.stopping = true
            return Array(state.controls.values)
        }
        for control in running { await control.stop(.interrupted) }
        await gate.drain()
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    private func runItem(_ index: Int) async {
        guard var plan = plans[index] else { return }
        var requeues: [RequeueRecord] = []
        while true {
            await gate.acquire()
            if let budget = plan.sharedBudget, budget.isReached {
                // The batch's budget is spent: this item never starts (`batch resume` can run it later).
                let first = state.withLock { state -> Bool in
                    state.unstartedForBudget += 1
                    return state.unstartedForBudget == 1
                }
                if first {
                    Progress(runID: plan.id, handler: handler).warn(
                        "the batch's budget (--max-total-cost \(Money.format(budget.limitUSD))) is spent (\(Money.format(budget.spentUSD))): queued runs do not start")
                }
                await gate.release()
                return
            }
            if let shortage = DiskFloorWatch(plan: plan).shortage(reserve: DiskReserve.bytes) {
                // A disk below its floor: this item does not start (`batch resume` can run it
                // once there is room again).
                let first = state.withLock { state -> Bool in
                    defer { if state.batch.diskLow == nil { state.batch.diskLow = shortage } }
                    return state.batch.diskLow == nil
                }
                if first {
                    Progress(runID: plan.id, handler: handler).warn("queued runs do not start: \(shortage)")
                }
                save()
                await gate.release()
                return
            }
            let control = RunControl(engine: engine)
            let startedRun = state.withLock { state -> Bool in
                guard !state.stopping else { return false }
                state.controls[plan.id] = control
                state.batch.inputs.items[index].runID = plan.id
                return true
            }
            guard startedRun else {
                await gate.release()
                return
            }
            save()
            let progress = Progress(runID: plan.id, handler: handler)
            var record = await RunLifecycle(plan: plan, engine: engine, progress: progress, control: control).execute()
            state.withLock { _ = $0.controls.removeValue(forKey: plan.id) }
            await gate.release()

            if let status = record.apiErrorStatus, !isStopping, requeues.count < Self.maxRequeues,
               record.commits ?? 0 == 0, !record.leftoversCommitted, let replanned = try? plan.replanned() {
                // Rate-limited before doing any work: not a verdict on the task. Drop the
                // empty run and queue the item again, with fewer runs at once meanwhile.
                let wait = backoff * pow(2, Double(requeues.count))
                requeues.append(RequeueRecord(at: Date(), reason: "run \(plan.id): the model API answered \(status)", backoffS: wait))
                progress.warn("the model API answered \(status) (rate limit/overload): back in the queue in \(DurationParser.format(wait)) as \(replanned.id)")
                progress.emit(.replaced(by: replanned.id))
                discard(record, plan: plan)
                await gate.lower()
                try? await Task.sleep(nanoseconds: UInt64(wait * 1_000_000_000))
                plan = replanned
                continue
            }
            // The model answered to the end: a failed check says nothing about rate limits.
            if record.status == .succeeded || record.status == .checkFailed { await gate.restore() }
            if !requeues.isEmpty {
                record.requeues = requeues
                try? plan.store.save(record)
            }
            state.withLock { state in
                state.batch.runs.removeAll { $0.id == record.id }
                state.batch.runs.append(record)
                let order = Dictionary(state.batch.inputs.items.enumerated().compactMap { i, item in item.runID.map { ($0, i) } }, uniquingKeysWith: { a, _ in a })
                state.batch.runs.sort { (order[$0.id] ?? .max, $0.id) < (order[$1.id] ?? .max, $1.id) }
            }
            save()
            return
        }
    }

    /// Removes a run that did nothing: its worktree, branch, session tags and directory.
    private func discard(_ record: RunRecord, plan: RunPlan) {
        _ = try? plan.repository.removeRunGitState(of: record)
        try? FileManager.default.removeItem(at: plan.runDirectory)
        plan.store.clearRunning(record.id)
    }

    private func save() {
        state.withLock { try? store.save($0.batch) }
    }
}

/// At most `limit` holders at once; the limit can drop while the API pushes
/// back and comes back when runs succeed again.
actor Gate {
    private var limit: Int
    private let maxLimit: Int
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var open = false

    init(limit: Int) {
        self.limit = max(1, limit)
        self.maxLimit = max(1, limit)
    }

    func acquire() async {
        if open || inFlight < limit {
            inFlight += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        inFlight -= 1
        pump()
    }

    func lower() { limit = max(1, limit / 2) }

    func restore() {
        limit = maxLimit
        pump()
    }

    /// Lets every waiter through (they see the batch stopping and return at once).
    func drain() {
        open = true
        let all = waiters
        waiters.removeAll()
        inFlight += all.count
        for waiter in all { waiter.resume() }
    }

    private func pump() {
        while inFlight < limit, !waiters.isEmpty {
            inFlight += 1
            waiters.removeFirst().resume()
        }
    }
}
