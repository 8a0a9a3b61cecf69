import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox

/// Runs left `running` by a patina process that is gone (killed with SIGKILL, a crash,
/// a reboot): every patina command in the repository collects them first, through the
/// same collection path as a run's own collect step, so `patina runs` never shows a
/// dead run as running and no container of it is left behind.
public enum Recovery {
    public struct Recovered: Sendable {
        public var record: RunRecord
        /// Set when the run could not be collected now (it stays `running` for a later try).
        public var problem: String?
    }

    /// Collects every abandoned run of `store`. Returns what it did (`notes`: one line per
    /// abandoned `patina shell` it cleaned up and per abandoned batch it marked interrupted); quick when there is nothing to do.
    public static func collectAbandoned(
        repository: Repository, store: RunStore, engine: DockerEngine = DockerEngine(), now: Date = Date()
    ) async -> (runs: [Recovered], notes: [String]) {
        var notes = await removeAbandonedSandboxes(store: store, engine: engine, repository: repository)
        notes += await removeContainersLeftHere(store: store, engine: engine)
        let running = store.running()
        var results: [Recovered] = []
        for record in running where !RunLiveness.inFlight(record) {
            results.append(await collect(record, repository: repository, store: store, engine: engine, now: now))
        }
        // Runs of another host (a Slurm node) whose task ended without collecting them:
        // collected from the shared filesystem; their containers stay for that host's patina.
        let remote = running.filter { RunLiveness.inFlight($0) && $0.executor?.host != nil && $0.executor?.host != RunExecutor.thisHost && $0.executor?.jobID != nil }
        let fates = remote.isEmpty ? [:] : await SlurmCluster.currentTasks(Set(remote.compactMap { $0.executor?.jobID }))
        for record in remote {
            guard let job = record.executor?.jobID, let ended = fates[job]?.ending(restarts: record.executor?.restarts ?? 0) else { continue }
            let node = record.executor?.node ?? "its node"
            let cause = ended == "REQUEUED"
                ? "its slurm task \(job) on \(node) was requeued by Slurm (its node lost?) before it collected the run"
                : "its slurm task \(job) on \(node) ended \(ended) before it collected the run"
            results.append(await collect(record, repository: repository, store: store, engine: engine, now: now, cause: cause))
        }
        notes += await finishAbandonedBatches(store: store, now: now)
        return (results, notes)
    }

    /// Batches left `running` by a patina of this host that is gone: once none of their
    /// runs is still running (recovery collected them), each is marked `interrupted` with
    /// its runs' records as they are now, so `patina batch resume` can finish it. A Slurm
    /// batch's job is cancelled first: its tasks' model proxies died with that patina.
    /// Returns a line for each batch marked.
    static func finishAbandonedBatches(store: RunStore, now: Date) async -> [String] {
        let batches = BatchStore(runs: store)
        var lines: [String] = []
        for var batch in batches.running() where batch.status == .running && (batch.host ?? RunExecutor.thisHost) == RunExecutor.thisHost
            && !RunLiveness.patinaAlive(pid: batch.pid) {
            if let job = batch.slurmJob { _ = try? await Command.run(["scancel", job]) }
            let runs = batch.inputs.items.compactMap(\.runID).compactMap { try? store.load($0) }
            guard !runs.contains(where: { $0.status == .running }) else { continue }
            batch.runs = runs
            batch.status = .interrupted
            batch.finished = batch.finished ?? now
            guard (try? batches.save(batch)) != nil else { continue }
            lines.append("batch \(batch.id) was left running by a patina that is gone; marked it interrupted with its \(runs.count) run\(runs.count == 1 ? "" : "s") (`patina batch resume \(batch.id)` finishes it)")
        }
        return lines
    }

