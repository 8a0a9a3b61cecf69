import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox

/// Step "collect": always runs once a branch exists. The agent's containers go
/// first, then its commits and leftovers come home through `Collector.collect`
/// (the one collection path, the one the tests exercise), then the check (if
/// any) runs while the firewall is still up, then every container is removed.
extension RunLifecycle {
    var collection: RunCollection {
        RunCollection(repository: plan.repository, layout: layout, worktree: plan.worktree,
                      branch: plan.branch, base: plan.baseCommit, runID: plan.id, policy: plan.disk)
    }

    /// What the agent's uid must own during the run when patina runs as root.
    var sandboxOwnedPaths: [URL] { collection.sandboxOwnedPaths }

    /// Returns the record with what was collected, and what is left to do once it can be
    /// written: the holder's removal (under way), a last listing that confirms no container
    /// of the run is left, the warm caches handed back, the canary closed, the sandbox's
    /// scratch removed.
    func collectAndCheck(_ input: CollectInput) async -> (RunRecord, Task<Void, Never>) {
        progress.phase(.collect)
        let start = Date()
        var record = input.record
        let agentStarted = input.agentStarted, holder = input.holder
        // Whatever happened, the proxy stops before anything else runs in this run's network.
        let proxy = input.sandbox?.proxy
        proxy?.stop()
        if let usage = proxy?.usage, agentStarted, record.requests == nil { record.takeFigures(from: usage) }
        let collection = self.collection
        // Nothing in the sandbox may change the tree while it is read: the agent's
        // containers are confirmed gone first. The firewall's holder (patina's own
        // container, which mounts none of the agent's tree) is read meanwhile, then goes
        // while the tree is collected, or stays up for the check.
        let holderContainer = holder.agentNetwork != nil ? holder.holderName : nil
        let keepNetwork = plan.check != nil && agentStarted
        let engine = self.engine
        // The holder goes as soon as its reports are read, while the agent's containers go.
        let reports = Task { await holder.captureReports() }
        let holderRemoval = holderContainer.map { name in
            Task {
                await reports.value
                return keepNetwork ? false : await engine.remove([name])
            }
        }
        // The worktree's index is patina's (never mounted): read while the containers go.
        let repository = plan.repository, worktree = plan.worktree, wanted = agentStarted && plan.shell == nil
        let preparing = Task { wanted ? try? WorktreeIndex(host: repository, worktree: worktree) : nil }
        let removedFirst = await control.started
        let left = await RunCollection.removeContainers(engine: engine, runID: plan.id, keeping: holderContainer, known: removedFirst)
        // resolver.log is written (and later swept for credentials) before anything else runs.
        await reports.value
        var parts = CollectTimings(start: start)
        parts.lap("containers")
        if !left.isEmpty {
            record.status = .error
            record.reason = ([record.reason].compactMap { $0 } + [
                "collection stopped: the run's containers \(left.joined(separator: ", ")) could not be removed, so the agent's tree was not read; remove them (docker rm -f) and the branch stays at its base",
            ]).joined(separator: "; ")
            progress.warn(record.reason!)
            _ = await holderRemoval?.value
            await holder.tearDown()
            return (record, Task {})
        }
        collection.releaseWorktreeView()
        collection.copyTranscript(into: &record, redactor: redactor)
        let unresolved = ProbeHandshake.unresolvedOptionalNames((try? String(contentsOf: layout.probeReport, encoding: .utf8)) ?? "")
        record.unresolvedPresetNames = unresolved.isEmpty ? nil : unresolved
        guard agentStarted else {
            collection.reclaimOwnership()
            // The agent never ran: the branch holds nothing; remove it and its worktree.
            cleanUpBranch(input.branch)
            record.headCommit = nil
            steps.record("collect", Date().timeIntervalSince(start), "agent never started; branch removed")
            return (record, teardown(input, after: holderRemoval, removing: [layout.sandbox], removedFirst: removedFirst))
        }
        if plan.shell != nil {
            collectShell(into: &record)
            collection.reclaimOwnership()
            return (record, teardown(input, after: holderRemoval, removing: [], removedFirst: removedFirst))
        }
        // Read while the tree is still the agent's: its stat data then matches the index
        // refreshed at render, so only what the agent changed is read. Handed back after.
        let (head, problems, leftovers, notes) = collection.collectBranch(
            into: &record, scope: watchedScope(input.branch.watch), prepared: await preparing.value)
        parts.lap("git")
        collection.reclaimOwnership()
        parts.lap("ownership")
        if leftovers { progress.note("committed changes the agent left uncommitted") }
        let sensitive = record.markedPaths
        if !sensitive.isEmpty {
            progress.warn("the run changed files that affect later sandboxes or your machine: "
                + sensitive.map { "\($0.path) (\($0.reason))" }.joined(separator: ", ") + "; review with `patina diff \(plan.id)`")
        }
        // What the leftovers policy kept out is said in the reason, and is no failure of the run.
        let all = problems + notes + collection.tagSession(head: head, record: record, round: plan.round, rounds: plan.rounds)
        parts.lap("tags")
        if !all.isEmpty {
            record.reason = ([record.reason].compactMap { $0 } + all).joined(separator: "; ")
            if record.status == .succeeded && !problems.isEmpty { record.status = .error }
        }
        steps.record("collect", Date().timeIntervalSince(start), "head \(head.short); \(parts)")
        if let command = plan.check, let sandbox = input.sandbox {
            progress.phase(.check)
            let check = await runCheck(command, image: input.image, sandbox: sandbox, caches: input.caches, head: head)
            record.check = check
            // A check that did not pass makes a failed run: the check, not the agent's word,
            // says whether the task was done. Another ending (timeout, budget) keeps its status.
            if record.status == .succeeded && !check.passed {
                record.status = .checkFailed
                record.reason = ([record.reason].compactMap { $0 } + ["the check " + check.summary]).joined(separator: "; ")
            }
            steps.record("check", check.durationS, check.passed ? "passed" : "failed" + (check.error.map { ": \($0)" } ?? ""))
        }
        // The agent's home stays (its transcript, for review); the rest of the sandbox goes.
        return (record, teardown(input, after: holderRemoval, removing: layout.scratch, removedFirst: removedFirst))
    }

