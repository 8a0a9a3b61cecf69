import Foundation
import PatinaSandbox
import PatinaTemplates

/// What a run adds to its containers beyond the plan: the warm caches it holds.
public struct SandboxExtras: Sendable, Equatable {
    public var mounts: [Mount] = []
    public var environment: [String: String] = [:]

    public init(mounts: [Mount] = [], environment: [String: String] = [:]) {
        self.mounts = mounts
        self.environment = environment
    }

    /// The warm caches' mounts and environment (none without a lease).
    /// And Claude Code's volume (ClaudeVolume), when the image takes its binary from one.
    init(_ caches: CacheLease?, claudeVolume: String? = nil) {
        self.init(mounts: (caches?.mounts ?? []) + (claudeVolume.map { [ClaudeVolume.mount($0)] } ?? []),
                  environment: caches?.environment ?? [:])
    }
}

/// The agent's container as a value: no capabilities, no new privileges, the
/// seccomp profile, read-only root, limits, non-root; only the run's own paths
/// mounted. The probe and check containers start from this same spec.
public enum AgentSandbox {
    /// `model`: the run's model proxy; nil for containers that never talk to the model.
    /// `worktree`: what is mounted at /workspace (the run's idmapped view of its worktree
    /// when there is one; the worktree itself by default).
    public static func spec(
        plan: RunPlan, layout: RunLayout, image: String, network: String?, labels: [String: String],
        extras: SandboxExtras = SandboxExtras(), model: ModelAccess? = nil, worktree: URL? = nil
    ) -> ContainerSpec {
        var spec = ContainerSpec(name: "patina-\(plan.id)-agent", image: image)
        spec.labels = labels.merging(["patina.role": "agent"]) { $1 }
        spec.user = "\(plan.agentUID):\(plan.agentGID)"
        spec.workingDirectory = RunLayout.workspace
        spec.network = network
        spec.capDrop = ["ALL"]
        spec.capAdd = plan.capAdd
        spec.securityOptions = ["no-new-privileges", "seccomp=\(layout.seccompProfile.path)"]
        spec.readOnlyRoot = true
        // `exec` spelled out: Docker's --tmpfs is noexec unless told, and toolchains run what
        // they build there (go test's binaries, a venv's pip, pytest's tmp_path scripts). The
        // agent can write executables in its worktree anyway; nosuid and nodev stay.
        spec.tmpfs = ["/tmp:rw,exec,nosuid,nodev,size=\(plan.limits.tmp)"]
        spec.mounts = [
            Mount(source: (worktree ?? plan.worktree).path, target: RunLayout.workspace, readOnly: false),
            Mount(source: layout.gitFile.path, target: RunLayout.workspace + "/.git", readOnly: true),
            Mount(source: layout.privateGit.path, target: RunLayout.containerGit, readOnly: false),
            Mount(source: layout.hostObjectsSnapshot.path, target: RunLayout.containerHostObjects, readOnly: true),
            Mount(source: layout.home.path, target: RunLayout.containerHome, readOnly: false),
            Mount(source: layout.commandLimits.path, target: RunLayout.containerCommandLimits, readOnly: true),
        ] + extras.mounts
        spec.environment = extras.environment.merging([
            "HOME": RunLayout.containerHome,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "PATINA_RUN_ID": plan.id,
            // Every command the agent runs gets lower limits than Claude Code itself.
            "CLAUDE_CODE_SHELL_PREFIX": RunLayout.containerCommandLimits,
            "PATINA_COMMAND_PROCS": String(plan.limits.commandProcesses),
        ]) { $1 }
        if let retries = plan.claudeMaxRetries { spec.environment["CLAUDE_CODE_MAX_RETRIES"] = String(retries) }
        // Proxy variables by name too: a proxy URL may hold a password.
        spec.passEnvironment = plan.credentials.passThrough + plan.sandbox.trust.passedVariables
        if let model {
            // The placeholder goes by name too: on a command line, any local user could read it
            // and spend through the proxy while the run lasts.
            spec.environment["ANTHROPIC_BASE_URL"] = model.baseURL
            spec.passEnvironment.append(model.variable)
            spec.passedValues[model.variable] = model.placeholder
        }
        spec.pidsLimit = plan.limits.pids
        spec.memory = plan.limits.memory
        spec.cpus = plan.limits.cpus
        spec.initProcess = true
        var command = ["claude", "-p", "--dangerously-skip-permissions", "--output-format", "stream-json", "--verbose"]
        if let model = plan.model { command += ["--model", model] }
        if let turns = plan.maxTurns { command += ["--max-turns", String(turns)] }
        if let resume = plan.resume { command += ["--resume", resume.sessionID] }
        // The task after `--`: a task starting with "-" is a task, not a flag.
        command += ["--", plan.task]
        // A second layer behind patina's own watchdog: the agent cannot outlive its
        // timeout by much even if patina itself is killed.
        spec.command = ["timeout", "--signal=KILL", String(Int(plan.timeoutSeconds) + 30)] + command
        return spec
    }