    /// Sandboxes started for runs whose patina died before their record existed (the
    /// network holder starts while the run is planned; `RunStore.pending`), and `patina
    /// shell`s whose patina died (a shell keeps no record): their containers are removed,
    /// and the run directory with them when it holds no record (a run with a record is
    /// collected as such). One directory listing when there is nothing to do.
    /// Returns a line for each shell it cleaned up.
    static func removeAbandonedSandboxes(store: RunStore, engine: DockerEngine, repository: Repository) async -> [String] {
        var shells: [String] = []
        for (id, pid, host) in store.pending() where (host ?? RunExecutor.thisHost) == RunExecutor.thisHost && (pid.map({ !RunLiveness.patinaAlive(pid: $0) }) ?? true) {
            let left = await RunCollection.removeContainers(engine: engine, runID: id, keeping: nil, daemonWait: 5)
            guard left.isEmpty else { continue }
            let shell = store.shellDirectory(id)
            if FileManager.default.fileExists(atPath: shell.path) {
                shells.append(collectAbandonedShell(id, directory: shell, repository: repository))
            } else if !FileManager.default.fileExists(atPath: store.recordURL(id).path) {
                try? FileManager.default.removeItem(at: store.runDirectory(id))
            }
            store.clearPending(id)
        }
        return shells
    }

    /// The containers of runs of this host that a patina on another host collected (their
    /// task died on this node): removed here, where they live. A line for each.
    static func removeContainersLeftHere(store: RunStore, engine: DockerEngine) async -> [String] {
        var lines: [String] = []
        for id in store.leftOnHost() {
            let left = await RunCollection.removeContainers(engine: engine, runID: id, keeping: nil, daemonWait: 5)
            guard left.isEmpty else { continue }
            store.clearLeft(id)
            lines.append("removed the containers of run \(id), which another host collected after its task on this one died")
        }
        return lines
    }

    /// What a shell's own collect step does, for a shell whose patina died: its view of the
    /// worktree detached, the commits made in it onto the run's branch, the worktree handed
    /// back, its scratch directory removed (nothing of it remains to review).
    static func collectAbandonedShell(_ id: String, directory: URL, repository: Repository) -> String {
        let layout = RunLayout(runDirectory: directory)
        var outcome = "cleaned up"
        if let session = ShellSession.load(from: directory),
           let collection = session.collection(repository: repository, directory: directory, shellID: id) {
            collection.releaseWorktreeView()
            do {
                let head = try collection.collectShellCommits()
                outcome = head == collection.base ? "cleaned up (no commits made in it)"
                    : "cleaned up; its commits moved \(session.branch) to \(head.short)"
            } catch {
                outcome = "cleaned up; its commits were not collected: \(error)"
            }
            collection.reclaimOwnership()
            outcome = "a patina shell in run \(session.runID) was left by a patina that is gone; " + outcome
        } else {
            // Killed before its branch step: nothing of the run's was touched, but a view may exist.
            IdmappedMount.detach(layout.worktreeView)
            rmdir(layout.worktreeView.path)
            outcome = "a patina shell (\(id)) was left by a patina that is gone before it started; cleaned up"
        }
        try? FileManager.default.removeItem(at: directory)
        return outcome
    }

