import Foundation
import PatinaGit
import PatinaSandbox

/// One run, from plan to collected branch: image, branch, render, sandbox,
/// agent, collect. Collection always happens once a branch exists — after
/// success, failure, timeout, a dead container or Ctrl-C — and leaves no
/// container behind.
public final class RunLifecycle: @unchecked Sendable {
    public let plan: RunPlan
    let engine: DockerEngine
    let progress: Progress
    let control: RunControl
    let layout: RunLayout
    let steps: StepLog
    var record: RunRecord
    var protections: Protections
    var agentStarted = false
    /// Rendered while planning checks every template, written at the render step.
    var claudeSettings = ""

    public init(plan: RunPlan, engine: DockerEngine = DockerEngine(), progress: Progress, control: RunControl) {
        self.plan = plan
        self.engine = engine
        self.progress = progress
        self.control = control
        self.layout = RunLayout(runDirectory: plan.runDirectory)
        self.steps = StepLog(url: nil)
        self.protections = Protections(plan: plan, layout: RunLayout(runDirectory: plan.runDirectory), engine: engine)
        self.record = RunRecord(
            id: plan.id, task: plan.task, status: .running, reason: nil, branch: plan.branch,
            baseCommit: plan.baseCommit.hex, headCommit: nil, repository: plan.repositoryRoot.path,
            worktree: plan.worktree.path, runDir: plan.runDirectory.path,
            sessionLog: RunLayout(runDirectory: plan.runDirectory).sessionLog.path, transcript: nil,
            started: Date(), finished: nil, durationS: nil, costUSD: nil, numTurns: nil, tokens: nil,
            model: plan.model, maxTurns: plan.maxTurns, timeoutS: plan.timeoutSeconds, image: nil,
            baseImage: plan.baseImage, exitCode: nil, claudeSessionID: nil)
        record.firewall = plan.firewallEnabled
    }

    var containerLabels: [String: String] {
        ["patina": "1", "patina.run": plan.id, "patina.repo": plan.store.repositoryKey]
    }

    /// Runs every step and returns the final record. Throws only for failures
    /// before anything was created (then nothing is left behind).
    public func execute() async throws -> RunRecord {
        let started = Date()
        record.started = started

        // Everything that can fail without side effects comes first: protections are
        // rendered and checked, images are built or found.
        try await steps.time("protections") { try protections.prepare() }
        let dockerfile = try plan.templates.render("templates/Dockerfile.mustache", dockerfileContext())
        // Every other template is read now, so a broken override fails before anything exists.
        claudeSettings = try plan.templates.render("templates/claude-settings.json.mustache", ["include_co_authored_by": "false"])
        _ = try plan.templates.render("templates/devcontainer.json.mustache", [:])
        if !plan.firewallEnabled {
            progress.warn("--no-firewall: the agent can reach any address this machine can; recorded in run.json")
        }
        record.allowList = protections.allowListSummary
        record.seccompRelaxed = protections.seccompRelaxed
        let images = try await steps.time("image") { try await buildImages(dockerfile: dockerfile) }
        progress.step("run \(plan.id)")
        record.image = images.agent
        try await checkInterrupted()

        // From here on something exists on disk: collection always runs.
        do {
            try await steps.time("branch") { try createBranch() }
            try FileManager.default.createDirectory(at: layout.runDirectory, withIntermediateDirectories: true)
        } catch {
            cleanUpBranch()
            throw error
        }
        steps.attach(layout.stepLog)
        try? plan.store.save(record)

        do {
            try await steps.time("render") { try render(images: images) }
            try await checkInterrupted()
            try await steps.time("sandbox") { try await protections.startSandbox(images: images, labels: containerLabels, progress: progress) }
            try await checkInterrupted()
            try await steps.time("agent") { try await runAgent(image: images.agent) }
        } catch let stop as Stopped {
            record.status = stop.reason == .timeout ? .timedOut : .failed
            record.reason = stop.reason == .timeout ? "timed out before the agent started" : "interrupted before the agent started"
        } catch {
            record.status = .error
            record.reason = "\(error)"
            progress.warn("run stopped: \(error)")
        }
        await collect()
        record.finished = Date()
        record.durationS = (record.finished!.timeIntervalSince(started) * 1000).rounded() / 1000
        record.steps = steps.steps
        try? plan.store.save(record)
        return record
    }

