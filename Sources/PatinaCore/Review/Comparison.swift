import Foundation

/// `patina compare`: runs side by side, and which files each touched.
public struct Comparison: Sendable {
    public struct Row: Sendable, Encodable {
        public var id: String
        public var status: String
        public var check: String
        public var files: Int
        public var additions: Int
        public var deletions: Int
        public var turns: Int?
        public var costUSD: Double?
        public var durationS: Double?
        public var model: String?
        public var historyRewritten: Bool

        enum CodingKeys: String, CodingKey {
            case id, status, check, files, additions, deletions, turns, model
            case historyRewritten = "history_rewritten"
            case costUSD = "cost_usd"
            case durationS = "duration_s"
        }
    }

    /// One changed path and the runs (by index into `rows`) that changed it.
    public struct Touch: Sendable, Encodable {
        public var path: String
        public var runs: [String]
        public var overlap: Bool { runs.count > 1 }

        enum CodingKeys: String, CodingKey { case path, runs, overlap }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(path, forKey: .path)
            try c.encode(runs, forKey: .runs)
            try c.encode(overlap, forKey: .overlap)
        }
    }

    public var rows: [Row]
    public var touches: [Touch]
    /// Each run by the shortest unique end of its id, the same in every part of the output.
    public let short: [String: String]
    /// True when the runs do not all use the same model: the table gets a MODEL column.
    public var modelsDiffer: Bool { Set(rows.map { $0.model ?? "default" }).count > 1 }
    /// "run ID: what its branch did to history", one per finding.
    public var notes: [String]

    public init(_ records: [RunRecord]) {
        rows = records.map { r in
            Row(id: r.id, status: r.status.rawValue, check: BatchReport.checkText(r), files: r.filesChanged.count,
                additions: r.additions, deletions: r.deletions, turns: r.numTurns, costUSD: r.costUSD,
                durationS: r.durationS, model: r.model, historyRewritten: r.history?.rewritten == true)
        }
        var byPath: [String: [String]] = [:]
        for r in records {
            for f in r.filesChanged { byPath[f.path, default: []].append(r.id) }
        }
        touches = byPath.keys.sorted().map { Touch(path: $0, runs: byPath[$0]!) }
        short = RunID.abbreviations(records.map(\.id))
        notes = records.flatMap { r in BatchReport.historyNotes(r).map { "run \(r.id): \($0)" } }
    }

    public func label(_ id: String) -> String { short[id] ?? id }

    public var columns: [String] {
        ["run"] + (modelsDiffer ? ["model"] : []) + ["status", "check", "files", "+", "−", "turns", "cost", "duration"]
    }

    public func cells(_ row: Row) -> [String] {
        [label(row.id)] + (modelsDiffer ? [row.model ?? "default"] : [])
            + [row.status, row.check, "\(row.files)", "+\(row.additions)", "-\(row.deletions)",
               row.turns.map(String.init) ?? "—", BatchReport.cost(row.costUSD), row.durationS.map { DurationParser.format($0) } ?? "—"]
    }

    /// A self-contained page (no scripts, no URLs): the table and the file matrix.
    public func html(title: String) -> String {
        let h = { (s: String) in Escaping.html(s) }
        let head = columns.map { "<th>\(h($0))</th>" }.joined()
        let body = rows.map { row in "<tr>" + cells(row).map { "<td>\(h($0))</td>" }.joined() + "</tr>" }.joined(separator: "\n")
        let runHeads = rows.map { "<th title=\"\(h($0.id))\">\(h(label($0.id)))</th>" }.joined()
        let matrix = touches.map { t in
            "<tr\(t.overlap ? " class=\"overlap\"" : "")><td>\(h(t.path))</td>" + rows.map { t.runs.contains($0.id) ? "<td>●</td>" : "<td></td>" }.joined() + "</tr>"
        }.joined(separator: "\n")
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
            <title>\(h(title))</title>
            <style>\(BatchReport.css) tr.overlap td { background: #fff3cd; }</style></head><body>
            <h1>\(h(title))</h1>
            <table><thead><tr>\(head)</tr></thead><tbody>
            \(body)
            </tbody></table>
            \(notes.map { "<p class=\"history\"><b>\(h($0))</b></p>" }.joined(separator: "\n"))
            <h2>Files touched</h2>
            <p>Highlighted: changed by more than one run.</p>
            <table><thead><tr><th>file</th>\(runHeads)</tr></thead><tbody>
            \(matrix)
            </tbody></table>
            </body></html>

            """
    }
}
