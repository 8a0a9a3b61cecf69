import Foundation
import PatinaGit
import PatinaSandbox

/// Bringing one run's work home: its containers gone (confirmed), the agent's tree
/// handed back, its commits and leftovers onto the branch through `Collector.collect`,
/// its transcript copied, the session tags. The one collection path: a run's own
/// collect step uses it, and so does recovery of a run whose patina died.
struct RunCollection: Sendable {
    let repository: Repository
    let layout: RunLayout
    let worktree: URL
    let branch: String
    let base: ObjectID
    let runID: String
    /// What of the worktree is committed (the leftovers policy).
    var policy = DiskPolicy()

    /// After `patina shell` (by the shell itself, or by recovery when its patina died): the
    /// commits made in the shell move the run's branch on from `base`, and the worktree's
    /// index with it; changes left uncommitted stay in the worktree, as they would in any
    /// checkout. Returns the branch's head. When the branch moved meanwhile (another shell,
    /// a person), the commits are kept at tag `shell-<id>` and the error says so.
    func collectShellCommits() throws -> ObjectID {
        let head = try Collector.importAgentCommits(into: repository, privateGitDirectory: layout.privateGit, base: base)
        guard head != base else { return head }
        // Already there when the patina that moved it died before the index followed.
        if try repository.branchTip(branch) != head {
            do {
                try repository.moveBranch(branch, from: base, to: head, message: "patina shell: commits made in the shell")
            } catch {
                let tag = "shell-\(runID)"
                try repository.createTag(tag, at: head, message: nil)
                throw ShellCommitsKept(tag: tag, reason: "\(error)")
            }
        }
        try Collector.resetWorktreeIndex(in: repository, worktree: worktree, to: head)
        return head
    }

    /// What the agent's uid owns during the run besides the worktree (patina running as
    /// root hands it back).
    var sandboxOwnedPaths: [URL] { [layout.privateGit, layout.home, layout.gitFile] }

    /// Removes the run's containers (all but `keeping`) and confirms they are gone,
    /// retrying; returns the ones still there. Nothing reads the agent's tree before
    /// this returns empty: a live container could change it while it is read.
    /// A daemon that is restarting gets up to `daemonWait` seconds to answer again.
    /// `known`: the containers the run started; when removing exactly those succeeds, no
    /// listing is needed (a later call without `known` confirms nothing else is left).
    static func removeContainers(
        engine: DockerEngine, runID: String, keeping: String?, known: [String] = [], daemonWait: Double = 60
    ) async -> [String] {
        let named = known.filter { $0 != keeping }
        if !named.isEmpty, await engine.remove(named) { return [] }
        var left: [String] = []
        var removals = 0
        let deadline = Date().addingTimeInterval(daemonWait)
        while removals < 5 {
            guard let names = try? await engine.containers(label: "patina.run=\(runID)") else {
                left = ["(the Docker daemon did not answer for \(Int(daemonWait)) s)"]
                if Date() >= deadline { return left }
                try? await Task.sleep(nanoseconds: 500_000_000)
                continue
            }
            left = names.filter { $0 != keeping }
            if left.isEmpty { return [] }
            // `docker rm --force` exits 0 only once every container is gone.
            if await engine.remove(left) { return [] }
            removals += 1
            try? await Task.sleep(nanoseconds: UInt64(100_000_000 * removals))
        }
        return left
    }

    /// The idmapped view of the worktree goes once no container of the run can use it
    /// (the worktree itself stays). Never removed recursively: the files under a view
    /// that is still mounted are the worktree's.
    func releaseWorktreeView() {
        IdmappedMount.detach(layout.worktreeView)
        rmdir(layout.worktreeView.path)
    }

    /// Hands the agent's paths back to root, never following a link the agent left. The
    /// worktree only when it was handed to the agent (no idmapped view: its root is not
    /// root's); its index's stat data is brought up to date in the same pass (the owner
    /// and ctime of every file change), so the next reader does not re-read every file.
    func reclaimOwnership() {
        guard getuid() == 0 else { return }
        for url in sandboxOwnedPaths { Ownership.change(url, uid: 0, gid: 0) }
        var root = stat()
        guard lstat(worktree.path, &root) == 0, root.st_uid != 0 || root.st_gid != 0 else { return }
        if (try? repository.handOverWorktree(name: worktree.lastPathComponent, worktree: worktree, to: FileOwner(uid: 0, gid: 0))) == nil {
            Ownership.change(worktree, uid: 0, gid: 0)
        }
    }