    /// What the worktree's watch saw, once the containers are gone: the paths to read, or
    /// everything (with the reason in the step log).
    private func watchedScope(_ watch: WorktreeWatch?) -> WorktreeScope {
        guard let watch else { return .everything }
        switch watch.finish() {
        case .paths(let paths):
            steps.note("the worktree's watch saw \(paths.count) path\(paths.count == 1 ? "" : "s") change")
            return .changed(paths, since: plan.baseCommit)
        case .everything(let reason):
            steps.note("collection reads the whole worktree: \(reason)")
            return .everything
        }
    }

    /// The run's last containers go: when the holder's removal succeeded and no container
    /// started after the first removal (the check's), every container the run made is
    /// known gone and no listing is needed; otherwise what is left is listed and removed.
    private func teardown(
        _ input: CollectInput, after holderRemoval: Task<Bool, Never>?, removing scratch: [URL], removedFirst: [String]
    ) -> Task<Void, Never> {
        Task {
            let holderGone = await holderRemoval?.value ?? (input.holder.agentNetwork == nil)
            let later = await control.started.filter { !removedFirst.contains($0) }
            if !holderGone || !later.isEmpty {
                _ = await RunCollection.removeContainers(engine: engine, runID: plan.id, keeping: nil)
            }
            // The caches go back once no container of the run can write to them.
            input.caches?.release()
            await input.holder.tearDown()
            for url in scratch { try? FileManager.default.removeItem(at: url) }
        }
    }

    /// After `patina shell`: commits made in the shell move the branch on
    /// (`RunCollection.collectShellCommits`, which recovery uses too).
    func collectShell(into record: inout RunRecord) {
        do {
            let head = try collection.collectShellCommits()
            if head != plan.baseCommit { progress.note("the branch moved to \(head.short) (commits made in the shell)") }
            record.headCommit = head.hex
        } catch {
            record.reason = "commits made in the shell were not collected: \(error)"
            progress.warn(record.reason!)
        }
    }
}

/// What collection needs of the steps before it; `sandbox` is nil when the sandbox step
/// did not finish (the holder may still have started: it goes too).
struct CollectInput: Sendable {
    let record: RunRecord
    let image: String
    let holder: NetworkHolder
    let sandbox: StartedSandbox?
    let branch: PreparedBranch
    let caches: CacheLease?
    let agentStarted: Bool
}

/// Where the collect step's time went, for its line in the step log: "containers 0.150 s, git 0.020 s".
struct CollectTimings: CustomStringConvertible {
    private var last: Date
    private var laps: [(String, Double)] = []

    init(start: Date) { last = start }

    mutating func lap(_ name: String) {
        let now = Date()
        laps.append((name, now.timeIntervalSince(last)))
        last = now
    }

    var description: String {
        laps.map { String(format: "%@ %.3f s", $0.0, $0.1) }.joined(separator: ", ")
    }
}
