import Foundation
import PatinaGit
import PatinaSandbox

/// Step "check": the user's command (`--check CMD`) in a fresh sandbox container
/// from the same image, with the same protections and firewall, on a clean
/// checkout of the collected head — not the agent's worktree, so nothing the
/// agent left running or wrote outside git counts. Never holds a credential.
extension RunLifecycle {
    func runCheck(_ command: String, image: String, head: ObjectID) async -> CheckResult {
        let start = Date()
        func failed(_ why: String) -> CheckResult {
            CheckResult(command: command, exitCode: nil, passed: false,
                        durationS: Date().timeIntervalSince(start), outputTail: "", error: why)
        }
        // The agent's timeout does not stop the check; a user's stop does.
        await control.resetAgentStop()
        if await control.reason == .interrupted { return failed("not run: the run was interrupted") }
        let fm = FileManager.default
        do {
            try? fm.removeItem(at: layout.checkWorkspace)
            try? fm.removeItem(at: layout.checkHome)
            try plan.repository.exportTree(of: head, to: layout.checkWorkspace)
            try fm.createDirectory(at: layout.checkHome, withIntermediateDirectories: true)
            if getuid() == 0 {
                Ownership.change(layout.checkWorkspace, uid: plan.agentUID, gid: plan.agentGID)
                Ownership.change(layout.checkHome, uid: plan.agentUID, gid: plan.agentGID)
            }
        } catch {
            return failed("could not check out \(head.short) for the check: \(error)")
        }
        progress.step("check: \(command)")
        var spec = AgentSandbox.spec(plan: plan, layout: layout, image: image, network: protections.agentNetwork, labels: containerLabels)
        spec.name = "patina-\(plan.id)-check"
        spec.labels["patina.role"] = "check"
        spec.mounts = [
            Mount(source: layout.checkWorkspace.path, target: RunLayout.workspace, readOnly: false),
            Mount(source: layout.checkHome.path, target: RunLayout.containerHome, readOnly: false),
        ]
        // No credential, and no warm cache: what the agent left in a cache must not decide
        // whether the check passes. The proxy, when there is one, is the way out.
        spec.passEnvironment = plan.sandbox.trust.passedVariables
        spec.environment = ["HOME": RunLayout.containerHome, "PATINA_RUN_ID": plan.id, "PATINA_CHECK": "1"]
        let timeout = plan.checkTimeoutSeconds
        spec.command = ["timeout", "--signal=KILL", String(Int(timeout) + 30), "bash", "-c", "exec 2>&1\n" + command]

        _ = fm.createFile(atPath: layout.checkLog.path, contents: nil)
        let log = try? FileHandle(forWritingTo: layout.checkLog)
        defer { try? log?.close() }
        let tail = LineTail(limit: 40)
        let result: CommandResult
        let state: (exitCode: Int, oomKilled: Bool)?
        do {
            let redactor = self.redactor
            (result, state) = try await runWatched(spec, role: "check", timeout: timeout) { raw in
                let line = redactor(raw)
                try? log?.write(contentsOf: Data((line + "\n").utf8))
                tail.append(line)
            }
        } catch {
            return failed("the check's container could not run: \(error)")
        }
        if !result.standardError.isEmpty {
            let errors = redactor(result.standardError)
            try? log?.write(contentsOf: Data(errors.utf8))
            for line in errors.split(separator: "\n") { tail.append(String(line)) }
        }
        let stopped = await control.reason
        let exitCode = state?.exitCode ?? Int(result.exitCode)
        let timedOut = stopped == .timeout
        let passed = exitCode == 0 && stopped == nil
        let duration = (Date().timeIntervalSince(start) * 1000).rounded() / 1000
        progress.step("check \(passed ? "passed" : "FAILED") (exit \(exitCode)\(timedOut ? ", timed out" : ""), \(DurationParser.format(duration)))")
        return CheckResult(
            command: command, exitCode: exitCode, passed: passed, durationS: duration, outputTail: tail.text,
            timedOut: timedOut,
            error: timedOut ? "stopped after the \(DurationParser.format(timeout)) check timeout"
                : stopped == .interrupted ? "interrupted" : nil)
    }
}

/// The last lines of an output, kept while it streams.
final class LineTail: @unchecked Sendable {
    // @unchecked: appended to from one stream reader at a time, read after it ends; the lock covers both.
    private var lines: [String] = []
    private let limit: Int
    private let lock = NSLock()

    init(limit: Int) { self.limit = limit }

    func append(_ line: String) {
        lock.withLock {
            lines.append(String(line.prefix(500)))
            if lines.count > limit { lines.removeFirst(lines.count - limit) }
        }
    }

    var text: String { lock.withLock { lines.joined(separator: "\n") } }
}
