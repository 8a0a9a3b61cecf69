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
public final class RunLifecycle: @unchecked Sendable {
    // @unchecked: the mutable state below is only touched by the task running
    // `execute()`, one step after another; other tasks only see `control`.
    public let plan: RunPlan
    let engine: DockerEngine
    let progress: Progress
    let control: RunControl
    let layout: RunLayout
    let steps: StepLog
    /// Every credential value patina knows, kept out of what the run writes and prints.
    let redactor: Redactor
    var record: RunRecord
    var protections: Protections
    var agentStarted = false
    /// True once this run created its branch: only then may cleanup delete it.
    var branchCreated = false
    /// Rendered while planning checks every template, written at the render step.
    var claudeSettings = ""
    /// What the agent's containers mount at /workspace: the idmapped view of the worktree
    /// when patina runs as root (BranchStep), else the worktree itself.
    var agentWorktree: URL?
    /// What changes in the worktree while the run's containers use it (BranchStep to collection).
    var worktreeWatch: WorktreeWatch?
    /// The warm caches this run holds, from the render step until collection.
    var caches: CacheLease?
    /// The volume holding Claude Code's binary (ClaudeVolume), from the image step on; nil with npm's.
    var claudeVolume: String?
    /// The run's model endpoint outside the sandbox, from the sandbox step until the agent ends.
    var modelProxy: ModelProxy?
    /// What the agent's container is told about the proxy.
    var modelAccess: ModelAccess?

    public init(plan: RunPlan, engine: DockerEngine = DockerEngine(), progress: Progress, control: RunControl) {
        self.plan = plan
        self.engine = engine
        let redactor = Redactor(secrets: plan.credentials.secretValues)
        self.redactor = redactor
        self.progress = progress.redacting(redactor)
        self.control = control
        self.layout = RunLayout(runDirectory: plan.runDirectory)
        self.steps = StepLog(url: nil, redactor: redactor)
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
        record.started = started
        // A disk already below its floor: nothing starts (a batch's later runs among them).
        if plan.shell == nil, let shortage = DiskFloorWatch(plan: plan).shortage(reserve: DiskReserve.bytes) {
            record.diskLow = shortage
            return finishWithoutBranch(DiskFloorError(shortage: shortage), started: started)
        }
        // The network holder's start is the longest part of the sandbox and needs only the
        // netguard image: it starts now, while the run is planned, and waits for the rules.
        let holder = startHolderEarly()
        let images: SandboxImages
        let gateway: String
        do {
            // Everything that can fail without side effects comes first: protections are
            // rendered and checked, images are built or found.
            (images, gateway) = try await prepare()
            try await checkInterrupted()
        } catch {
            await discardEarlyHolder(holder)
            return finishWithoutBranch(error, started: started)
        }

        // From here on something exists on disk: collection always runs. The record is
        // written before the branch, so a patina killed at any later moment leaves a
        // record that the next patina command finds and collects (Recovery).
        // The sandbox (model proxy, canary, the network holder applying the firewall) needs
        // nothing of the branch or the render step: it starts now and they run meanwhile.
        var sandbox: Task<Void, Error>?
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
            sandbox = Task {
                try await self.steps.time("sandbox") {
                    try await self.startSandbox(images: images, gateway: gateway) { await holder?.value }
                }
            }
            try await steps.time("branch") { try createBranch() }
        } catch {
            if sandbox == nil { await discardEarlyHolder(holder) }
            await abandonSandbox(sandbox)
            cleanUpBranch()
            try? FileManager.default.removeItem(at: layout.runDirectory)
            plan.store.clearRunning(plan.id)
            plan.store.clearPending(plan.id)
            return finishWithoutBranch(error, started: started)
        }
        steps.attach(layout.stepLog)
        // From the branch to collection: the disks the run writes to stay above their floor.
        let floorWatch = plan.shell == nil ? DiskFloorWatch(plan: plan).watch(control) : nil