    /// `cause`: why it is collected here, when it is not that its patina's pid is gone. A
    /// run of another host (`executor.host`) is collected from the shared filesystem only:
    /// its containers are left to the next patina command on that host (`RunStore.markLeft`).
    static func collect(_ found: RunRecord, repository: Repository, store: RunStore, engine: DockerEngine, now: Date,
                        cause: String? = nil) async -> Recovered {
        var record = found
        let layout = RunLayout(runDirectory: URL(fileURLWithPath: record.runDir))
        // One recovering process per run: another patina command may be at it too.
        let lock = layout.runDirectory.appendingPathComponent("recovering.lock")
        let fd = open(lock.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return Recovered(record: record, problem: "another patina command is collecting it") }
        close(fd)
        defer { try? FileManager.default.removeItem(at: lock) }
        // Re-read under the lock: the other process may have finished it.
        if let fresh = try? store.load(record.id), fresh.status != .running { return Recovered(record: fresh, problem: nil) }

        let otherHost = record.executor?.host.flatMap { $0 == RunExecutor.thisHost ? nil : $0 }
        if let otherHost {
            do {
                try store.markLeft(record.id, onHost: otherHost)
            } catch {
                return Recovered(record: record, problem: "could not note its containers for \(otherHost): \(error)")
            }
        } else {
            let left = await RunCollection.removeContainers(engine: engine, runID: record.id, keeping: nil)
            guard left.isEmpty else {
                return Recovered(record: record, problem: "its containers could not be removed (\(left.joined(separator: ", "))); it stays for a later patina command")
            }
        }
        guard let base = ObjectID(hex: record.baseCommit) else {
            return Recovered(record: record, problem: "its record has no valid base commit")
        }
        var policy = DiskPolicy()
        if let bytes = record.maxFileSizeBytes { policy.maxFileBytes = bytes }
        if let count = record.maxNewPaths { policy.maxNewPaths = count }
        let collection = RunCollection(repository: repository, layout: layout, worktree: URL(fileURLWithPath: record.worktree),
                                       branch: record.branch, base: base, runID: record.id, policy: policy)
        DiskReserve(url: layout.diskReserve).release()
        collection.releaseWorktreeView()
        collection.copyTranscript(into: &record)
        defer { collection.reclaimOwnership() }
        var reasons = [cause.map { "\($0); collected from the shared filesystem by patina on \(RunExecutor.thisHost)" }
            ?? "patina (pid \(record.pid.map(String.init) ?? "unknown")) stopped before it collected the run; a later patina command collected it"]
        if let otherHost { reasons.append("its containers on \(otherHost) are removed by the next patina command there") }
        let agentStarted = FileManager.default.fileExists(atPath: layout.sessionLog.path)
        if !agentStarted {
            // Stopped before the agent ran (maybe halfway through creating the worktree):
            // the branch holds nothing of the agent's; remove what this run created.
            if record.resumedFrom == nil {
                _ = try? repository.removeRunGitState(of: record)
            }
            try? FileManager.default.removeItem(at: layout.sandbox)
            record.headCommit = nil
            reasons.append("the agent had not started: nothing to collect, the branch was removed")
        } else if repository.branchExists(record.branch) {
            let (head, problems, _, notes) = collection.collectBranch(into: &record)
            let round = RoundLoop.roundNumber(of: layout.runDirectory)
            reasons += problems + notes + collection.tagSession(head: head, record: record, round: round ?? 1, rounds: round ?? 1)
        } else {
            reasons.append("its branch \(record.branch) is gone")
        }
        if record.requests == nil {
            // Its patina died before it counted: api.jsonl holds what the model answered.
            let entries = APILogEntry.read(layout.apiLog)
            if !entries.isEmpty { record.takeFigures(from: ModelUsage(replaying: entries)) }
        }
        record.status = .interrupted
        record.reason = ([record.reason].compactMap { $0 } + reasons).joined(separator: "; ")
        record.finished = now
        record.durationS = ((now.timeIntervalSince(record.started)) * 1000).rounded() / 1000
        CheckCaches.remove(under: layout.checkCaches)
        for url in layout.scratch {
            try? FileManager.default.removeItem(at: url)
        }
        let secrets = Credentials.secretValues(in: ProcessInfo.processInfo.environment)
        _ = try? SessionMarkdown.write(record: record, repository: repository, secrets: secrets)
        // A later round of a run with rounds: folded into the run's record as the loop would have.
        if let round = RoundLoop.roundNumber(of: layout.runDirectory), var run = RoundLoop.savedRun(in: layout.runDirectory.deletingLastPathComponent()),
           let base = ObjectID(hex: run.baseCommit), let roundBase = ObjectID(hex: record.baseCommit) {
            RoundLoop.merge(record, round: round, base: roundBase, into: &run, originalBase: base, repository: repository)
            run.stopReason = .interrupted
            run.passedAtRound = run.rounds?.first(where: { $0.check?.passed == true })?.round
            run.finished = now
            run.durationS = ((now.timeIntervalSince(run.started)) * 1000).rounded() / 1000
            _ = try? SessionMarkdown.write(record: run, repository: repository, secrets: secrets)
            try? RoundsMarkdown.append(record: run, to: URL(fileURLWithPath: run.runDir).appendingPathComponent("session.md"))
            record = run
        }
        do {
            try store.save(record)
        } catch {
            return Recovered(record: record, problem: "its record could not be saved: \(error)")
        }
        return Recovered(record: record, problem: nil)
    }
}
