import Foundation
import PatinaModelProxy
import PatinaSandbox

/// Step "agent": Claude Code headless in the sandbox, every stream-json line
/// recorded to session.jsonl and turned into events, a watchdog for the timeout.
extension RunLifecycle {
    func runAgent(image: String) async throws {
        if let shell = plan.shell { return try await runShell(shell, image: image) }
        let spec = AgentSandbox.spec(plan: plan, layout: layout, image: image, network: protections.agentNetwork,
                                     labels: containerLabels, extras: sandboxExtras, model: modelAccess)
        let proxy = modelProxy
        let recorder = try SessionRecorder(sessionLog: layout.sessionLog, progress: progress, redactor: redactor,
                                           costSoFar: { proxy?.usage.costUSD ?? 0 })
        defer { recorder.close() }
        progress.step("agent running (timeout \(DurationParser.format(plan.timeoutSeconds)))")
        agentStarted = true
        let timeout = plan.timeoutSeconds
        let (result, state) = try await runWatched(spec, timeout: timeout) { line in recorder.receive(line) }
        // The agent is gone: nothing may use the proxy any more (not the check, not a
        // process the agent left behind), and its counts are final.
        proxy?.stop()
        try? Data(redactor(result.standardError).utf8).write(to: layout.agentStderr)
        record.exitCode = state?.exitCode ?? Int(result.exitCode)
        record.claudeSessionID = recorder.sessionID
        if record.model == nil { record.model = recorder.model }
        let stopReason = await control.killedAgent || recorder.result == nil ? await control.reason : nil
        if let summary = recorder.result {
            record.agentReported = AgentReport(costUSD: summary.costUSD, numTurns: summary.numTurns, tokens: summary.tokens, durationMS: summary.durationMS)
            record.lastMessage = summary.text.map { String($0.prefix(4000)) }
        }
        let usage = proxy?.usage
        if let usage { recordModelUsage(usage) }
        let outcome = RunOutcome.decide(
            stopReason: stopReason, result: recorder.result, exitCode: record.exitCode,
            oomKilled: state?.oomKilled == true, lastRetryStatus: recorder.lastRetryStatus,
            lastStderrLine: redactor(result.standardError.split(separator: "\n").last.map(String.init) ?? ""),
            timeout: timeout, memoryLimit: plan.limits.memory, model: usage)
        record.status = outcome.status
        record.reason = outcome.reason
        if stopReason == nil, let status = RunOutcome.retryableAPIStatus(status: record.status, model: usage) {
            record.apiErrorStatus = status
            progress.emit(.apiError(status: status))
        }
        if !recorder.sawInit && record.status != .timedOut {
            progress.warn("the agent produced no init line; see \(layout.agentStderr.path)")
        }
    }

    /// The trusted numbers of run.json: what the model proxy counted.
    func recordModelUsage(_ usage: ModelUsage) {
        record.costUSD = usage.costUSD
        record.numTurns = usage.turns
        record.tokens = TokenCounts(usage.usage)
        record.requests = usage.requests
        record.rateLimited = usage.rateLimited
        record.overloaded = usage.overloaded
        record.unpriced = usage.unpriced.isEmpty ? nil : usage.unpriced
    }

    /// `patina shell`: the user's command (or an interactive shell) in the agent's
    /// sandbox, attached to patina's own terminal; no credential is passed in.
    func runShell(_ shell: ShellRequest, image: String) async throws {
        var spec = AgentSandbox.spec(plan: plan, layout: layout, image: image, network: protections.agentNetwork,
                                     labels: containerLabels, extras: sandboxExtras)
        spec.name = "patina-\(plan.id)-shell"
        spec.labels["patina.role"] = "shell"
        spec.passEnvironment = plan.sandbox.trust.passedVariables
        spec.environment = sandboxExtras.environment.merging(
            ["HOME": RunLayout.containerHome, "PATINA_RUN_ID": shell.runID, "PATINA_SHELL": "1"]) { $1 }
        spec.command = shell.command.isEmpty ? ["bash", "-l"] : shell.command
        var arguments = spec.runArguments
        arguments.insert(contentsOf: isatty(0) == 1 && shell.command.isEmpty ? ["--interactive", "--tty"] : ["--interactive"], at: 1)
        agentStarted = true
        await control.containerStarted(spec.name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [engine.executable] + arguments
        try process.run()
        let control = self.control
        let watchdog = Task {
            while !Task.isCancelled {
                await control.killContainerIfStopping()
                try? await Task.sleep(nanoseconds: 250_000_000)
            }
        }
        defer { watchdog.cancel() }
        let status: Int32 = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
        await control.containerFinished()
        record.exitCode = Int(status)
        record.status = status == 0 ? .succeeded : .failed
    }

    /// Runs a container to its end, streaming its stdout lines; the watchdog asks
    /// for a stop at the deadline and repeats the kill until the container is gone
    /// (a kill sent before `docker run` has created it would miss it).
    func runWatched(
        _ spec: ContainerSpec, timeout: Double, onLine: @escaping (String) -> Void
    ) async throws -> (CommandResult, (exitCode: Int, oomKilled: Bool)?) {
        await control.containerStarted(spec.name)
        let control = self.control
        let timer = Task {
            let deadline = Date().addingTimeInterval(timeout)
            while !Task.isCancelled {
                if Date() >= deadline { await control.stop(.timeout) }
                await control.killContainerIfStopping()
                try? await Task.sleep(nanoseconds: 250_000_000)
            }
        }
        defer { timer.cancel() }
        let result: CommandResult
        do {
            result = try await Command.stream([engine.executable] + spec.runArguments, environment: spec.passedValues, onLine: onLine)
        } catch {
            await control.containerFinished()
            throw error
        }
        await control.containerFinished()
        return (result, await engine.exitState(spec.name))
    }
}