        do {
            progress.phase(.render)
            try await steps.time("render") { try render(images: images) }
            try await checkInterrupted()
            progress.phase(.sandbox)
            try await sandbox?.value
            record.allowList = protections.allowListSummary
            try await checkInterrupted()
            if let lifecycle = plan.sandbox.devcontainer?.lifecycle, !lifecycle.isEmpty, plan.shell == nil {
                try await steps.time("lifecycle") { try await runLifecycleCommands(lifecycle, image: images.agent) }
                try await checkInterrupted()
            }
            progress.phase(.agent)
            try await steps.time("agent") { try await runAgent(image: images.agent) }
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
        _ = await sandbox?.result
        floorWatch?.cancel()
        if case .diskLow(let shortage)? = await control.reason {
            record.diskLow = shortage
            // The room held for patina's records is given back for collection and the record.
            DiskReserve(url: layout.diskReserve).release()
            progress.warn("stopped the run: \(shortage)")
        }
        // Collection must finish even when the task running this run is cancelled:
        // an unstructured task is not cancelled with it.
        let collection = Task { await self.collectAndCheck(image: images.agent) }
        let teardown = await collection.value
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
    /// Returns the images and the default bridge's gateway address (where the model proxy
    /// and the canary listen).
    private func prepare() async throws -> (SandboxImages, String) {
        progress.phase(.planning)
        // The protections are compiled and checked while the images are looked up (an
        // image is built only once they passed); their errors come first.
        let protections = self.protections, steps = self.steps
        let protectionsChecked = Task { try await steps.time("protections") { try protections.prepare() } }
        do {
            // Every template is read now, so a broken override fails before anything exists.
            _ = try AgentImage.recipe(plan: plan, base: plan.baseImage)
            claudeSettings = try plan.templates.render("templates/claude-settings.json.mustache", ["include_co_authored_by": "false"])
            _ = try plan.templates.render("templates/devcontainer.json.mustache", [:])
        } catch {
            try await protectionsChecked.value
            throw error
        }
        progress.phase(.image)
        // The bridge's gateway (where the model proxy and the canary listen) too.
        async let gateway = engine.bridgeGateway()
        let images: SandboxImages
        do {
            images = try await steps.time("image") { try await buildImages(beforeBuilding: { try await protectionsChecked.value }) }
        } catch {
            try await protectionsChecked.value
            throw error
        }
        try await protectionsChecked.value
        let gatewayAddress = try await gateway
        if !plan.firewallEnabled {
            progress.warn("--no-firewall: the agent can reach any address this machine can; recorded in run.json")
        }
        record.allowList = protections.allowListSummary
        record.seccompRelaxed = protections.seccompRelaxed
        record.dnsPinned = protections.pinnedNames.isEmpty ? nil : protections.pinnedNames
        announceSandboxSetup()
        progress.step("run \(plan.id)")
        record.image = images.agent
        record.baseImage = images.base
        return (images, gatewayAddress)
    }

    /// What the sandbox is made of, once: in the step log (kept once the run directory
    /// exists) and as progress lines.
    private func announceSandboxSetup() {
        let setup = plan.sandbox
        let lines = setup.notes + protections.dnsNotes + protections.pinnedNames.map { pin in
            "dns: \(pin.name) → \(pin.addresses.joined(separator: ", ")): \(pin.reason)"
        }
        for line in lines { steps.note(line) }
        if let devcontainer = setup.devcontainer {
            progress.step("devcontainer \(devcontainer.path)" + (devcontainer.notActedOn.isEmpty ? ""
                : "; not acted on: " + devcontainer.notActedOn.map { $0.split(separator: " ").first.map(String.init) ?? $0 }.joined(separator: ", ")))
        }
        let installed = setup.installed.map { $0.name + ($0.provides.map { " \($0)" } ?? "") }
        if !installed.isEmpty { progress.step("toolchains: \(installed.joined(separator: ", "))") }
        for note in setup.toolchains.flatMap(\.notes) { progress.note(note) }
        if !setup.autoPresets.isEmpty { progress.step("presets for the toolchains: \(setup.autoPresets.joined(separator: ", ")) (--no-auto-presets leaves them out)") }
        if let warning = setup.claude.npmWarning { progress.warn(warning) } else { progress.step(setup.claude.description) }
        for pin in protections.pinnedNames { progress.step("dns: \(pin.name) → \(pin.addresses.joined(separator: ", ")): \(pin.reason)") }
        for note in protections.dnsNotes + setup.trust.notes { progress.note(note) }
    }

    /// The model proxy, the canary and the network holder, which applies the firewall:
    /// returns once the holder runs with the rules handed over (`Protections.startSandbox`).
    private func startSandbox(images: SandboxImages, gateway: String, earlyHolder: () async -> Void) async throws {
        let proxy = try startModelProxy(gateway: gateway)
        try await protections.startSandbox(
            images: images, labels: containerLabels, gateway: gateway, modelProxy: proxy, progress: progress, steps: steps, earlyHolder: earlyHolder)
    }

    /// Starts the network holder in the background when its image is already there (a
    /// missing one is built at the image step, and the holder started by the sandbox
    /// step). Before it starts, the run is marked pending in the store: a patina killed
    /// before the run's record exists leaves a holder that the next command removes.
    private func startHolderEarly() -> Task<Void, Never>? {
        guard plan.firewallEnabled, let recipe = try? netguardRecipe() else { return nil }
        do {
            try plan.store.markPending(plan.id, pid: getpid())
            try protections.prepareHolder()
        } catch {
            // Started the usual way at the sandbox step, which says why when it cannot.
            try? FileManager.default.removeItem(at: layout.runDirectory)
            plan.store.clearPending(plan.id)
            return nil
        }
        let protections = self.protections, labels = containerLabels
        let engine = self.engine, cache = imageCache
        return Task {
            do {
                let tag = try await cache.tag(for: recipe, rememberHashes: false)
                // The Engine API never pulls a missing image; the CLI would try.
                if engine.api == nil, await !engine.imageExists(tag) { return }
                try await protections.startHolder(netguard: tag, labels: labels)
            } catch {
                // The sandbox step starts it again and says why when it cannot.
                _ = await engine.remove([protections.holderName])
            }
        }
    }

    /// The holder started early for a run that stops before its sandbox step: waited for,
    /// removed, and the run's directory with it (nothing else of the run exists yet).
    private func discardEarlyHolder(_ holder: Task<Void, Never>?) async {
        guard let holder else { return }
        await holder.value
        let left = await RunCollection.removeContainers(engine: engine, runID: plan.id, keeping: nil, known: [protections.holderName])
        try? FileManager.default.removeItem(at: layout.runDirectory)
        // A holder docker could not remove stays known to the next command (Recovery).
        if left.isEmpty { plan.store.clearPending(plan.id) }
    }

    /// A sandbox started for a run that stops before its branch exists: waited for, then
    /// its container removed and its listeners closed.
    private func abandonSandbox(_ sandbox: Task<Void, Error>?) async {
        guard let sandbox else { return }
        _ = await sandbox.result
        modelProxy?.stop()
        _ = await RunCollection.removeContainers(engine: engine, runID: plan.id, keeping: nil)
        await protections.tearDown()
    }

    /// The record of a run that created nothing (or removed what it created).
    private func finishWithoutBranch(_ error: Error, started: Date) -> RunRecord {
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

    /// Starts the run's model proxy on the bridge gateway (none for `patina shell`, which
    /// holds no credential): the agent's only model endpoint. Returns its URL.
    func startModelProxy(gateway: String) throws -> String? {
        guard plan.shell == nil else { return nil }
        if let remote = plan.remoteModel {
            // The submitting patina serves this run's proxy and holds the credential.
            modelAccess = remote
            progress.step("model proxy of the submitting patina at \(remote.baseURL); the sandbox holds a placeholder, not the credential")
            return remote.baseURL
        }
        let credentials = plan.credentials
        let placeholder = ModelProxyConfiguration.makePlaceholder(scheme: credentials.upstream.scheme)
        var configuration = ModelProxyConfiguration(
            listenAddress: gateway, upstream: credentials.baseURL, credential: credentials.upstream, placeholder: placeholder,
            prices: plan.prices, maxCostUSD: plan.maxCostUSD, sharedLimit: plan.sharedBudget,
            apiLog: layout.apiLog, secrets: credentials.secretValues)
        configuration.apiPolicy = plan.apiPolicy
        let proxy = try ModelProxy(configuration: configuration, onEvent: Self.proxyEventHandler(progress: progress, control: control))
        modelProxy = proxy
        modelAccess = ModelAccess(baseURL: proxy.baseURL, variable: credentials.variable, placeholder: placeholder)
        progress.step("model proxy on \(proxy.baseURL) → \(credentials.baseURL.absoluteString)"
            + (plan.maxCostUSD.map { ", budget " + Money.format($0) } ?? "")
            + "; the sandbox holds a placeholder, not the credential")
        return proxy.baseURL
    }

    /// What the proxy reports, as the run's events: rate limits and overloads, answers
    /// without a price and a spent budget (each once), an endpoint out of reach (which
    /// stops the agent).
    static func proxyEventHandler(progress: Progress, control: RunControl) -> @Sendable (ModelProxyEvent) -> Void {
        let said = Mutex(Set<String>())
        @Sendable func once(_ key: String) -> Bool { said.withLock { $0.insert(key).inserted } }
        return { event in
            switch event {
            case .answered(let entry, let totals):
                if entry.status == 429 || entry.status == 529 {
                    progress.emit(.modelAPI(status: entry.status, rateLimited: totals.rateLimited, overloaded: totals.overloaded))
                }
                if let unpriced = entry.unpriced, once("unpriced " + unpriced) {
                    progress.warn("the run's cost is unknown: \(unpriced); add it under \"model_prices\" in .patina/config.json")
                }
                if entry.refused == "budget", let why = totals.budgetExceeded, once("budget") {
                    progress.warn(why + "; the model proxy refuses further requests")
                }
                if entry.refused == "unpriced_model", let why = totals.refusedUnpriced, once("unpriced_model") {
                    progress.warn(why)
                }
                if entry.refused == "api_feature", let feature = entry.feature, once("feature " + feature) {
                    progress.warn("the agent asked the model API for \(feature), which reaches the network from the provider's servers; "
                                  + "refused (allow it with --allow-api-feature \(feature))")
                }
                if entry.refused != nil, totals.refusedClients == 1, once("clients") {
                    progress.warn("the model proxy dropped a client that broke its rules (\(entry.refused ?? "")): \(entry.errorMessage ?? "")")
                }
            case .unreachable(let why):
                progress.warn("the model API at \(why); stopping the agent")
                Task { await control.stop(.modelUnreachable) }
            }
        }
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
