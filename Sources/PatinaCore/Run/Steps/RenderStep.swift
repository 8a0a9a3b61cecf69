import Foundation
import PatinaGit
import PatinaSandbox

/// Step "render": the run's configs (all readable afterwards in config/), the
/// agent's home and its private git directory. Returns the warm caches the run holds
/// from here until collection.
extension RunLifecycle {
    func render(_ prepared: PreparedRun, branch: PreparedBranch, record: inout RunRecord) throws -> CacheLease? {
        let images = prepared.images
        let fm = FileManager.default
        for dir in [layout.rendered, layout.devcontainer.deletingLastPathComponent(), layout.home, layout.sandbox] {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        try Data(images.agentDockerfile.utf8).write(to: layout.dockerfile)
        let settings = prepared.claudeSettings
        try Data(settings.utf8).write(to: layout.claudeSettings)
        // Each run has its own Claude Code home (and so its own ~/.claude.json):
        // Claude Code corrupts a shared one under concurrency.
        try fm.createDirectory(at: layout.home.appendingPathComponent(".claude"), withIntermediateDirectories: true)
        try Data(settings.utf8).write(to: layout.home.appendingPathComponent(".claude/settings.json"))
        try prepared.protections.writeRendered(to: layout)
        if let resume = plan.resume {
            // The earlier conversation, where Claude Code looks for it (`--resume ID`
            // in /workspace): patina's own copy, a regular file, never a link.
            let projects = layout.home.appendingPathComponent(".claude/projects/-workspace")
            try fm.createDirectory(at: projects, withIntermediateDirectories: true)
            try Data(contentsOf: resume.transcript).write(to: projects.appendingPathComponent("\(resume.sessionID).jsonl"))
        }

        // The agent's git directory: its own refs, config and hooks; the host's
        // objects borrowed read-only. The host's .git is never mounted.
        let hostIndex = plan.repository.commonDirectory.appendingPathComponent("worktrees/\(plan.worktreeName)/index")
        try SandboxGitDirectory.create(
            at: layout.privateGit, host: plan.repository, branch: plan.branch, base: plan.baseCommit,
            hostObjectsPathInContainer: RunLayout.containerHostObjects,
            indexFrom: fm.fileExists(atPath: hostIndex.path) ? hostIndex : nil,
            sparse: plan.sparse)
        try Data("gitdir: \(RunLayout.containerGit)\n".utf8).write(to: layout.gitFile)
        writeHostTags(into: layout.privateGit, keepingList: true)
        try snapshotHostObjects()

        let caches = try holdWarmCaches(record: &record)
        do {
            let network = plan.firewallEnabled ? "container:\(NetworkHolder.name(runID: plan.id))" : nil
            let spec = AgentSandbox.spec(plan: plan, layout: layout, image: images.agent, network: network,
                                         labels: containerLabels, extras: SandboxExtras(caches, claudeVolume: images.claudeVolume))
            try Data(AgentSandbox.devcontainerJSON(spec, plan: plan).utf8).write(to: layout.devcontainer)
        } catch {
            // No container has them yet: they go back at once.
            caches?.release()
            throw error
        }
        if getuid() == 0 {
            for url in sandboxOwnedPaths {
                Ownership.change(url, uid: plan.agentUID, gid: plan.agentGID)
            }
        }
        return caches
    }

    /// The run's warm caches: this repository's, under patina's home, each mounted where its
    /// tool looks (never the host user's own caches). Released at collection.
    func holdWarmCaches(record: inout RunRecord) throws -> CacheLease? {
        guard !plan.sandbox.caches.isEmpty else { return nil }
        let lease = try CacheStore(store: plan.store).lease(
            plan.sandbox.caches, privateRoot: layout.sandbox.appendingPathComponent("caches"), uid: plan.agentUID, gid: plan.agentGID)
        record.caches = lease.used
        steps.note("warm caches: " + lease.mounts.map { "\($0.target) ← \($0.source)" }.joined(separator: ", "))
        for note in lease.notes {
            steps.note(note)
            progress.note(note)
        }
        return lease
    }

    /// The repository's tags, readable to a sandbox's git (`git describe --tags`, setuptools-scm,
    /// hatch-vcs see what they see on the host); their objects come with the host's. A
    /// repository whose tags cannot be listed runs without them, said in the step log.
    /// `keepingList`: the agent's git directory; the tags it was given are also kept in the run
    /// directory, out of the sandbox's view, so collection tells them from tags the agent made
    /// (whatever the user does to the repository's tags meanwhile).
    func writeHostTags(into gitDirectory: URL, keepingList: Bool = false) {
        do {
            let tags = try plan.repository.tagReferences()
            try SandboxGitDirectory.writeTags(tags, into: gitDirectory)
            if keepingList { try Data(SandboxGitDirectory.packedRefs(tags).utf8).write(to: layout.givenTags, options: .atomic) }
        } catch {
            steps.note("the repository's tags are not readable in the sandbox: \(error)")
        }
    }

    /// The host's objects as they are now, hard-linked into the run's sandbox
    /// folder and mounted read-only: objects that other runs collect later (their
    /// packs land in the host's objects directory) stay out of this run's sight.
    /// Objects never change once written, so links are safe and cost no copying.
    func snapshotHostObjects(into target: URL? = nil) throws {
        let target = target ?? layout.hostObjectsSnapshot
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        var copied = 0
        try Self.linkTree(from: plan.repository.objectsDirectory.standardizedFileURL.path, to: target.path, copied: &copied)
        if copied > 0 {
            steps.record("objects", 0, "copied \(copied) object files (PATINA_HOME is on another filesystem than the repository)")
        }
    }

    /// Hard-links every file under `source` (the host's own objects directory) into
    /// `target`, directories recreated, links skipped; a file on another filesystem is
    /// copied. One readdir per directory: a repository's loose objects can be many.
    private static func linkTree(from source: String, to target: String, copied: inout Int) throws {
        guard let stream = opendir(source) else { return }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            // A temporary object being written by a concurrent git process is not an object yet.
            if name == "." || name == ".." || name.hasPrefix("tmp_") || name.hasPrefix("incoming-") { continue }
            let from = source + "/" + name, to = target + "/" + name
            var type = entry.pointee.d_type
            if type == UInt8(DT_UNKNOWN) {
                var info = stat()
                guard lstat(from, &info) == 0 else { continue }
                type = (info.st_mode & S_IFMT) == S_IFDIR ? UInt8(DT_DIR) : (info.st_mode & S_IFMT) == S_IFLNK ? UInt8(DT_LNK) : UInt8(DT_REG)
            }
            switch type {
            case UInt8(DT_LNK):
                continue
            case UInt8(DT_DIR):
                guard mkdir(to, 0o755) == 0 || errno == EEXIST else {
                    throw PlanError("could not create \(to): \(String(cString: strerror(errno)))")
                }
                try linkTree(from: from, to: to, copied: &copied)
            default:
                if link(from, to) != 0 {
                    // Another filesystem: copy (reported in the step log, as it costs disk).
                    try FileManager.default.copyItem(atPath: from, toPath: to)
                    copied += 1
                }
            }
        }
    }
}