    struct Stopped: Error, CustomStringConvertible {
        let reason: StopReason
        var description: String {
            reason == .timeout ? "timed out before the agent started"
                : "interrupted (Ctrl-C) before the agent started; nothing was left behind"
        }
    }

    func checkInterrupted() async throws {
        if let reason = await control.reason { throw Stopped(reason: reason) }
    }

    // MARK: image

    struct Images {
        var agent: String
        var netguard: String?
        var agentDockerfile: String
    }

    func buildImages(dockerfile: String) async throws -> Images {
        let cache = ImageCache(engine: engine, cacheDirectory: RunStore.home().appendingPathComponent("cache/images"))
        var files: [String: URL] = [:]
        if let binary = plan.agentBinary { files["claude"] = binary }
        // Only a build needs the base image; say so before the (long) build starts.
        func prepareBuild(_ what: String) -> @Sendable (String) async throws -> Void {
            { [self] tag in
                try await ensureBaseImage()
                progress.step("building the \(what) image \(tag) (once; reused while nothing changes)")
            }
        }
        let agent = try await cache.ensure(
            ImageRecipe(repository: "patina-agent", dockerfile: dockerfile, files: files),
            labels: ["patina.image": "agent"], beforeBuilding: prepareBuild("agent"))
        var netguard: String?
        if plan.firewallEnabled {
            netguard = try await cache.ensure(
                ImageRecipe(repository: "patina-netguard", dockerfile: try protections.netguardDockerfile()),
                labels: ["patina.image": "netguard"], beforeBuilding: prepareBuild("firewall"))
        }
        return Images(agent: agent, netguard: netguard, agentDockerfile: dockerfile)
    }

    func ensureBaseImage() async throws {
        if await engine.imageExists(plan.baseImage) { return }
        progress.step("pulling base image \(plan.baseImage)")
        let pull = try await engine.run(["pull", plan.baseImage])
        guard pull.succeeded else {
            throw PlanError("base image \(plan.baseImage) is not available locally and `docker pull` failed; build or import it first, or pass --base-image")
        }
    }

    func dockerfileContext() -> [String: Any] {
        [
            "base_image": plan.baseImage,
            "uid": String(plan.agentUID),
            "gid": String(plan.agentGID),
            "agent_binary": plan.agentBinary != nil,
            "install_with_npm": plan.agentBinary == nil,
            "claude_version": RunPlan.pinnedClaudeVersion,
        ]
    }

    // MARK: branch

    func createBranch() throws {
        try plan.repository.createBranch(plan.branch, at: plan.baseCommit)
        try FileManager.default.createDirectory(at: plan.worktree.deletingLastPathComponent(), withIntermediateDirectories: true)
        try plan.repository.addWorktree(name: plan.id, path: plan.worktree, branch: plan.branch)
        progress.step("branch \(plan.branch) at \(plan.baseCommit.short), worktree \(plan.worktree.path)")
    }

    /// Only for runs whose agent never started: the branch holds nothing.
    func cleanUpBranch() {
        try? plan.repository.removeWorktree(name: plan.id, path: plan.worktree)
        if plan.repository.branchExists(plan.branch) { try? plan.repository.deleteBranch(plan.branch) }
    }

    // MARK: render

    /// What the agent's uid must own during the run when patina runs as root
    /// (git refuses a gitfile, work tree or git directory owned by someone else).
    var sandboxOwnedPaths: [URL] { [plan.worktree, layout.privateGit, layout.home, layout.gitFile] }

