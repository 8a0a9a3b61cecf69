import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox
import PatinaTemplates
import Synchronization

/// One run, from plan to collected branch. The steps, each in its own file
/// under Run/Steps: image → branch → render → sandbox → agent → collect
/// (→ check). Collection always happens once a branch exists — after success,
/// failure, timeout, a dead container or Ctrl-C — cannot be cancelled, and
/// leaves no container behind.
///
/// A run is a library call: `execute()` emits events through `progress` and
/// always returns a record. A run that fails before anything was created
/// returns status `error` (or `interrupted`) with `createdNothing` set.
///
/// The orchestrator holds no mutable state: each step takes what it needs and returns
/// what it made (`PreparedRun`, `PreparedBranch`, the warm caches' lease,
/// `StartedSandbox`), and `executeRound` composes them; the record is a local value each
/// step adds to (`inout`).
public final class RunLifecycle: Sendable {
    public let plan: RunPlan
    let engine: DockerEngine
    let progress: Progress
    let control: RunControl
    let layout: RunLayout
    let steps: StepLog
    /// Every credential value patina knows, kept out of what the run writes and prints.
    let redactor: Redactor
    /// The record as the run starts; `executeRound` adds each step's outcome to its copy.
    let initialRecord: RunRecord

    public init(plan: RunPlan, engine: DockerEngine = DockerEngine(), progress: Progress, control: RunControl) {
        self.plan = plan
        self.engine = engine
        let redactor = Redactor(secrets: plan.credentials.secretValues)
        self.redactor = redactor
        self.progress = progress.redacting(redactor)
        self.control = control
        self.layout = RunLayout(runDirectory: plan.runDirectory)
        self.steps = StepLog(url: nil, redactor: redactor)
        var record = RunRecord(
            id: plan.id, task: plan.task, status: .running, reason: nil, branch: plan.branch,
            baseCommit: plan.baseCommit.hex, headCommit: nil, repository: plan.repositoryRoot.path,
            worktree: plan.worktree.path, runDir: plan.runDirectory.path,
            sessionLog: RunLayout(runDirectory: plan.runDirectory).sessionLog.path, transcript: nil,
            started: Date(), finished: nil, durationS: nil, costUSD: nil, numTurns: nil, tokens: nil,
            model: plan.model, maxTurns: plan.maxTurns, timeoutS: plan.timeoutSeconds, image: nil,
            baseImage: plan.baseImage, exitCode: nil, claudeSessionID: nil)
        record.firewall = plan.firewallEnabled
        record.batch = plan.batchID
        record.attempt = plan.attempt
        record.name = plan.name
        record.options = plan.options
        // Recovery collects under the same policy when this patina dies.
        record.maxFileSizeBytes = plan.disk.maxFileBytes
        record.maxNewPaths = plan.disk.maxNewPaths
        record.resumedFrom = plan.resume?.runID
        record.pid = getpid()
        record.executor = plan.executor
        let setup = plan.sandbox
        record.claudeVersion = setup.claude.version
        record.claudeSource = setup.claude.source.rawValue
        record.claudeBinary = setup.claude.binary?.path
        record.devcontainer = setup.devcontainer?.path
        record.devcontainerNotActedOn = setup.devcontainer.map(\.notActedOn)
        record.toolchains = setup.toolchains.isEmpty ? nil : setup.toolchains.map { toolchain in
            var t = toolchain
            if !setup.installed.contains(where: { $0.name == t.name }) { t.packages = [] }
            return t
        }
        record.autoPresets = setup.autoPresets.isEmpty ? nil : setup.autoPresets
        record.hostCA = setup.trust.caFiles.isEmpty ? nil : setup.trust.caFiles
        record.proxies = setup.trust.proxies.isEmpty ? nil : setup.trust.proxies.map(\.endpoint)
        if plan.shell == nil {
            record.maxCostUSD = plan.maxCostUSD
            record.modelEndpoint = plan.credentials.baseURL.absoluteString
        }
        self.initialRecord = record
    }

    var containerLabels: [String: String] {
        var labels = ["patina": "1", "patina.run": plan.id, "patina.repo": plan.store.repositoryKey]
        if let batch = plan.batchID { labels["patina.batch"] = batch }
        return labels
    }

