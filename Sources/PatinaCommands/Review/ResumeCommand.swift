import ArgumentParser
import Foundation
import PatinaCore
import PatinaSandbox

/// `patina resume RUN "FOLLOW-UP"`: the same conversation, a new sandbox, the same branch.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Send the agent of a finished run back with a follow-up: it continues the same conversation on the same branch.",
        discussion: """
            A new run (with resumed_from) in a fresh sandbox with the earlier run's protections and \
            settings, unless flags change them; the agent sees the earlier conversation. Its commits land \
            on the run's branch, on top of where it is now.
            """
    )

    @Argument(help: "Run id (or a unique prefix of one), its branch, or `latest`.")
    var run: String

    @Argument(help: "What the agent should do next.")
    var followUp: String

    @Option(help: "Claude model to use (default: the earlier run's).")
    var model: String?

    @OptionGroup var flags: RunFlags

    func validate() throws {
        do { try flags.options(task: followUp, model: model).validateFlags() } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        let review = try Review.current()
        let record = try review.resolve(run)
        let engine = DockerEngine()
        let plan = try await review.planResume(record, flags: flags.options(task: followUp, model: model), engine: engine)
        try await SingleRun.execute(plan, engine: engine, quiet: flags.quiet, json: flags.json)
    }
}
