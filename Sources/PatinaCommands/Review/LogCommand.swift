import ArgumentParser
import Foundation
import PatinaCore

/// `patina log RUN`: the run's session log (session.md), its raw stream, or the
/// stream of a run still in flight as it happens.
struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Show a run's session log (session.md); --raw for Claude Code's stream (session.jsonl)."
    )

    @Argument(help: "Run id (or a unique prefix of one), its branch, or `latest`.")
    var run: String

    @Flag(help: "Print session.jsonl, every line Claude Code printed, unchanged.")
    var raw = false

    @Flag(help: "On a run in flight: print its activity as it happens, until it ends.")
    var follow = false

    func run() async throws {
        let review = try Review.current()
        let record = try review.resolve(run)
        let layout = review.layout(record)
        if follow && RunLiveness.inFlight(record) {
            try await followStream(layout.sessionLog, record: record, review: review)
            return
        }
        if raw {
            guard let data = FileManager.default.contents(atPath: layout.sessionLog.path) else {
                throw ReviewError("run \(record.id) has no session.jsonl (the agent never started)")
            }
            StandardOutput.write(data)
            return
        }
        guard let text = try? String(contentsOf: layout.sessionMarkdown, encoding: .utf8) else {
            throw ReviewError(RunLiveness.inFlight(record)
                ? "run \(record.id) is still running: its session log is written when it ends; `patina log --follow \(record.id)` shows it live"
                : "run \(record.id) has no session.md (recorded before patina wrote one); `patina log --raw \(record.id)` prints its stream")
        }
        Output.page(Terminal.inert(text))
    }

    /// Reads new lines as they are appended until the run's patina process finishes it.
    private func followStream(_ url: URL, record: RunRecord, review: Review) async throws {
        var offset: UInt64 = 0
        var pending = Data()
        while true {
            let settled = !RunLiveness.inFlight((try? review.store.load(record.id)) ?? record)
            if let handle = try? FileHandle(forReadingFrom: url) {
                try? handle.seek(toOffset: offset)
                let data = handle.readDataToEndOfFile()
                try? handle.close()
                offset += UInt64(data.count)
                pending.append(data)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    if raw { say(Terminal.inert(line)) } else { for text in LiveLine.describe(line) { say(Terminal.line(text)) } }
                }
            }
            if settled { break }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        let final = (try? review.store.load(record.id)) ?? record
        if !raw { say("run \(final.id) ended: \(final.status.rawValue)" + (final.reason.map { " (\(Terminal.line($0)))" } ?? "")) }
    }
}

/// One stream-json line as the short lines `log --follow` prints.
enum LiveLine {
    static func describe(_ line: String) -> [String] {
        StreamEvent.parse(line).compactMap { event in
            switch event {
            case .initialized(_, let model, _): return "agent started" + (model.map { " (\($0))" } ?? "")
            case .assistantText(let text): return "says: \(StreamEvent.oneLine(text, limit: 200))"
            case .toolUse(_, let name, let summary): return "\(name)" + (summary.isEmpty ? "" : ": \(summary)")
            case .toolResult(_, let isError, let text) where isError: return "  ↳ error: \(StreamEvent.oneLine(text, limit: 160))"
            case .result(let summary): return "result: \(summary.subtype)" + (summary.numTurns.map { ", \($0) turns" } ?? "")
            case .apiRetry(let status): return "model API answered \(status.map(String.init) ?? "an error"); Claude Code retries"
            default: return nil
            }
        }
    }
}