    /// Runs every step (every round, with `--rounds`) and returns the final record; never throws.
    public func execute() async -> RunRecord {
        // Before anything of the run exists: what the sandbox mounts lies in a neutral folder.
        // Not on a Slurm node (`remoteModel`): the store must stay on the shared filesystem.
        if plan.remoteModel == nil, case .inPlace(let why) = StorePlacement.place(plan.store) {
            steps.note("the store stays in patina's home, whose path the sandbox's mount table shows: \(why)")
        }
        let loop = RoundLoop(plan: plan, engine: engine, progress: progress, control: control)
        var record: RunRecord
        if let interrupted = plan.continuing {
            record = await loop.resume(interrupted)
        } else {
            record = await executeRound()
            if plan.rounds > 1, plan.shell == nil, !record.createdNothing { record = await loop.run(from: record) }
        }
        progress.phase(.done)
        progress.emit(.finished(record))
        return record
    }

    /// One round: the whole run for round 1, or one more agent step and check on the
    /// run's branch for a later round (`RoundLoop`).
    func executeRound() async -> RunRecord {
        let started = Date()
        var record = initialRecord
        record.started = started
        // A disk already below its floor: nothing starts (a batch's later runs among them).
        if plan.shell == nil, let shortage = DiskFloorWatch(plan: plan).shortage(reserve: DiskReserve.bytes) {
            record.diskLow = shortage
            return finishWithoutBranch(DiskFloorError(shortage: shortage), record: record, started: started)
        }
        // The network holder's start is the longest part of the sandbox and needs only the
        // netguard image: it starts now, while the run is planned, and waits for the rules.
        let holder = NetworkHolder(plan: plan, layout: layout, engine: engine)
        let early = startHolderEarly(holder)
        let prepared: PreparedRun
        do {
            // Everything that can fail without side effects comes first: protections are
            // rendered and checked, images are built or found.
            prepared = try await prepare(into: &record)
            try await checkInterrupted()
        } catch {
            await discardEarlyHolder(early, holder: holder)
            return finishWithoutBranch(error, record: record, started: started)
        }

        // From here on something exists on disk: collection always runs. The record is
        // written before the branch, so a patina killed at any later moment leaves a
        // record that the next patina command finds and collects (Recovery).
        // The sandbox (model proxy, canary, the network holder applying the firewall) needs
        // nothing of the branch or the render step: it starts now and they run meanwhile.
        var sandboxStep: Task<StartedSandbox, Error>?
        let branch: PreparedBranch
        do {
            progress.phase(.branch)
            try FileManager.default.createDirectory(at: layout.runDirectory, withIntermediateDirectories: true)
            if let shell = plan.shell {
                // A shell keeps no record: recovery knows it by its pending mark (made here
                // too when no early holder made it, as without a firewall) and this.
                try plan.store.markPending(plan.id, pid: getpid())
                try ShellSession(runID: shell.runID, branch: plan.branch, base: plan.baseCommit.hex, worktree: plan.worktree.path)
                    .save(in: layout.runDirectory)
            } else {
                try plan.store.save(redactor(record))
                // Recovery knows the run by its record from now on.
                plan.store.clearPending(plan.id)
                DiskReserve(url: layout.diskReserve).hold()
            }
            sandboxStep = Task {
                try await self.steps.time("sandbox") {
                    try await self.startSandbox(prepared, holder: holder) { await early?.value }
                }
            }
            // On a failure the branch step removes what it created itself.
            branch = try await steps.time("branch") { try createBranch() }
        } catch {
            if sandboxStep == nil { await discardEarlyHolder(early, holder: holder) }
            await abandonSandbox(sandboxStep, holder: holder)
            try? FileManager.default.removeItem(at: layout.runDirectory)
            plan.store.clearRunning(plan.id)
            plan.store.clearPending(plan.id)
            return finishWithoutBranch(error, record: record, started: started)
        }
        steps.attach(layout.stepLog)
        // From the branch to collection: the disks the run writes to stay above their floor.
        let floorWatch = plan.shell == nil ? DiskFloorWatch(plan: plan).watch(control) : nil

        let agentStarted = EndFlag()
        var caches: CacheLease?
        do {
            progress.phase(.render)
            caches = try await steps.time("render") { try render(prepared, branch: branch, record: &record) }
            try await checkInterrupted()
            progress.phase(.sandbox)
            let sandbox = try await sandboxStep!.value
            record.allowList = sandbox.allowListSummary
            try await checkInterrupted()
            let context = SandboxContext(image: prepared.images.agent, sandbox: sandbox, worktree: branch.agentWorktree,
                                         extras: SandboxExtras(caches, claudeVolume: prepared.images.claudeVolume))
            if let lifecycle = plan.sandbox.devcontainer?.lifecycle, !lifecycle.isEmpty, plan.shell == nil {
                try await steps.time("lifecycle") { try await runLifecycleCommands(lifecycle, in: context, record: &record) }
                try await checkInterrupted()
            }
            progress.phase(.agent)
            try await steps.time("agent") { try await runAgent(in: context, record: &record, started: agentStarted) }
        } catch let stop as Stopped {
            record.status = stop.reason.runStatus
            record.reason = stop.description
            record.failure = PatinaError(classifying: stop)
        } catch {
            record.status = .error
            record.reason = "\(error)"
            record.failure = PatinaError(classifying: error, otherwise: .environment)
            progress.warn("run stopped: \(error)")
        }
        // No container may start after collection has removed the run's containers.
        let sandbox = try? await sandboxStep!.result.get()
        floorWatch?.cancel()
        if case .diskLow(let shortage)? = await control.reason {
            record.diskLow = shortage
            // The room held for patina's records is given back for collection and the record.
            DiskReserve(url: layout.diskReserve).release()
            progress.warn("stopped the run: \(shortage)")
        }
        // Collection must finish even when the task running this run is cancelled:
        // an unstructured task is not cancelled with it.
        let collecting = CollectInput(
            record: record, image: prepared.images.agent, holder: holder, sandbox: sandbox, branch: branch, caches: caches,
            agentStarted: agentStarted.value)
        let collection = Task { await self.collectAndCheck(collecting) }
        let teardown: Task<Void, Never>
        (record, teardown) = await collection.value
        for log in layout.logs { redactor.scrub(log) }
        record = redactor(record)
        record.finished = Date()
        record.durationS = (record.finished!.timeIntervalSince(started) * 1000).rounded() / 1000
        record.steps = steps.steps
        DiskReserve(url: layout.diskReserve).release()
        if plan.shell == nil {
            // The session log people read, from session.jsonl and the record: for every
            // run that got this far, whatever its outcome.
            do {
                let written = try SessionMarkdown.write(record: record, repository: plan.repository, secrets: redactor.secrets)
                // `patina resume`: what came before, as the seeds' session logs open.
                if let earlier = plan.resume?.runID, earlier != plan.id, let before = try? plan.store.load(earlier) {
                    try RoundsMarkdown.insertPreviousContext(RoundsMarkdown.context(of: before), into: written)
                }
            } catch {
                progress.warn("could not write session.md: \(error)")
            }
            try? plan.store.save(record)
        } else {
            // A shell leaves no run behind: its commits are on the branch, the rest goes.
            try? FileManager.default.removeItem(at: layout.runDirectory)
        }
        // The last containers' removal went on while the record was written.
        await teardown.value
        plan.store.clearPending(plan.id)
        return record
    }

