import Foundation

/// Paths of one run, on the host and inside the container.
public struct RunLayout: Sendable {
    public let runDirectory: URL

    public init(runDirectory: URL) {
        self.runDirectory = runDirectory
    }

    public var record: URL { runDirectory.appendingPathComponent("run.json") }
    public var stepLog: URL { runDirectory.appendingPathComponent("steps.log") }
    public var sessionLog: URL { runDirectory.appendingPathComponent("session.jsonl") }
    /// The human-readable session log, rendered from the others by `SessionMarkdown`.
    public var sessionMarkdown: URL { runDirectory.appendingPathComponent("session.md") }
    /// What the sandbox resolver logged, and the destinations the firewall rejected.
    public var resolverLog: URL { runDirectory.appendingPathComponent("resolver.log") }
    public var transcript: URL { runDirectory.appendingPathComponent("transcript.jsonl") }
    /// One line per request the run's model proxy answered: the source of cost and tokens.
    public var apiLog: URL { runDirectory.appendingPathComponent("api.jsonl") }
    public var agentStderr: URL { runDirectory.appendingPathComponent("agent-stderr.log") }
    /// Room held for patina's own records while the run is in flight (`DiskReserve`).
    public var diskReserve: URL { runDirectory.appendingPathComponent(".disk-reserve") }
    public var rendered: URL { runDirectory.appendingPathComponent("config") }
    public var dockerfile: URL { rendered.appendingPathComponent("Dockerfile") }
    public var devcontainer: URL { rendered.appendingPathComponent(".devcontainer/devcontainer.json") }
    public var claudeSettings: URL { rendered.appendingPathComponent("claude-settings.json") }
    public var seccompProfile: URL { rendered.appendingPathComponent("seccomp.json") }
    public var firewallDirectory: URL { rendered.appendingPathComponent("firewall") }
    public var firewallReport: URL { runDirectory.appendingPathComponent("firewall.txt") }
    /// The probes' report of the sandbox container that ran last before collection (the
    /// agent's, a shell's, the lifecycle commands'); the check's has its own.
    public var probeReport: URL { runDirectory.appendingPathComponent("probes.txt") }
    public var checkProbeReport: URL { runDirectory.appendingPathComponent("check-probes.txt") }
    public var probeScript: URL { rendered.appendingPathComponent("probe.sh") }
    public var commandLimits: URL { rendered.appendingPathComponent("command-limits.sh") }
    /// The devcontainer's lifecycle commands as the script that runs them.
    public var lifecycleScript: URL { rendered.appendingPathComponent("lifecycle.sh") }
    /// Mounted into the container: the agent's home, its private git
    /// directory, and the file that points /workspace/.git at it.
    public var sandbox: URL { runDirectory.appendingPathComponent("sandbox") }
    public var home: URL { sandbox.appendingPathComponent("home") }
    public var privateGit: URL { sandbox.appendingPathComponent("git") }
    public var gitFile: URL { sandbox.appendingPathComponent("gitfile") }
    /// The host's objects as they were when the run started (hard links), mounted read-only.
    public var hostObjectsSnapshot: URL { sandbox.appendingPathComponent("host-objects") }
    /// Each sandbox container's probe handshake (its report, patina's answer), by role.
    public var handshakes: URL { sandbox.appendingPathComponent("probes") }
    /// The network holder's reports to patina (mounted in the holder only).
    public var netguardState: URL { sandbox.appendingPathComponent("netguard") }
    /// The clean checkout of the collected head that the check runs on, and the check's home.
    public var checkWorkspace: URL { sandbox.appendingPathComponent("check-workspace") }
    public var checkHome: URL { sandbox.appendingPathComponent("check-home") }
    /// The check's own git directory (the collected head on the run's branch, the host's tags)
    /// and the host's objects as they are after collection (hard links), mounted read-only.
    public var checkGit: URL { sandbox.appendingPathComponent("check-git") }
    public var checkObjects: URL { sandbox.appendingPathComponent("check-objects") }
    public var checkLog: URL { runDirectory.appendingPathComponent("check.log") }
    /// The check's overlays of the warm caches (`CheckCaches`): what it wrote, removed after it.
    public var checkCaches: URL { sandbox.appendingPathComponent("check-caches") }
    /// The repository's tags as the agent's git directory got them at render (packed-refs
    /// lines), outside the sandbox's view: collection tells them from the agent's own.
    public var givenTags: URL { runDirectory.appendingPathComponent("given-tags") }
    /// Where the agent's view of its worktree is mounted when patina runs as root (an
    /// idmapped mount: the agent's uid sees root's files as its own). Beside the runs, in
    /// `views/`, never inside a directory patina removes recursively: removing the files
    /// under a mounted view would remove the worktree's.
    public var worktreeView: URL {
        runDirectory.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("views").appendingPathComponent(runDirectory.lastPathComponent)
    }
    /// What of the sandbox goes once the run is collected (the agent's home stays, for review).
    public var scratch: [URL] { [hostObjectsSnapshot, checkWorkspace, checkHome, checkGit, checkObjects, handshakes, netguardState] }

    /// The logs patina writes into the run directory (session.md aside, which is rendered
    /// redacted): swept for credential values once the run is collected.
    public var logs: [URL] {
        [sessionLog, transcript, agentStderr, stepLog, checkLog, resolverLog, firewallReport, probeReport, checkProbeReport, apiLog]
    }

    public static let workspace = "/workspace"
    public static let containerHome = "/home/agent"
    public static let containerGit = "/patina/git"
    public static let containerHostObjects = "/patina/host-objects"
    public static let containerFirewall = "/patina/firewall"
    public static let containerProbe = "/patina/probe.sh"
    public static let containerCommandLimits = "/patina/command-limits.sh"
    public static let containerLifecycle = "/patina/lifecycle.sh"
}
