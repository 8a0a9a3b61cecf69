import ArgumentParser
import Foundation
import PatinaCore
import PatinaSandbox

/// `patina yolo TASK`: one sandboxed Claude Code run.
struct YoloCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yolo",
        abstract: "Run Claude Code with --dangerously-skip-permissions in a locked-down container on a new branch.",
        discussion: """
            Creates branch patina/<run-id> and a worktree outside the repository, builds (or reuses) the \
            sandbox image, applies the egress firewall and seccomp profile, runs the agent, and collects \
            its commits, any uncommitted changes and the full session log. Exits 0 only when the run succeeded.
            """
    )

    @Argument(help: "What the agent should do.")
    var task: String

    @Option(help: "Start the branch at this commit, branch or tag (default: HEAD).")
    var base: String?

    @Option(name: .customLong("base-image"), help: "Image the sandbox is built from (default: debian:bookworm-slim).")
    var baseImage: String?

    @Option(name: .customLong("agent-binary"), help: "Copy this local Linux `claude` executable into the image instead of installing it from the network.")
    var agentBinary: String?

    @Option(help: "Claude model to use.")
    var model: String?

    @Option(name: .customLong("max-turns"), help: "Stop the agent after this many turns.")
    var maxTurns: Int?

    @Option(help: "Stop the agent after this long, e.g. 90s, 15m, 2h (default: 60m). The run is still collected.")
    var timeout: String?

    @Option(name: .customLong("allow"), help: "Allow egress to HOST[:PORT] (a name, *.suffix, IP or CIDR). Repeatable.")
    var allow: [String] = []

    @Option(name: .customLong("preset"), help: "Switch on a firewall preset from firewall/presets (e.g. github, pypi). Repeatable.")
    var presets: [String] = []

    @Flag(name: .customLong("no-firewall"), help: "Run without the egress firewall (recorded in the run record).")
    var noFirewall = false

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(help: "Print the run record as one JSON object on stdout at the end.")
    var json = false

    func validate() throws {
        do { try options.validateFlags() } catch { throw ValidationError("\(error)") }
    }

    var options: YoloOptions {
        var options = YoloOptions(task: task)
        options.base = base
        options.baseImage = baseImage
        options.agentBinary = agentBinary
        options.model = model
        options.maxTurns = maxTurns
        options.timeout = timeout
        options.allow = allow
        options.presets = presets
        options.noFirewall = noFirewall
        options.quiet = quiet
        options.json = json
        return options
    }

    func run() async throws {
        let progress = Progress(quiet: quiet)
        let engine = DockerEngine()
        let plan = try await Planner.plan(options, engine: engine)
        let control = RunControl(engine: engine)
        let interrupts = InterruptHandler(control: control, progress: progress)
        defer { interrupts.cancel() }
        let record = try await RunLifecycle(plan: plan, engine: engine, progress: progress, control: control).execute()
        if json {
            print(record.json())
        } else if !quiet {
            print(RunSummary.text(record))
        }
        if record.status != .succeeded { throw ExitCode(record.status == .error ? 2 : 1) }
    }
}