    /// Checks, renders what can be rendered without side effects, builds or finds the images.
    /// Returns them with the protections and the default bridge's gateway address (where
    /// the model proxy and the canary listen).
    private func prepare(into record: inout RunRecord) async throws -> PreparedRun {
        progress.phase(.planning)
        // The protections are compiled and checked while the images are looked up (an
        // image is built only once they passed); their errors come first.
        let plan = self.plan, steps = self.steps
        let protectionsChecked = Task { try await steps.time("protections") { try ProtectionPlan.make(plan: plan) } }
        let claudeSettings: String
        do {
            // Every template is read now, so a broken override fails before anything exists.
            _ = try AgentImage.recipe(plan: plan, base: plan.baseImage)
            claudeSettings = try plan.templates.render("templates/claude-settings.json.mustache", ["include_co_authored_by": "false"])
            _ = try plan.templates.render("templates/devcontainer.json.mustache", [:])
        } catch {
            _ = try await protectionsChecked.value
            throw error
        }
        progress.phase(.image)
        // The bridge's gateway (where the model proxy and the canary listen) too.
        async let gateway = engine.bridgeGateway()
        let images: SandboxImages
        do {
            images = try await steps.time("image") { try await buildImages(beforeBuilding: { _ = try await protectionsChecked.value }) }
        } catch {
            _ = try await protectionsChecked.value
            throw error
        }
        let protections = try await protectionsChecked.value
        let gatewayAddress = try await gateway
        if !plan.firewallEnabled {
            progress.warn("--no-firewall: the agent can reach any address this machine can; recorded in run.json")
        }
        record.allowList = protections.allowListSummary()
        record.seccompRelaxed = protections.seccompRelaxed
        record.dnsPinned = protections.pinnedNames.isEmpty ? nil : protections.pinnedNames
        announceSandboxSetup(protections)
        progress.step("run \(plan.id)")
        record.image = images.agent
        record.baseImage = images.base
        return PreparedRun(images: images, gateway: gatewayAddress, protections: protections, claudeSettings: claudeSettings)
    }

