import Foundation
import PatinaGit
import PatinaSandbox

/// Step "render": the run's configs (all readable afterwards in config/), the
/// agent's home and its private git directory.
extension RunLifecycle {
    func render(images: SandboxImages) throws {
        let fm = FileManager.default
        for dir in [layout.rendered, layout.devcontainer.deletingLastPathComponent(), layout.home, layout.sandbox] {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        try Data(images.agentDockerfile.utf8).write(to: layout.dockerfile)
        let settings = claudeSettings
        try Data(settings.utf8).write(to: layout.claudeSettings)
        // Each run has its own Claude Code home (and so its own ~/.claude.json):
        // Claude Code corrupts a shared one under concurrency.
        try fm.createDirectory(at: layout.home.appendingPathComponent(".claude"), withIntermediateDirectories: true)
        try Data(settings.utf8).write(to: layout.home.appendingPathComponent(".claude/settings.json"))
        try protections.writeRendered()
        if let resume = plan.resume {
            // The earlier conversation, where Claude Code looks for it (`--resume ID`
            // in /workspace): patina's own copy, a regular file, never a link.
            let projects = layout.home.appendingPathComponent(".claude/projects/-workspace")
            try fm.createDirectory(at: projects, withIntermediateDirectories: true)
            try Data(contentsOf: resume.transcript).write(to: projects.appendingPathComponent("\(resume.sessionID).jsonl"))
        }

        // A worktree this run checked out already belongs to the agent (BranchStep); a
        // resumed run's was handed back to root at its collection.
        if getuid() == 0 && !branchCreated {
            // The chown changes every file's owner and ctime: they are recorded in the index as
            // it goes, so collection (and the agent's own git, which starts from a copy of this
            // index) reads only what changes from here on.
            try plan.repository.handOverWorktree(
                name: plan.worktreeName, worktree: plan.worktree, to: FileOwner(uid: plan.agentUID, gid: plan.agentGID))
        }

        // The agent's git directory: its own refs, config and hooks; the host's
        // objects borrowed read-only. The host's .git is never mounted.
        let hostIndex = plan.repository.commonDirectory.appendingPathComponent("worktrees/\(plan.worktreeName)/index")
        try SandboxGitDirectory.create(
            at: layout.privateGit, host: plan.repository, branch: plan.branch, base: plan.baseCommit,
            hostObjectsPathInContainer: RunLayout.containerHostObjects,
            indexFrom: fm.fileExists(atPath: hostIndex.path) ? hostIndex : nil)
        try Data("gitdir: \(RunLayout.containerGit)\n".utf8).write(to: layout.gitFile)
        try snapshotHostObjects()

        try holdWarmCaches()
        let spec = AgentSandbox.spec(plan: plan, layout: layout, image: images.agent, network: protections.agentNetwork,
                                     labels: containerLabels, extras: sandboxExtras)
        try Data(AgentSandbox.devcontainerJSON(spec, plan: plan).utf8).write(to: layout.devcontainer)

        if getuid() == 0 {
            for url in sandboxOwnedPaths where url != plan.worktree {
                Ownership.change(url, uid: plan.agentUID, gid: plan.agentGID)
            }
        }
    }

    /// The run's warm caches: this repository's, under patina's home, each mounted where its
    /// tool looks (never the host user's own caches). Released at collection.
    func holdWarmCaches() throws {
        guard !plan.sandbox.caches.isEmpty else { return }
        let lease = try CacheStore(store: plan.store).lease(
            plan.sandbox.caches, privateRoot: layout.sandbox.appendingPathComponent("caches"), uid: plan.agentUID, gid: plan.agentGID)
        caches = lease
        record.caches = lease.used
        steps.note("warm caches: " + lease.mounts.map { "\($0.target) ← \($0.source)" }.joined(separator: ", "))
        for note in lease.notes {
            steps.note(note)
            progress.note(note)
        }
    }

    var sandboxExtras: SandboxExtras {
        caches.map { SandboxExtras(mounts: $0.mounts, environment: $0.environment) } ?? SandboxExtras()
    }

    /// The host's objects as they are now, hard-linked into the run's sandbox
    /// folder and mounted read-only: objects that other runs collect later (their
    /// packs land in the host's objects directory) stay out of this run's sight.
    /// Objects never change once written, so links are safe and cost no copying.
    func snapshotHostObjects() throws {
        let fm = FileManager.default
        let source = plan.repository.objectsDirectory
        let target = layout.hostObjectsSnapshot
        try fm.createDirectory(at: target, withIntermediateDirectories: true)
        guard let walker = fm.enumerator(at: source, includingPropertiesForKeys: [.isDirectoryKey, .isSymbolicLinkKey], options: []) else { return }
        let base = source.standardizedFileURL.path
        var copied = 0
        for case let url as URL in walker {
            let relative = String(url.standardizedFileURL.path.dropFirst(base.count + 1))
            // A temporary object being written by a concurrent git process is not an object yet.
            if relative.hasPrefix("tmp_") || relative.contains("/tmp_") || relative.hasPrefix("incoming-") { continue }
            let values = try url.resourceValues(forKeys: [.isDirectoryKey, .isSymbolicLinkKey])
            let destination = target.appendingPathComponent(relative)
            if values.isSymbolicLink == true { continue }
            if values.isDirectory == true {
                try fm.createDirectory(at: destination, withIntermediateDirectories: true)
            } else if link(url.path, destination.path) != 0 {
                // Another filesystem: copy (reported in the step log, as it costs disk).
                try fm.copyItem(at: url, to: destination)
                copied += 1
            }
        }
        if copied > 0 {
            steps.record("objects", 0, "copied \(copied) object files (PATINA_HOME is on another filesystem than the repository)")
        }
    }
}