    /// The agent's commits, then whatever it left uncommitted, onto the branch; the
    /// record gets the head, diffstat, commit count and sensitive changes. Returns the
    /// head, the problems met (each a clause of the run's reason) and the notes: what the
    /// leftovers policy kept out, said in the reason too but no failure of the run.
    /// `scope`: what the run's `WorktreeWatch` saw change (everything when there was none).
    /// `prepared`: the worktree's index, opened while the containers went.
    func collectBranch(
        into record: inout RunRecord, scope: WorktreeScope = .everything, prepared: WorktreeIndex? = nil
    ) -> (head: ObjectID, problems: [String], leftovers: Bool, notes: [String]) {
        var problems: [String] = []
        var notes: [String] = []
        var head = base
        var leftovers = false
        let message = "patina: commit changes the agent left uncommitted\n\nRun \(runID) ended (\(record.status.rawValue)) with uncommitted changes in its worktree; patina committed them so nothing is lost.\n"
        do {
            let collected = try Collector.collect(
                into: repository, privateGitDirectory: layout.privateGit, worktree: worktree,
                branch: branch, base: base, leftoversMessage: message, scope: scope, prepared: prepared,
                limits: .forRun(policy: policy))
            head = collected.head
            if let failure = collected.importFailure {
                problems.append("could not import the agent's commits: \(failure)")
            }
            if !collected.leftovers.skipped.isEmpty {
                problems.append("not committed (unsafe to read): \(collected.leftovers.skipped.joined(separator: ", "))")
            }
            let limited = collected.leftovers
            if limited.overLimitCount > 0 {
                record.leftoversSkipped = limited.overLimit
                record.leftoversSkippedCount = limited.overLimitCount
                let shown = limited.overLimit.prefix(3).map { "\($0.path) (\($0.reason))" }.joined(separator: ", ")
                notes.append("\(limited.overLimitCount) leftover path\(limited.overLimitCount == 1 ? "" : "s") over collection's limits not committed, kept in the worktree \(worktree.path): \(shown)\(limited.overLimitCount > 3 ? ", …" : "") (leftovers_skipped in run.json)")
            }
            if collected.leftovers.commit != nil {
                record.leftoversCommitted = true
                leftovers = true
            }
            record.maxFileSizeBytes = policy.maxFileBytes
            record.maxNewPaths = policy.maxNewPaths
            // The agent's own commits are its business and stay; files over the limit in them are flagged.
            let large = (try? repository.largeFiles(
                from: base, to: head, over: policy.maxFileBytes, excluding: Set([collected.leftovers.commit].compactMap { $0 }))) ?? []
            record.largeFilesCommitted = large.isEmpty ? nil : large
        } catch {
            problems.append("could not collect the branch: \(error)")
            head = (try? repository.branchTip(branch)) ?? nil ?? base
        }
        record.headCommit = head.hex
        do {
            // The branch's diffstat from the git directory alone: the main checkout's
            // attributes describe its own files, not the run's branch, and loading its index
            // costs as much as the repository is big.
            let history = try repository.gitDirectoryOnly()
            record.filesChanged = try history.diffStat(from: base, to: head).map {
                FileChangeRecord(path: $0.path, additions: $0.additions, deletions: $0.deletions, status: $0.status.rawValue)
            }
            record.commits = try history.commits(from: base, to: head).count
            record.sensitiveChanges = record.markedPaths.map(\.path)
            // A head that does not descend from the base, or commits dated before the run.
            record.checkHistory(in: history, base: base, head: head,
                                refsOutsideBranch: SandboxRefs.outside(branch: branch, privateGitDirectory: layout.privateGit, given: givenTags()))
        } catch {
            problems.append("could not compute the diffstat: \(error)")
        }
        try? FileManager.default.removeItem(at: layout.privateGit)
        return (head, problems, leftovers, notes)
    }

    /// The tags the agent's git directory was given at render (a run from before that list was
    /// kept: the repository's tags now).
    func givenTags() -> [TagReference] {
        guard let data = FileManager.default.contents(atPath: layout.givenTags.path) else { return (try? repository.tagReferences()) ?? [] }
        return SandboxGitDirectory.tags(inPackedRefs: String(decoding: data, as: UTF8.self))
    }

