import Foundation
import PatinaGit
import PatinaSandbox

/// Step "collect": always runs once a branch exists. The agent's containers go
/// first, then its commits and leftovers come home through `Collector.collect`
/// (the one collection path, the one the tests exercise), then the check (if
/// any) runs while the firewall is still up, then every container is removed.
extension RunLifecycle {
    func collectAndCheck(image: String) async {
        progress.phase(.collect)
        let start = Date()
        // Whatever happened, the proxy stops before anything else runs in this run's network.
        modelProxy?.stop()
        if let usage = modelProxy?.usage, agentStarted, record.requests == nil { recordModelUsage(usage) }
        await protections.captureReports()
        // Nothing in the sandbox may change the tree while it is read. The firewall's
        // holder (patina's own container, not the agent's) stays up for the check.
        let keepNetwork = plan.check != nil && agentStarted && protections.agentNetwork != nil
        await removeContainers(keeping: keepNetwork ? protections.holderName : nil)
        copyTranscript()
        if getuid() == 0 {
            for url in sandboxOwnedPaths {
                Ownership.change(url, uid: 0, gid: 0)
            }
        }
        guard agentStarted else {
            // The agent never ran: the branch holds nothing; remove it and its worktree.
            cleanUpBranch()
            record.headCommit = nil
            try? FileManager.default.removeItem(at: layout.sandbox)
            steps.record("collect", Date().timeIntervalSince(start), "agent never started; branch removed")
            await removeContainers(keeping: nil)
            await protections.tearDown()
            return
        }
        if plan.shell != nil {
            collectShell()
            await removeContainers(keeping: nil)
            await protections.tearDown()
            return
        }
        let head = collectBranch()
        tagSession(head: head)
        steps.record("collect", Date().timeIntervalSince(start), "head \(head.short)")
        if let command = plan.check {
            progress.phase(.check)
            let check = await runCheck(command, image: image, head: head)
            record.check = check
            steps.record("check", check.durationS, check.passed ? "passed" : "failed" + (check.error.map { ": \($0)" } ?? ""))
        }
        await removeContainers(keeping: nil)
        await protections.tearDown()
        // The agent's home stays (its transcript, for review); the rest of the sandbox goes.
        for url in [layout.hostObjectsSnapshot, layout.checkWorkspace, layout.checkHome] {
            try? FileManager.default.removeItem(at: url)
        }
    }

    /// The agent's commits, then whatever it left uncommitted, onto the run's branch.
    func collectBranch() -> ObjectID {
        var problems: [String] = []
        var head = plan.baseCommit
        let message = "patina: commit changes the agent left uncommitted\n\nRun \(plan.id) ended (\(record.status.rawValue)) with uncommitted changes in its worktree; patina committed them so nothing is lost.\n"
        do {
            let collected = try Collector.collect(
                into: plan.repository, privateGitDirectory: layout.privateGit, worktree: plan.worktree,
                branch: plan.branch, base: plan.baseCommit, leftoversMessage: message)
            head = collected.head
            if let failure = collected.importFailure {
                problems.append("could not import the agent's commits: \(failure)")
            }
            if !collected.leftovers.skipped.isEmpty {
                problems.append("not committed (unsafe to read): \(collected.leftovers.skipped.joined(separator: ", "))")
            }
            if collected.leftovers.commit != nil {
                record.leftoversCommitted = true
                progress.note("committed changes the agent left uncommitted")
            }
        } catch {
            problems.append("could not collect the branch: \(error)")
            head = (try? plan.repository.branchTip(plan.branch)) ?? nil ?? plan.baseCommit
        }
        record.headCommit = head.hex
        do {
            record.filesChanged = try plan.repository.diffStat(from: plan.baseCommit, to: head).map {
                FileChangeRecord(path: $0.path, additions: $0.additions, deletions: $0.deletions, status: $0.status.rawValue)
            }
            record.commits = try plan.repository.commits(from: plan.baseCommit, to: head).count
        } catch {
            problems.append("could not compute the diffstat: \(error)")
        }
        try? FileManager.default.removeItem(at: layout.privateGit)
        if !problems.isEmpty {
            record.reason = ([record.reason].compactMap { $0 } + problems).joined(separator: "; ")
            if record.status == .succeeded { record.status = .error }
        }
        return head
    }

    /// After `patina shell`: commits made in the shell move the branch on; changes
    /// left uncommitted stay in the worktree, as they would in any checkout.
    func collectShell() {
        do {
            let head = try Collector.importAgentCommits(into: plan.repository, privateGitDirectory: layout.privateGit, base: plan.baseCommit)
            if head != plan.baseCommit {
                try plan.repository.moveBranch(plan.branch, from: plan.baseCommit, to: head, message: "patina shell: commits made in the shell")
                progress.note("the branch moved to \(head.short) (commits made in the shell)")
            }
            record.headCommit = head.hex
        } catch {
            record.reason = "commits made in the shell were not collected: \(error)"
            progress.warn(record.reason!)
        }
    }

    /// `session-<id>-start` at the base and `session-<id>-end` at the collected head, so
    /// plain git shows the run's work: `git diff session-<id>-start..session-<id>-end`.
    func tagSession(head: ObjectID) {
        let message = "patina run \(plan.id): " + (plan.task.split(separator: "\n").first.map(String.init) ?? "")
        for (name, commit) in [(record.startTag, plan.baseCommit), (record.endTag, head)] {
            do {
                try plan.repository.createTag(name, at: commit, message: message)
            } catch {
                record.reason = ([record.reason].compactMap { $0 } + ["could not tag \(name): \(error)"]).joined(separator: "; ")
            }
        }
    }

    /// Removes the run's containers (all, or all but `keeping`).
    func removeContainers(keeping: String?) async {
        let names = (try? await engine.containers(label: "patina.run=\(plan.id)")) ?? []
        await engine.remove(names.filter { $0 != keeping })
    }

    func copyTranscript() {
        // The agent owns its home: a symbolic link on the way (~/.claude pointing at
        // the host user's own ~/.claude, say) must not make patina copy host files.
        let claude = layout.home.appendingPathComponent(".claude")
        let projects = claude.appendingPathComponent("projects")
        for directory in [layout.home, claude, projects] {
            let type = (try? FileManager.default.attributesOfItem(atPath: directory.path))?[.type] as? FileAttributeType
            guard type == .typeDirectory else { return }
        }
        guard let walker = FileManager.default.enumerator(at: projects, includingPropertiesForKeys: [.contentModificationDateKey, .isRegularFileKey, .isSymbolicLinkKey]) else { return }
        var candidates: [URL] = []
        for case let url as URL in walker where url.pathExtension == "jsonl" {
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .isSymbolicLinkKey])
            if values?.isRegularFile == true && values?.isSymbolicLink != true { candidates.append(url) }
        }
        let chosen = candidates.first { url in record.claudeSessionID.map { url.lastPathComponent.hasPrefix($0) } ?? false }
            ?? candidates.max { a, b in
                let da = (try? a.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
                let db = (try? b.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
                return da < db
            }
        guard let chosen else { return }
        try? FileManager.default.removeItem(at: layout.transcript)
        if (try? FileManager.default.copyItem(at: chosen, to: layout.transcript)) != nil {
            record.transcript = layout.transcript.path
        }
    }
}