    /// Where a Python toolchain's virtualenv lives: in the container's home, so the agent's
    /// stays for the run and the check gets a fresh one.
    public static let virtualenv = RunLayout.containerHome + "/.venv"

    /// `command` in the toolchains' environment, as a dev container has it. For Python (when
    /// the image has python3 and no virtualenv of its own): an activated virtualenv
    /// (`VIRTUAL_ENV`, `PATH`) made at start if missing — without pip of its own but seeing the
    /// system's, through `pip`/`pip3` wrappers — so `pip install -e .`, `python3 -m pip` and
    /// `pytest` work where Debian's interpreter refuses (PEP 668); pip and uv install into it.
    public static func toolchainEnvironment(_ command: [String], plan: RunPlan) -> [String] {
        guard plan.sandbox.toolchains.contains(where: { $0.name == "python" }), !command.isEmpty else { return command }
        return ["/bin/sh", "-c", pythonEnvironmentScript, "patina-python-env"] + command
    }

    static let pythonEnvironmentScript = """
        if [ -z "${VIRTUAL_ENV:-}" ] && command -v python3 >/dev/null 2>&1; then
          venv=\(virtualenv)
          if [ ! -x "$venv/bin/python" ] && python3 -m venv --without-pip --system-site-packages "$venv" >/dev/null 2>&1; then
            for name in pip pip3; do
              printf '#!/bin/sh\nexec "%s/bin/python" -m pip "$@"\n' "$venv" > "$venv/bin/$name" && chmod 0755 "$venv/bin/$name"
            done
          fi
          if [ -x "$venv/bin/python" ]; then
            export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
            # A login shell (`patina shell`) resets PATH in /etc/profile: put the venv back after it.
            [ -e "$HOME/.profile" ] || printf '[ -n "${VIRTUAL_ENV:-}" ] && PATH="$VIRTUAL_ENV/bin:$PATH"\n' > "$HOME/.profile" 2>/dev/null
          fi
        fi
        exec "$@"
        """

    public static func devcontainerJSON(_ spec: ContainerSpec, plan: RunPlan) throws -> String {
        func json(_ value: Any) -> String {
            let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
            return String(decoding: data, as: UTF8.self)
        }
        let workspace = spec.mounts.first { $0.target == RunLayout.workspace }!
        let others = spec.mounts.filter { $0.target != RunLayout.workspace }.map(\.argument)
        // The credential is never referenced: the run's placeholder is dead once the run
        // ended, and the real one must not reach a container started from this file.
        var remoteEnv: [String: String] = [:]
        for name in spec.passEnvironment where spec.passedValues[name] == nil && !Credentials.secretNames.contains(name) {
            remoteEnv[name] = "${localEnv:\(name)}"
        }
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
}
