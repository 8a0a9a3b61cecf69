import ArgumentParser
import Foundation
import PatinaCore

/// `patina compare RUN RUN... | --batch BATCH`: runs side by side.
struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare runs side by side: status, check, files, +/-, turns, cost, duration, and which files each touched."
    )

    @Argument(help: "Runs: ids (or unique prefixes), branches, or `latest`.")
    var runs: [String] = []

    @Option(help: "Compare every run of this batch (id, unique prefix, or `latest`).")
    var batch: String?

    @Option(help: "Also write a self-contained HTML page to this file.")
    var html: String?

    @Flag(help: "Print the comparison as JSON.")
    var json = false

    func validate() throws {
        if runs.isEmpty && batch == nil { throw ValidationError("name two or more runs, or --batch BATCH") }
        if !runs.isEmpty && batch != nil { throw ValidationError("give runs or --batch, not both") }
        if batch == nil && runs.count < 2 { throw ValidationError("compare needs at least two runs (or --batch BATCH)") }
    }

    func run() async throws {
        let review = try Review.current()
        var records: [RunRecord] = []
        var title = "Runs compared"
        if let batch {
            let found = try BatchStore(runs: review.store).resolve(batch)
            records = found.runs.compactMap { (try? review.store.load($0.id)) ?? $0 }
            title = "Batch \(found.id)"
            if records.isEmpty { throw ReviewError("batch \(found.id) has no runs yet") }
        } else {
            for query in runs {
                let record = try review.resolve(query)
                if !records.contains(where: { $0.id == record.id }) { records.append(record) }
            }
            if records.count < 2 { throw ReviewError("\(runs.joined(separator: " and ")) name the same run; compare needs two different runs") }
        }
        // Each run as its branch is now (what merge would take).
        let all = review.store.list()
        records = records.map { (try? review.current($0, all: all))?.record ?? $0 }
        let comparison = Comparison(records)
        if let html {
            do {
                try Data(comparison.html(title: title).utf8).write(to: URL(fileURLWithPath: html), options: .atomic)
            } catch {
                throw ReviewError("cannot write \(html): \(error.localizedDescription)")
            }
        }
        if json {
            struct Body: Encodable { var runs: [Comparison.Row]; var files: [Comparison.Touch] }
            try Output.json(Body(runs: comparison.rows, files: comparison.touches))
            return
        }
        // Every cell whole: each column as wide as its longest value.
        let table = [comparison.columns.map { $0.uppercased() }] + comparison.rows.map { comparison.cells($0).map { Terminal.line($0) } }
        for line in TextTable.lines(table) { say(line) }
        for note in comparison.notes { say("! \(Terminal.line(note))") }
        if !comparison.touches.isEmpty {
            say("")
            let labels = comparison.rows.map { comparison.label($0.id) }
            let width = max(6, (labels.map(\.count).max() ?? 0) + 2)
            say("FILES TOUCHED".padding(toLength: 40, withPad: " ", startingAt: 0) + labels.map { Output.column($0, width) }.joined())
            for touch in comparison.touches {
                let marks = comparison.rows.map { Output.column(touch.runs.contains($0.id) ? "●" : "·", width) }.joined()
                say(Output.column(Terminal.line(touch.path), 40) + marks + (touch.overlap ? "  overlap" : ""))
            }
        }
        if let html { say("\nwrote \(html)") }
    }
}
