import Foundation
import PatinaModelProxy
import PatinaSandbox

/// Step "agent": Claude Code headless in the sandbox, every stream-json line
/// recorded to session.jsonl and turned into events, a watchdog for the timeout.
extension RunLifecycle {
    /// `started` is set once the agent's container passed its probes and its command runs.
    func runAgent(in context: SandboxContext, record: inout RunRecord, started: EndFlag) async throws {
        if let shell = plan.shell { return try await runShell(shell, in: context, record: &record, started: started) }
        let spec = AgentSandbox.spec(plan: plan, layout: layout, image: context.image, network: context.sandbox.network,
                                     labels: containerLabels, extras: context.extras, model: context.sandbox.access,
                                     worktree: context.worktree)
        let proxy = context.sandbox.proxy
        let recorder = try SessionRecorder(sessionLog: layout.sessionLog, progress: progress, redactor: redactor,
                                           costSoFar: { proxy?.usage.costUSD ?? 0 })
        defer { recorder.close() }
        let timeout = plan.timeoutSeconds
        let (result, state) = try await runWatched(spec, role: "agent", sandbox: context.sandbox, timeout: timeout, admitted: {
            started.set()
            self.progress.step("agent running (timeout \(DurationParser.format(timeout)))")
        }) { line in recorder.receive(line) }
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
        if let usage { record.takeFigures(from: usage) }
        let outcome = RunOutcome.decide(
            stopReason: stopReason, result: recorder.result, exitCode: record.exitCode,
            oomKilled: state?.oomKilled == true, lastRetryStatus: recorder.lastRetryStatus,
            lastStderrLine: redactor(result.standardError.split(separator: "\n").last { !$0.hasPrefix("[patina: ") }.map(String.init) ?? ""),
            timeout: timeout, memoryLimit: plan.limits.memory, model: usage)
        record.status = outcome.status
        record.reason = outcome.reason
        if stopReason == nil, let status = RunOutcome.retryableAPIStatus(status: record.status, model: usage) {
            record.apiErrorStatus = status
            progress.emit(.apiError(status: status))
        }
        var truncated: [String] = []
        if recorder.cutLines > 0 {
            truncated.append("stdout: \(recorder.cutLines) line\(recorder.cutLines == 1 ? "" : "s") longer than \(Command.lineLimit) bytes cut (marked in session.jsonl)")
        }
        if recorder.droppedLines > 0 {
            truncated.append("session.jsonl: stopped at \(SessionRecorder.sizeLimit) bytes, \(recorder.droppedLines) later lines read but not kept")
        }
        if let marker = result.standardError.split(separator: "\n").last, marker.hasPrefix("[patina: ") {
            truncated.append("stderr: " + marker.dropFirst("[patina: ".count).dropLast())
        }
        if !truncated.isEmpty {
            record.outputTruncated = (record.outputTruncated ?? []) + truncated
            progress.warn("the agent's output was cut to stay bounded: " + truncated.joined(separator: "; "))
        }
        if !recorder.sawInit && record.status != .timedOut {
            progress.warn("the agent produced no init line; see \(layout.agentStderr.path)")
        }
    }

