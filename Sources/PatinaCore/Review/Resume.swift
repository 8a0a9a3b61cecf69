import Foundation
import PatinaGit
import PatinaSandbox

extension Review {
    /// A sandbox like `record`'s agent had — same image, protections and firewall —
    /// on its worktree, running `command` (a shell when empty). Creates nothing.
    public func planShell(
        _ record: RunRecord, command: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        engine: DockerEngine = DockerEngine()
    ) async throws -> RunPlan {
        let tip = try requireWorktree(record, for: "a shell")
        var options = settings(of: record)
        options.task = "shell in run \(record.id)"
        options.base = tip.hex
        options.check = nil
        var env = environment
        // No credential enters a shell; planning still asks for one to exist.
        if !Credentials.secretNames.contains(where: { !(env[$0] ?? "").isEmpty }) { env["ANTHROPIC_API_KEY"] = "unused-in-a-shell" }
        var plan = try await Planner.plan(
            options, directory: repository.workingDirectory ?? URL(fileURLWithPath: record.repository),
            environment: env, engine: engine)
        plan.branch = record.branch
        plan.worktree = URL(fileURLWithPath: record.worktree)
        plan.shell = ShellRequest(command: command, runID: record.id)
        // A shell keeps no record: its scratch directory is not among the runs.
        plan.runDirectory = store.shellDirectory(plan.id)
        return plan
    }

    /// The run's branch tip, once the run is settled and its branch and worktree exist.
    func requireWorktree(_ record: RunRecord, for what: String) throws -> ObjectID {
        try requireSettled(record, to: what == "a shell" ? "open a shell in" : "resume")
        if record.discarded != nil {
            throw ReviewError("run \(record.id) was discarded (its branch and worktree are gone); start a new run instead")
        }
        guard let tip = try repository.branchTip(record.branch) else {
            throw ReviewError("branch \(record.branch) of run \(record.id) is gone; no \(what) for it")
        }
        guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: record.worktree).appendingPathComponent(".git").path) else {
            throw ReviewError("the worktree of run \(record.id) is gone (\(record.worktree)); no \(what) for it")
        }
        return tip
    }

    /// The options the run was started with (rebuilt from the record for older records).
    func settings(of record: RunRecord) -> YoloOptions {
        if let options = record.options { return options }
        var options = YoloOptions(task: record.task)
        options.model = record.model
        options.maxTurns = record.maxTurns
        options.noFirewall = !record.firewall
        options.check = record.check?.command
        return options
    }

    /// A run that continues `record`'s Claude Code conversation with `followUp`, in a
    /// new sandbox on the same branch and worktree, with the earlier run's settings
    /// unless `flags` change them. Creates nothing.
    public func planResume(
        _ record: RunRecord, flags: YoloOptions,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        engine: DockerEngine = DockerEngine()
    ) async throws -> RunPlan {
        let tip = try requireWorktree(record, for: "resume")
        guard let sessionID = record.claudeSessionID, let transcript = record.transcript,
              FileManager.default.fileExists(atPath: transcript) else {
            throw ReviewError("run \(record.id) has no Claude Code conversation to continue (the agent never started or left no transcript)")
        }
        if flags.base != nil {
            throw ReviewError("--base does not apply to resume: the run continues on \(record.branch)")
        }
        let base = settings(of: record)
        var options = base.overridden(by: flags)
        options.base = tip.hex
        var plan = try await Planner.plan(
            options, directory: repository.workingDirectory ?? URL(fileURLWithPath: record.repository),
            environment: environment, engine: engine)
        plan.branch = record.branch
        plan.worktree = URL(fileURLWithPath: record.worktree)
        plan.resume = ResumeSource(runID: record.id, sessionID: sessionID, transcript: URL(fileURLWithPath: transcript))
        return plan
    }
}
