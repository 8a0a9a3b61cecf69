import Foundation
import PatinaModelProxy
import PatinaSandbox
import Synchronization

/// What the sandbox step started: the run's model proxy and what the agent's container is
/// told about it, the network holder applying the firewall, and the protections it applies.
/// The probe gate (`ProbeGate`) lets each sandbox container's command start through it.
struct StartedSandbox: Sendable {
    let protections: ProtectionPlan
    let holder: NetworkHolder
    /// The run's model endpoint outside the sandbox (none for a shell, or when the
    /// submitting patina serves it); stopped once the agent ends.
    let proxy: ModelProxy?
    /// What the agent's container is told about the proxy.
    let access: ModelAccess?
    /// The proxy as the firewall allows it: the agent's only model endpoint.
    let agentEndpoints: [AllowEntry]

    /// The network the sandbox's containers join.
    var network: String? { holder.agentNetwork }
    var allowListSummary: [String] { protections.allowListSummary(agentEndpoints: agentEndpoints) }
}

/// What the agent's containers are made of, from the steps before the agent: its image,
/// the started sandbox, the worktree they mount and the warm caches the run holds.
struct SandboxContext: Sendable {
    let image: String
    let sandbox: StartedSandbox
    /// What the containers mount at /workspace (the idmapped view when there is one).
    let worktree: URL?
    let extras: SandboxExtras
}

/// Step "sandbox": the model proxy, the canary and the network holder applying the
/// firewall. Needs nothing of the branch or the render step, so it runs beside them; the
/// holder itself starts earlier still, while the run is planned (`startHolderEarly`).
extension RunLifecycle {
    /// Returns once the holder runs with the rules handed over (`NetworkHolder.apply`).
    /// What it started is stopped again when it throws.
    func startSandbox(_ prepared: PreparedRun, holder: NetworkHolder, earlyHolder: () async -> Void) async throws -> StartedSandbox {
        let (proxy, access) = try startModelProxy(gateway: prepared.gateway)
        do {
            let endpoints = try access.map { [try ClaudeEndpoints.modelProxy(url: $0.baseURL)] } ?? []
            try await holder.apply(
                prepared.protections, agentEndpoints: endpoints, netguard: prepared.images.netguard, labels: containerLabels,
                gateway: prepared.gateway, progress: progress, steps: steps, earlyHolder: earlyHolder)
            return StartedSandbox(protections: prepared.protections, holder: holder, proxy: proxy, access: access, agentEndpoints: endpoints)
        } catch {
            proxy?.stop()
            throw error
        }
    }

    /// Starts the network holder in the background when its image is already there (a
    /// missing one is built at the image step, and the holder started by the sandbox
    /// step). Before it starts, the run is marked pending in the store: a patina killed
    /// before the run's record exists leaves a holder that the next command removes.
    func startHolderEarly(_ holder: NetworkHolder) -> Task<Void, Never>? {
        guard plan.firewallEnabled, let recipe = try? netguardRecipe() else { return nil }
        do {
            try plan.store.markPending(plan.id, pid: getpid())
            try holder.prepareHolder()
        } catch {
            // Started the usual way at the sandbox step, which says why when it cannot.
            try? FileManager.default.removeItem(at: layout.runDirectory)
            plan.store.clearPending(plan.id)
            return nil
        }
        let labels = containerLabels, engine = self.engine, cache = imageCache
        return Task {
            do {
                let tag = try await cache.tag(for: recipe, rememberHashes: false)
                // The Engine API never pulls a missing image; the CLI would try.
                if engine.api == nil, await !engine.imageExists(tag) { return }
                try await holder.startHolder(netguard: tag, labels: labels)
            } catch {
                // The sandbox step starts it again and says why when it cannot.
                _ = await engine.remove([holder.holderName])
            }
        }
    }

    /// The holder started early for a run that stops before its sandbox step: waited for,
    /// removed, and the run's directory with it (nothing else of the run exists yet).
    func discardEarlyHolder(_ early: Task<Void, Never>?, holder: NetworkHolder) async {
        guard let early else { return }
        await early.value
        let left = await RunCollection.removeContainers(engine: engine, runID: plan.id, keeping: nil, known: [holder.holderName])
        try? FileManager.default.removeItem(at: layout.runDirectory)
        // A holder docker could not remove stays known to the next command (Recovery).
        if left.isEmpty { plan.store.clearPending(plan.id) }
    }

    /// A sandbox started for a run that stops before its branch exists: waited for, then
    /// its container removed and its listeners closed.
    func abandonSandbox(_ sandbox: Task<StartedSandbox, Error>?, holder: NetworkHolder) async {
        guard let sandbox else { return }
        if case .success(let started) = await sandbox.result { started.proxy?.stop() }
        _ = await RunCollection.removeContainers(engine: engine, runID: plan.id, keeping: nil)
        await holder.tearDown()
    }

    /// Starts the run's model proxy on the bridge gateway (none for `patina shell`, which
    /// holds no credential): the agent's only model endpoint.
    func startModelProxy(gateway: String) throws -> (ModelProxy?, ModelAccess?) {
        guard plan.shell == nil else { return (nil, nil) }
        if let remote = plan.remoteModel {
            // The submitting patina serves this run's proxy and holds the credential.
            progress.step("model proxy of the submitting patina at \(remote.baseURL); the sandbox holds a placeholder, not the credential")
            return (nil, remote)
        }
        let credentials = plan.credentials
        let placeholder = ModelProxyConfiguration.makePlaceholder(scheme: credentials.upstream.scheme)
        var configuration = ModelProxyConfiguration(
            listenAddress: gateway, upstream: credentials.baseURL, credential: credentials.upstream, placeholder: placeholder,
            prices: plan.prices, maxCostUSD: plan.maxCostUSD, sharedLimit: plan.sharedBudget,
            apiLog: layout.apiLog, secrets: credentials.secretValues)
        configuration.apiPolicy = plan.apiPolicy
        let proxy = try ModelProxy(configuration: configuration, onEvent: Self.proxyEventHandler(progress: progress, control: control))
        progress.step("model proxy on \(proxy.baseURL) → \(credentials.baseURL.absoluteString)"
            + (plan.maxCostUSD.map { ", budget " + Money.format($0) } ?? "")
            + "; the sandbox holds a placeholder, not the credential")
        return (proxy, ModelAccess(baseURL: proxy.baseURL, variable: credentials.variable, placeholder: placeholder))
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
}
