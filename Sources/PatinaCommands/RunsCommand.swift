import ArgumentParser
import Foundation
import PatinaCore

/// `patina runs`: this repository's runs, newest first.
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List this repository's runs, newest first."
    )

    @Flag(help: "Print a JSON array of run records.")
    var json = false

    func run() async throws {
        let records = try RunStore.forCurrentRepository().list()
        if json {
            let data = try RunRecord.encoder.encode(records)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        guard !records.isEmpty else {
            print("no runs yet in this repository; start one with: patina yolo \"TASK\"")
            return
        }
        print("STATUS     RUN                                              TIME     COST      CHANGES")
        for r in records { print(RunSummary.row(r)) }
    }
}
