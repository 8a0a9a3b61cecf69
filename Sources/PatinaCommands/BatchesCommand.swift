import ArgumentParser
import Foundation
import PatinaCore

/// `patina batches`: this repository's batches, newest first.
struct BatchesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batches",
        abstract: "List this repository's batches, newest first."
    )

    @Flag(help: "Print a JSON array of batch records.")
    var json = false

    func run() async throws {
        let batches = BatchStore(runs: try RunStore.forCurrentRepository()).list()
        if json {
            printJSON(String(decoding: try RunRecord.encoder.encode(batches), as: UTF8.self))
            return
        }
        guard !batches.isEmpty else {
            say("no batches yet in this repository; start one with: patina batch FILE")
            return
        }
        say("STATUS       BATCH                                            RUNS  PASSED  COST      TIME")
        for b in batches {
            let passed = b.runs.filter { $0.status == .succeeded && $0.check?.passed != false }.count
            let cost = b.runs.compactMap(\.costUSD).reduce(0, +)
            say([
                b.status.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0),
                b.id.padding(toLength: 48, withPad: " ", startingAt: 0),
                "\(b.runs.count)/\(b.inputs.items.count)".padding(toLength: 5, withPad: " ", startingAt: 0),
                "\(passed)".padding(toLength: 7, withPad: " ", startingAt: 0),
                RunSummary.cost(cost).padding(toLength: 9, withPad: " ", startingAt: 0),
                b.durationS.map { DurationParser.format($0) } ?? "—",
            ].joined(separator: " "))
        }
    }
}