    /// What the sandbox is made of, once: in the step log (kept once the run directory
    /// exists) and as progress lines.
    private func announceSandboxSetup(_ protections: ProtectionPlan) {
        let setup = plan.sandbox
        let lines = setup.notes + protections.dnsNotes + protections.pinnedNames.map { pin in
            "dns: \(pin.name) → \(pin.addresses.joined(separator: ", ")): \(pin.reason)"
        }
        for line in lines { steps.note(line) }
        if let devcontainer = setup.devcontainer {
            progress.step("devcontainer \(devcontainer.path)" + (devcontainer.notActedOn.isEmpty ? ""
                : "; not acted on: " + devcontainer.notActedOn.map { $0.split(separator: " ").first.map(String.init) ?? $0 }.joined(separator: ", ")))
        }
        if let note = setup.baseImageNote { progress.note(note) }
        let installed = setup.installed.map { $0.name + ($0.provides.map { " \($0)" } ?? "") }
        if !installed.isEmpty { progress.step("toolchains: \(installed.joined(separator: ", "))") }
        for note in setup.toolchains.flatMap(\.notes) { progress.note(note) }
        if !setup.autoPresets.isEmpty { progress.step("presets for the toolchains: \(setup.autoPresets.joined(separator: ", ")) (--no-auto-presets leaves them out)") }
        if let warning = setup.claude.npmWarning { progress.warn(warning) } else { progress.step(setup.claude.description) }
        for pin in protections.pinnedNames { progress.step("dns: \(pin.name) → \(pin.addresses.joined(separator: ", ")): \(pin.reason)") }
        for note in protections.dnsNotes + setup.trust.notes { progress.note(note) }
    }

    /// The record of a run that created nothing (or removed what it created).
    private func finishWithoutBranch(_ error: Error, record: RunRecord, started: Date) -> RunRecord {
        var record = record
        if let stop = error as? Stopped {
            record.status = stop.reason.runStatus
            record.reason = stop.description
        } else {
            record.status = .error
            record.reason = "\(error)"
        }
        record.createdNothing = true
        record.headCommit = nil
        record = redactor(record)
        // The line shown is the redacted reason; the error it came from stays the cause.
        let failure = PatinaError(classifying: error, otherwise: .environment)
        record.failure = PatinaError(failure.kind, record.reason ?? failure.message, cause: failure.cause)
        record.finished = Date()
        record.durationS = (record.finished!.timeIntervalSince(started) * 1000).rounded() / 1000
        record.steps = steps.steps
        return record
    }

    struct Stopped: Error, CustomStringConvertible {
        let reason: StopReason
        var description: String {
            switch reason {
            case .timeout: "timed out before the agent started"
            case .interrupted: "interrupted before the agent started; nothing was left behind"
            case .modelUnreachable: "the model API could not be reached"
            case .diskLow(let shortage): "stopped before the agent started: \(shortage)"
            }
        }
    }

    /// A disk below its floor before the run started: nothing was created.
    struct DiskFloorError: Error, CustomStringConvertible {
        let shortage: DiskShortage
        var description: String { "not started: \(shortage); free some space, or lower --min-free" }
    }

    func checkInterrupted() async throws {
        if let reason = await control.reason { throw Stopped(reason: reason) }
    }
}

/// What planning made, without side effects: the images, the protections checked, the
/// bridge's gateway and the rendered Claude Code settings (written at the render step).
struct PreparedRun: Sendable {
    let images: SandboxImages
    /// Where the model proxy and the canary listen.
    let gateway: String
    let protections: ProtectionPlan
    let claudeSettings: String
}