    /// `patina shell`: the user's command (or an interactive shell) in the agent's
    /// sandbox, attached to patina's own terminal; no credential is passed in.
    func runShell(_ shell: ShellRequest, in context: SandboxContext, record: inout RunRecord, started: EndFlag) async throws {
        var spec = AgentSandbox.spec(plan: plan, layout: layout, image: context.image, network: context.sandbox.network,
                                     labels: containerLabels, extras: context.extras, worktree: context.worktree)
        spec.name = "patina-\(plan.id)-shell"
        spec.labels["patina.role"] = "shell"
        spec.passEnvironment = plan.sandbox.trust.passedVariables
        spec.environment = context.extras.environment.merging(
            ["HOME": RunLayout.containerHome, "PATINA_RUN_ID": shell.runID, "PATINA_SHELL": "1"]) { $1 }
        spec.command = shell.command.isEmpty ? ["bash", "-l"] : shell.command
        let handshake = try context.sandbox.gate(&spec, role: "shell")
        var arguments = spec.runArguments
        arguments.insert(contentsOf: isatty(0) == 1 && shell.command.isEmpty ? ["--interactive", "--tty"] : ["--interactive"], at: 1)
        await control.containerStarted(spec.name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [engine.executable] + arguments
        try process.run()
        let watchdog = control.watchdog(deadline: nil)
        defer { watchdog.cancel() }
        let ended = EndFlag()
        let exited = Task<Int32, Never> {
            let status: Int32 = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    process.waitUntilExit()
                    continuation.resume(returning: process.terminationStatus)
                }
            }
            ended.set()
            return status
        }
        do {
            try await admit(handshake, sandbox: context.sandbox, ended: ended, container: spec.name) { started.set() }
        } catch {
            _ = await exited.value
            await control.containerFinished()
            throw error
        }
        let status = await exited.value
        await control.containerFinished()
        record.exitCode = Int(status)
        record.status = status == 0 ? .succeeded : .failed
    }

    /// Runs a container to its end, streaming its stdout lines; the watchdog asks
    /// for a stop at the deadline and repeats the kill until the container is gone
    /// (a kill sent before `docker run` has created it would miss it).
    /// The container proves the protections first (`StartedSandbox.gate`, ProbeGate): its command starts
    /// only once its probes passed, and `admitted` is called then.
    func runWatched(
        _ spec: ContainerSpec, role: String, sandbox: StartedSandbox, timeout: Double, admitted: @escaping @Sendable () -> Void = {},
        onLine: @escaping @Sendable (String) -> Void
    ) async throws -> (CommandResult, (exitCode: Int, oomKilled: Bool)?) {
        var spec = spec
        let handshake = try sandbox.gate(&spec, role: role)
        await control.containerStarted(spec.name)
        let timer = control.watchdog(deadline: Date().addingTimeInterval(timeout))
        defer { timer.cancel() }
        let ended = EndFlag()
        let arguments = [engine.executable] + spec.runArguments
        let environment = spec.passedValues
        let container = Task {
            defer { ended.set() }
            return try await Command.stream(arguments, environment: environment, onLine: onLine)
        }
        let result: CommandResult
        do {
            try await admit(handshake, sandbox: sandbox, ended: ended, container: spec.name, admitted: admitted)
            result = try await container.value
        } catch {
            let ended = try? await container.value
            await control.containerFinished()
            // docker itself could not start the container: its own words say why.
            if let ended, ended.exitCode == 125, error is SandboxFailure,
               let line = ended.standardError.split(separator: "\n").first {
                throw SandboxFailure("docker could not start the \(role) container: \(redactor(String(line)))")
            }
            throw error
        }
        await control.containerFinished()
        // How it ended, beyond the exit code, matters only when it failed (an OOM kill).
        return (result, result.exitCode == 0 ? (0, false) : await engine.exitState(spec.name))
    }

    /// Lets the gated container's command start once its probes passed. When they did not
    /// (or a stop was asked for meanwhile) the command never starts: the probe exits on
    /// patina's "stop", and the container is killed in case it does not.
    private func admit(_ handshake: ProbeHandshake, sandbox: StartedSandbox, ended: EndFlag, container: String, admitted: () -> Void) async throws {
        let started = Date()
        do {
            let took = try await sandbox.admit(handshake, containerEnded: { ended.value }, progress: progress)
            steps.record("probes", Date().timeIntervalSince(started),
                         "\(handshake.role) container started and proven" + (took.map { "; probe.sh \($0) ms" } ?? ""))
        } catch {
            if !ended.value { _ = await engine.kill(container) }
            if let reason = await control.reason { throw Stopped(reason: reason) }
            throw error
        }
        admitted()
    }
}
