import ArgumentParser
import Foundation
import PatinaCore

/// `patina discard RUN...`: drop runs' work, keep their records.
struct DiscardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discard",
        abstract: "Remove runs' branches, worktrees and session tags; keep their logs and records, marked discarded."
    )

    @Argument(help: "Runs: ids (or unique prefixes), branches, or `latest`.")
    var runs: [String]

    @Flag(help: "Print what was removed as JSON.")
    var json = false

    struct Removed: Encodable {
        var id: String
        var removed: [String]
        var alsoMarked: [String]
        enum CodingKeys: String, CodingKey { case id, removed; case alsoMarked = "also_marked" }
    }

    func run() async throws {
        let results = try Review.current().discard(runs)
        if json {
            try Output.json(results.map { Removed(id: $0.record.id, removed: $0.removed, alsoMarked: $0.alsoMarked) })
            return
        }
        for result in results {
            let what = result.removed.isEmpty ? "nothing left to remove" : "removed " + result.removed.joined(separator: ", ")
            say("discarded \(result.record.id): \(what); its record and logs stay in \(result.record.runDir)")
            for other in result.alsoMarked { say("  run \(other) worked on the same branch: marked discarded too") }
        }
    }
}
