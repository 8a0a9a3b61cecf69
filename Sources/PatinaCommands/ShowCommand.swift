import ArgumentParser
import Foundation
import PatinaCore

/// `patina show RUN`: one run, with its diffstat and protection reports.
struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one run: status, branch, cost, files changed, firewall and probes."
    )

    @Argument(help: "Run id (a unique prefix or part of it works), its branch, or `latest`.")
    var run: String

    @Flag(help: "Print the run record as JSON.")
    var json = false

    func run() async throws {
        let review = try Review.current()
        let stored = try review.resolve(run)
        if json {
            printJSON(stored.json())
            return
        }
        // The branch as it is now, which is what merge takes.
        let now = try? review.current(stored)
        let record = now?.record ?? stored
        say(RunSummary.text(record))
        if let moved = now?.moved { say("  moved:     \(moved)") }
        let layout = RunLayout(runDirectory: URL(fileURLWithPath: record.runDir))
        for (title, url) in [("firewall", layout.firewallReport), ("probes", layout.probeReport)] {
            if let text = try? String(contentsOf: url, encoding: .utf8) {
                say("  \(title):")
                for line in ProtectionReport.summary(text) { say("    \(line)") }
            }
        }
        let steps = record.steps.map { String(format: "%@ %.2fs", $0.name, $0.seconds) }.joined(separator: ", ")
        if !steps.isEmpty { say("  steps:     \(steps)") }
    }
}