    /// `session-<id>-start` at the base and `session-<id>-end` at the collected head, so
    /// plain git shows the run's work: `git diff session-<id>-start..session-<id>-end`.
    /// They are refs at `refs/session-…`, not tags: the user's `git describe --tags`,
    /// setuptools-scm and `git push --tags` never see them. Returns the problems met.
    /// With rounds, round `round` also marks its head (`session-<id>-round-<k>`); a later
    /// round moves the end mark and leaves the start where round 1 put it.
    func tagSession(head: ObjectID, record: RunRecord, round: Int = 1, rounds: Int = 1) -> [String] {
        let message = "patina run \(runID): " + (record.task.split(separator: "\n").first.map(String.init) ?? "")
        var problems: [String] = []
        var marks = round == 1 ? [(record.startTag, base), (record.endTag, head)] : [(record.endTag, head)]
        if rounds > 1 { marks.append((RunRecord.roundTag(record.id, round), head)) }
        for (name, commit) in marks {
            do {
                if round > 1, (try? repository.sessionRefTarget(name)) != nil { try repository.deleteSessionRef(name) }
                try repository.createSessionRef(name, at: commit, message: message)
            } catch {
                problems.append("could not tag \(name): \(error)")
            }
        }
        return problems
    }

    /// The most of a transcript copied into the run directory: the agent can make its
    /// transcript any size (a sparse 1 GB file costs it nothing).
    static let transcriptLimit = 128 << 20

    /// Copies `source` (the agent's) line by line, redacted, its first `transcriptLimit`
    /// bytes at most, each line cut at `Command.lineLimit`; a last line marks what was
    /// left out. Memory and disk stay bounded whatever the file claims.
    func copyBounded(_ source: URL, to destination: URL, redactor: Redactor) -> (copied: Bool, truncated: String?) {
        do {
            let writer = try LineWriter(creating: destination)
            let reading = try LineFile.forEachLine(of: source, byteLimit: Self.transcriptLimit) { line in
                try? writer.write(redactor(line))
            }
            var truncated: String?
            if reading.truncated {
                try writer.write(#"{"type":"patina_truncated_transcript","size":\#(reading.size),"copied_bytes":\#(reading.read)}"#)
                truncated = "transcript: \(reading.size) bytes, the first \(reading.read) copied (marked)"
            }
            try writer.close()
            return (true, truncated)
        } catch {
            return (false, nil)
        }
    }

    /// Claude Code's own transcript, from the agent's home into the run directory.
    func copyTranscript(into record: inout RunRecord, redactor: Redactor = Redactor(secrets: [])) {
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
        let session = record.claudeSessionID
        let chosen = candidates.first { url in session.map { url.lastPathComponent.hasPrefix($0) } ?? false }
            ?? candidates.max { a, b in
                let da = (try? a.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
                let db = (try? b.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
                return da < db
            }
        guard let chosen else { return }
        let copy = copyBounded(chosen, to: layout.transcript, redactor: redactor)
        if copy.copied { record.transcript = layout.transcript.path }
        if let truncated = copy.truncated { record.outputTruncated = (record.outputTruncated ?? []) + [truncated] }
    }
}

extension CollectionLimits {
    /// The limits of one run's collection, its time budget starting now. The tests' hooks
    /// (`PATINA_COLLECT_IMPORT_BYTES`, `PATINA_COLLECT_FILE_BYTES`, `PATINA_COLLECT_NEW_PATHS`,
    /// `PATINA_COLLECT_SECONDS`) can only lower them.
    static func forRun(policy: DiskPolicy = DiskPolicy(), environment: [String: String] = ProcessInfo.processInfo.environment) -> CollectionLimits {
        func lowered(_ key: String, _ value: Int) -> Int {
            guard let text = environment[key], let wanted = Int(text), wanted >= 0 else { return value }
            return min(wanted, value)
        }
        let seconds = lowered("PATINA_COLLECT_SECONDS", Int(defaultTimeBudget))
        return CollectionLimits(
            importBytes: lowered("PATINA_COLLECT_IMPORT_BYTES", defaultImportBytes),
            leftoverFileBytes: lowered("PATINA_COLLECT_FILE_BYTES", policy.maxFileBytes),
            leftoverNewPaths: lowered("PATINA_COLLECT_NEW_PATHS", policy.maxNewPaths),
            deadline: Date().addingTimeInterval(TimeInterval(seconds)))
    }
}
