import ArgumentParser
import Foundation
import PatinaCore
import PatinaSandbox

/// `patina shell RUN [-- CMD...]`: the agent's sandbox, for a person.
struct ShellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "Open a shell (or run one command) in a sandbox like the run's agent had, on its worktree.",
        discussion: """
            Same image, seccomp profile, capabilities, limits and egress firewall as the agent; no \
            credential. Commits made in the shell land on the run's branch; other changes stay in the \
            worktree. With `-- CMD...`, exits with CMD's exit code.
            """
    )

    @Argument(help: "Run id (or a unique prefix of one), its branch, or `latest`.")
    var run: String

    @Argument(parsing: .postTerminator, help: "A command to run instead of a shell (after `--`).")
    var command: [String] = []

    func run() async throws {
        let review = try Review.current()
        let record = try review.resolve(run)
        let engine = DockerEngine()
        let plan = try await review.planShell(record, command: command, engine: engine)
        let control = RunControl(engine: engine)
        let renderer = SingleRunRenderer(quiet: false)
        // Ctrl-C belongs to what runs in the shell (patina ignores it); SIGTERM/SIGHUP stop it.
        signal(SIGINT, SIG_IGN)
        let interrupts = InterruptHandler(signals: [SIGTERM, SIGHUP]) { _ in
            Task { await control.stop(.interrupted) }
        }
        defer { interrupts.cancel() }
        let progress = Progress(runID: plan.id, handler: { envelope in
            switch envelope.event {
            case .warning, .note: renderer.handle(envelope)
            default: break
            }
        })
        let result = await RunLifecycle(plan: plan, engine: engine, progress: progress, control: control).execute()
        if result.createdNothing || result.exitCode == nil {
            throw PatinaError(result.failure?.kind ?? .environment, "the shell's sandbox could not start: \(result.reason ?? "unknown reason")",
                              cause: result.failure)
        }
        if let code = result.exitCode, code != 0 { throw ExitCode(Int32(code)) }
    }
}