    func render(images: Images) throws {
        let fm = FileManager.default
        for dir in [layout.rendered, layout.devcontainer.deletingLastPathComponent(), layout.home, layout.sandbox] {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        try Data(images.agentDockerfile.utf8).write(to: layout.dockerfile)
        let settings = claudeSettings
        try Data(settings.utf8).write(to: layout.claudeSettings)
        try fm.createDirectory(at: layout.home.appendingPathComponent(".claude"), withIntermediateDirectories: true)
        try Data(settings.utf8).write(to: layout.home.appendingPathComponent(".claude/settings.json"))
        try protections.writeRendered()

        // The agent's git directory: its own refs, config and hooks; the host's
        // objects borrowed read-only. The host's .git is never mounted.
        let hostIndex = plan.repository.commonDirectory.appendingPathComponent("worktrees/\(plan.id)/index")
        try SandboxGitDirectory.create(
            at: layout.privateGit, host: plan.repository, branch: plan.branch, base: plan.baseCommit,
            hostObjectsPathInContainer: RunLayout.containerHostObjects,
            indexFrom: fm.fileExists(atPath: hostIndex.path) ? hostIndex : nil)
        try Data("gitdir: \(RunLayout.containerGit)\n".utf8).write(to: layout.gitFile)

        let spec = agentSpec(image: images.agent, network: protections.agentNetwork)
        try Data(devcontainerJSON(spec).utf8).write(to: layout.devcontainer)

        if getuid() == 0 {
            for url in sandboxOwnedPaths {
                Ownership.change(url, uid: plan.agentUID, gid: plan.agentGID)
            }
        }
    }

    /// The agent's container: no capabilities, no new privileges, the seccomp
    /// profile, read-only root, limits, non-root; only the run's own paths mounted.
    func agentSpec(image: String, network: String?) -> ContainerSpec {
        Self.agentSpec(plan: plan, layout: layout, image: image, network: network, labels: containerLabels)
    }

    static func agentSpec(plan: RunPlan, layout: RunLayout, image: String, network: String?, labels: [String: String]) -> ContainerSpec {
        var spec = ContainerSpec(name: "patina-\(plan.id)-agent", image: image)
        spec.labels = labels.merging(["patina.role": "agent"]) { $1 }
        spec.user = "\(plan.agentUID):\(plan.agentGID)"
        spec.workingDirectory = RunLayout.workspace
        spec.network = network
        spec.capDrop = ["ALL"]
        spec.capAdd = plan.capAdd
        spec.securityOptions = ["no-new-privileges", "seccomp=\(layout.seccompProfile.path)"]
        spec.readOnlyRoot = true
        spec.tmpfs = ["/tmp:rw,nosuid,nodev,size=\(plan.limits.tmp)"]
        spec.mounts = [
            Mount(source: plan.worktree.path, target: RunLayout.workspace, readOnly: false),
            Mount(source: layout.gitFile.path, target: RunLayout.workspace + "/.git", readOnly: true),
            Mount(source: layout.privateGit.path, target: RunLayout.containerGit, readOnly: false),
            Mount(source: plan.repository.objectsDirectory.path, target: RunLayout.containerHostObjects, readOnly: true),
            Mount(source: layout.home.path, target: RunLayout.containerHome, readOnly: false),
        ]
        spec.environment = [
            "HOME": RunLayout.containerHome,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "PATINA_RUN_ID": plan.id,
        ]
        spec.passEnvironment = plan.credentials.present
        spec.pidsLimit = plan.limits.pids
        spec.memory = plan.limits.memory
        spec.cpus = plan.limits.cpus
        spec.initProcess = true
        var command = ["claude", "-p", plan.task, "--dangerously-skip-permissions", "--output-format", "stream-json", "--verbose"]
        if let model = plan.model { command += ["--model", model] }
        if let turns = plan.maxTurns { command += ["--max-turns", String(turns)] }
        // A second layer behind patina's own watchdog: the agent cannot outlive its
        // timeout by much even if patina itself is killed.
        spec.command = ["timeout", "--signal=KILL", String(Int(plan.timeoutSeconds) + 30)] + command
        return spec
    }

    func devcontainerJSON(_ spec: ContainerSpec) throws -> String {
        func json(_ value: Any) -> String {
            let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
            return String(decoding: data, as: UTF8.self)
        }
        let workspace = spec.mounts.first { $0.target == RunLayout.workspace }!
        let others = spec.mounts.filter { $0.target != RunLayout.workspace }.map(\.argument)
        var remoteEnv: [String: String] = [:]
        for name in spec.passEnvironment { remoteEnv[name] = "${localEnv:\(name)}" }
        let context: [String: Any] = [
            "run_id": plan.id,
            "image_json": json(spec.image),
            "workspace_mount_json": json(workspace.argument),
            "mounts_json": json(others),
            "user_json": json(spec.user ?? "agent"),
            "cap_add_json": json(spec.capAdd),
            "security_opt_json": json(spec.securityOptions),
            "run_args_json": json(spec.isolationArguments),
            "container_env_json": json(spec.environment),
            "remote_env_json": json(remoteEnv),
        ]
        return try plan.templates.render("templates/devcontainer.json.mustache", context)
    }

    // MARK: agent

    func runAgent(image: String) async throws {
        let spec = agentSpec(image: image, network: protections.agentNetwork)
        let recorder = try SessionRecorder(sessionLog: layout.sessionLog, progress: progress)
        defer { recorder.close() }
        progress.step("agent running (timeout \(DurationParser.format(plan.timeoutSeconds)))")
        agentStarted = true
        await control.agentStarted(spec.name)
        let timeout = plan.timeoutSeconds
        let control = self.control
        // A watchdog, not a one-shot timer: it asks for the stop at the deadline and
        // repeats the kill until the agent's container is gone.
        let timer = Task {
            let deadline = Date().addingTimeInterval(timeout)
            while !Task.isCancelled {
                if Date() >= deadline { await control.stop(.timeout) }
                await control.killAgentIfStopping()
                try? await Task.sleep(nanoseconds: 250_000_000)
            }
        }
        let result: CommandResult
        do {
            result = try await Command.stream([engine.executable] + spec.runArguments) { line in
                recorder.receive(line)
            }
        } catch {
            timer.cancel()
            await control.agentFinished()
            throw error
        }
        timer.cancel()
        await control.agentFinished()
        try? Data(result.standardError.utf8).write(to: layout.agentStderr)
        let state = await engine.exitState(spec.name)
        record.exitCode = state?.exitCode ?? Int(result.exitCode)
        record.claudeSessionID = recorder.sessionID
        if record.model == nil { record.model = recorder.model }
        let stopReason = await control.killedAgent || recorder.result == nil ? await control.reason : nil
        if let summary = recorder.result {
            record.costUSD = summary.costUSD
            record.numTurns = summary.numTurns
            record.tokens = summary.tokens
        } else {
            record.numTurns = recorder.turns
        }
        switch (stopReason, recorder.result) {
        case (.timeout?, _):
            record.status = .timedOut
            record.reason = "stopped after the \(DurationParser.format(timeout)) timeout"
        case (.interrupted?, _):
            record.status = .failed
            record.reason = "interrupted (Ctrl-C)"
        case (nil, let summary?) where !summary.isError && summary.subtype == "success" && record.exitCode == 0:
            record.status = .succeeded
        case (nil, let summary?):
            record.status = .failed
            record.reason = "agent ended with \(summary.subtype)" + (summary.text.map { ": " + StreamEvent.oneLine($0, limit: 160) } ?? "")
        case (nil, nil):
            record.status = .failed
            if state?.oomKilled == true {
                record.reason = "the agent's container was killed for exceeding its \(plan.limits.memory) memory limit"
            } else {
                let last = result.standardError.split(separator: "\n").last.map(String.init) ?? ""
                record.reason = "the agent exited with code \(record.exitCode ?? -1) without a result" + (last.isEmpty ? "" : ": \(last)")
            }
        }
        if !recorder.sawInit && record.status != .timedOut {
            progress.warn("the agent produced no init line; see \(layout.agentStderr.path)")
        }
    }

    // MARK: collect

    func collect() async {
        let start = Date()
        var problems: [String] = []
        // Containers first: nothing in the sandbox may change the home while it is read.
        await protections.captureReports()
        await engine.remove((try? await engine.containers(label: "patina.run=\(plan.id)")) ?? [])
        copyTranscript()
        await protections.tearDown()
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
            return
        }
        var head = plan.baseCommit
        do {
            head = try Collector.importAgentCommits(into: plan.repository, privateGitDirectory: layout.privateGit, base: plan.baseCommit)
            try plan.repository.setBranch(plan.branch, to: head, message: "patina: collect run \(plan.id)")
        } catch {
            problems.append("could not import the agent's commits: \(error)")
        }
        do {
            let message = "patina: commit changes the agent left uncommitted\n\nRun \(plan.id) ended (\(record.status.rawValue)) with uncommitted changes in its worktree; patina committed them so nothing is lost.\n"
            let leftovers = try Collector.commitLeftovers(in: plan.repository, worktree: plan.worktree, branch: plan.branch, head: head, message: message)
            if !leftovers.skipped.isEmpty {
                problems.append("not committed (unsafe to read): \(leftovers.skipped.joined(separator: ", "))")
            }
            if let newHead = leftovers.commit {
                head = newHead
                record.leftoversCommitted = true
                progress.note("committed changes the agent left uncommitted")
            }
        } catch {
            problems.append("could not commit leftover changes: \(error)")
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
        steps.record("collect", Date().timeIntervalSince(start), "head \(head.short)")
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
