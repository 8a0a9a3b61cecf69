// Over 450 lines on purpose: the three renderers (markdown, HTML, terminal) share the best-run choice and the escaping rules; together they are checked side by side.
import Foundation
import PatinaModelProxy

/// Reports over a batch: the best run of each task, and the batch as markdown, a
/// self-contained HTML page and a terminal table. Task, name, model, reason, check
/// output, diffs and above all `lastMessage` (written by the agent) are data: each
/// renderer escapes them for its format and shows control characters as text.
public enum BatchReport {
    // MARK: Best run

    /// The best run of each task (see `better`). Only a run that succeeded or passed its
    /// check can be best, so a task where every run failed has none.
    public static func bestRunIDs(_ batch: BatchRecord) -> Set<String> {
        Set(groups(batch).compactMap { $0.runs.filter(eligible).min(by: better)?.id })
    }

    /// Passed its check; a run without a check counts as passed when it succeeded.
    static func passed(_ r: RunRecord) -> Bool { r.check?.passed ?? (r.status == .succeeded) }
    /// A run that rewrote the history it started from is never the best one.
    static func eligible(_ r: RunRecord) -> Bool {
        (r.status == .succeeded || r.check?.passed == true) && r.history?.rewritten != true
    }

    /// What a run's branch did to history, one line each (empty when nothing was found).
    public static func historyNotes(_ r: RunRecord) -> [String] {
        guard let history = r.history else { return [] }
        return (history.rewritten ? ["HISTORY REWRITTEN: the run " + history.rewrittenLine] : [])
            + (history.backdatedLine.map { [$0] } ?? [])
            + (history.refsLine.map { [$0] } ?? [])
    }

    /// `a` ranks before `b`: a run that did not succeed never beats one that did; then a passed
    /// check, fewer changed lines, lower cost (unknown cost last), and the id so ties are stable.
    static func better(_ a: RunRecord, _ b: RunRecord) -> Bool {
        let (sa, sb) = (a.status == .succeeded, b.status == .succeeded)
        if sa != sb { return sa }
        if passed(a) != passed(b) { return passed(a) }
        let (la, lb) = (a.additions + a.deletions, b.additions + b.deletions)
        if la != lb { return la < lb }
        let (ca, cb) = (a.costUSD ?? .infinity, b.costUSD ?? .infinity)
        if ca != cb { return ca < cb }
        return a.id < b.id
    }

    struct Group { var label: String; var runs: [RunRecord] }

    /// Runs by task, in input order: by the planned item's `taskIndex` (shared by a task's
    /// attempts and models, and by earlier runs of the item), else by the run's task text.
    static func groups(_ batch: BatchRecord) -> [Group] {
        var itemOf: [String: BatchItem] = [:]
        for item in batch.inputs.items {
            for id in item.previousRuns + [item.runID].compactMap({ $0 }) { itemOf[id] = item }
        }
        var groups: [Group] = [], index: [String: Int] = [:]
        for run in batch.runs {
            let item = itemOf[run.id]
            let key = item.map { "#\($0.taskIndex)" } ?? "=" + run.task
            if index[key] == nil {
                index[key] = groups.count
                let label = item?.label ?? run.name ?? String(run.task.split(separator: "\n").first ?? "")
                groups.append(Group(label: label.isEmpty ? "(no task)" : label, runs: []))
            }
            groups[index[key]!].runs.append(run)
        }
        return groups
    }

    // MARK: Shared cells

    static let columns = ["Task", "Att", "Model", "Status", "Check", "Files", "+/−", "Commits", "Turns", "Tokens", "Cost", "Duration"]

    /// One run's cells, unescaped, with a number to sort by where the column is numeric.
    static func cells(_ r: RunRecord) -> [(text: String, value: Double?)] {
        let tokens = r.tokens.map { $0.input + $0.output }
        return [
            (Escaping.clip(r.name ?? r.task, 120), nil),
            (r.attempt.map(String.init) ?? "—", r.attempt.map(Double.init)),
            (r.model ?? "default", nil),
            (r.status.rawValue, nil),
            (checkText(r), nil),
            ("\(r.filesChanged.count)", Double(r.filesChanged.count)),
            ("+\(r.additions) −\(r.deletions)", Double(r.additions + r.deletions)),
            (r.commits.map(String.init) ?? "—", r.commits.map(Double.init)),
            (r.numTurns.map(String.init) ?? "—", r.numTurns.map(Double.init)),
            (tokens.map(String.init) ?? "—", tokens.map(Double.init)),
            (cost(r.costUSD), r.costUSD),
            (r.durationS.map { DurationParser.format($0) } ?? "—", r.durationS),
        ]
    }

    public static func checkText(_ r: RunRecord) -> String {
        guard let check = r.check else { return "—" }
        guard let rounds = r.rounds, r.options?.rounds ?? 1 > 1 || rounds.count > 1 else { return check.passed ? "passed" : "failed" }
        if let round = r.passedAtRound { return "passed r\(round)" }
        return "failed r\(rounds.count)"
    }
    public static func cost(_ value: Double?) -> String { value.map { String(format: "$%.4f", $0) } ?? "—" }
    /// The batch's runs by the shortest unique end of their ids (the same in every table of one report).
    public static func shortIDs(_ batch: BatchRecord) -> [String: String] {
        RunID.abbreviations(batch.runs.map(\.id), among: batch.replacedRuns.map(\.id))
    }

    static func wallTime(_ b: BatchRecord) -> String {
        (b.durationS ?? b.finished.map { $0.timeIntervalSince(b.started) }).map { DurationParser.format($0) } ?? "—"
    }

    /// Totals, unescaped: runs, succeeded, pass rate per model (see `passed`), spend, wall time.
    static func totals(_ batch: BatchRecord) -> [String] {
        var models: [String] = [], rate: [String: (passed: Int, runs: Int)] = [:]
        for r in batch.runs {
            let model = r.model ?? "default"
            if rate[model] == nil { models.append(model) }
            rate[model, default: (0, 0)].runs += 1
            if passed(r) { rate[model, default: (0, 0)].passed += 1 }
        }
        let rates = models.map { m in
            let x = rate[m] ?? (0, 0)
            return "\(m) \(x.passed)/\(x.runs) (\(x.runs == 0 ? 0 : Int((Double(x.passed) * 100 / Double(x.runs)).rounded()))%)"
        }
        let checked = batch.runs.contains { $0.check != nil || $0.options?.check != nil }
        let unstarted = batch.unstartedItems.count
        let replaced = batch.replacedRuns.count
        var spend = "total spend: " + (batch.costUSD.map { cost($0) } ?? "unknown (a run's model had no price)")
        if replaced > 0 {
            let runs = replaced == 1 ? "run" : "runs"
            spend += " (\(cost(batch.replacedCostUSD)) of it by \(replaced) replaced \(runs))"
        }
        if let budget = batch.maxTotalCostUSD { spend += " of a " + Money.format(budget) + " budget" }
        let runs = "runs: \(batch.runs.count)" + (unstarted > 0 ? " (\(unstarted) not started)" : "")
        return [
            runs,
            "succeeded: \(batch.runs.filter { $0.status == .succeeded }.count)"
                + { n in n > 0 ? " (check failed: \(n))" : "" }(batch.runs.filter { $0.status == .checkFailed }.count),
            checked ? "check pass rate: " + (rates.isEmpty ? "—" : rates.joined(separator: ", ")) : "check pass rate: no check",
        ] + roundTotals(batch, models: models) + [
            spend,
            "wall time: " + wallTime(batch),
        ]
    }

    /// With rounds, per model: the pass rate after round 1 (pass@1) beside the one after all
    /// rounds, and the mean number of rounds the passing runs took.
    static func roundTotals(_ batch: BatchRecord, models: [String]) -> [String] {
        guard batch.runs.contains(where: { ($0.rounds?.count ?? 0) > 1 || ($0.options?.rounds ?? 1) > 1 }) else { return [] }
        return models.map { model in
            let runs = batch.runs.filter { ($0.model ?? "default") == model }
            let first = runs.filter(passedAtFirstRound).count
            let all = runs.filter(passed).count
            let rounds = runs.compactMap { $0.passedAtRound ?? (passed($0) && $0.rounds == nil ? 1 : nil) }
            let mean = rounds.isEmpty ? "—" : String(format: "%.1f", Double(rounds.reduce(0, +)) / Double(rounds.count))
            let passing = runs.filter(passed)
            let costs = passing.compactMap(\.costUSD)
            let perPass = costs.isEmpty || costs.count < passing.count ? "—" : cost(costs.reduce(0, +) / Double(costs.count))
            return "rounds, \(model): pass@1 \(first)/\(runs.count) (\(percent(first, runs.count))), after all rounds \(all)/\(runs.count) (\(percent(all, runs.count))), mean rounds to pass \(mean), cost per passing run \(perPass)"
        }
    }

    static func passedAtFirstRound(_ r: RunRecord) -> Bool {
        guard let first = r.rounds?.first else { return passed(r) }
        return first.check?.passed == true
    }

    static func percent(_ n: Int, _ of: Int) -> String {
        "\(of == 0 ? 0 : Int((Double(n) * 100 / Double(of)).rounded()))%"
    }

    // MARK: Markdown

    public static func markdown(_ batch: BatchRecord) -> String {
        let best = bestRunIDs(batch)
        let short = shortIDs(batch)
        var out = [
            "# Batch \(Escaping.markdown(batch.id))", "",
            "Status: **\(batch.status.rawValue)** · started \(batch.started.formatted(.iso8601)) · wall time \(wallTime(batch)) · jobs \(batch.jobs)",
        ]
        for group in groups(batch) {
            out += ["", "## \(Escaping.markdown(group.label))", "", "| " + columns.joined(separator: " | ") + " |",
                    "|" + String(repeating: "---|", count: columns.count)]
            for r in group.runs {
                var c = cells(r).map { Escaping.markdown($0.text) }
                if best.contains(r.id) { c[0] += " ★ best" }
                out.append("| " + c.joined(separator: " | ") + " |")
            }
            // Why each run ended and what its agent said last, clipped to one escaped line.
            let notes = group.runs.filter { $0.reason != nil || $0.lastMessage != nil || $0.history != nil || $0.rounds != nil || !$0.diskNotes.isEmpty }
            if !notes.isEmpty { out.append("") }
            for r in notes {
                var line = "- run \(Escaping.markdown(short[r.id] ?? r.id))"
                for note in historyNotes(r) { line += " — **" + Escaping.markdown(Escaping.clip(note, 400)) + "**" }
                if let rounds = r.roundsText { line += " — " + Escaping.markdown(rounds) }
                if let reason = r.reason { line += " — reason: " + Escaping.markdown(Escaping.clip(reason, 300)) }
                for note in r.diskNotes { line += " — disk: " + Escaping.markdown(Escaping.clip(note, 400)) }
                if let message = r.lastMessage { line += " — last message: " + Escaping.markdown(Escaping.clip(message, 300)) }
                out.append(line)
            }
            if let matrix = testMatrix(group.runs) {
                out += ["", "Tests × runs (one mark per round reached: ✓ passed or skipped, ✗ failed, ? not known):", "",
                        "| test | " + group.runs.map { Escaping.markdown(short[$0.id] ?? $0.id) }.joined(separator: " | ") + " |",
                        "|" + String(repeating: "---|", count: group.runs.count + 1)]
                for (test, marks) in matrix { out.append("| " + Escaping.markdown(test) + " | " + marks.joined(separator: " | ") + " |") }
            }
        }
        let unstarted = batch.unstartedItems
        if !unstarted.isEmpty {
            out += ["", "## Not started", ""]
            if let low = batch.diskLow { out += ["Queued runs did not start: " + Escaping.markdown(low.description), ""] }
            out += unstarted.map { item in
                "- " + Escaping.markdown(Escaping.clip(item.label, 120)) + " — attempt \(item.attempt)" + (item.model.map { ", " + Escaping.markdown($0) } ?? "")
            }
        }
        out += ["", "## Totals", ""] + totals(batch).map { "- " + Escaping.markdown($0) }
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: HTML

    public static func html(_ batch: BatchRecord, diffs: [String: String]) -> String {
        let best = bestRunIDs(batch)
        var body: [String] = []
        for group in groups(batch) {
            body.append("<tbody><tr class=\"group\"><th colspan=\"\(columns.count)\">\(Escaping.html(group.label))</th></tr>")
            for r in group.runs {
                let isBest = best.contains(r.id)
                let tds = cells(r).enumerated().map { i, c in
                    let star = i == 0 && isBest ? "<span class=\"star\" title=\"best\">★</span> " : ""
                    return "<td\(c.value.map { " data-v=\"\($0)\"" } ?? "")>\(star)\(Escaping.html(c.text))</td>"
                }
                body.append("<tr class=\"run\(isBest ? " best" : "")\" data-run-id=\"\(Escaping.html(r.id))\">\(tds.joined())</tr>")
                body.append("<tr class=\"more\"><td colspan=\"\(columns.count)\"><details><summary>\(Escaping.html(r.id))</summary>\n\(details(r, diff: diffs[r.id]))\n</details></td></tr>")
            }
            body.append("</tbody>")
        }
        let head = columns.map { "<th>\(Escaping.html($0))</th>" }.joined()
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
            <title>Batch \(Escaping.html(batch.id))</title>
            <style>\(css)</style></head><body>
            <h1>Batch \(Escaping.html(batch.id))</h1>
            <p class="meta">Status <b>\(batch.status.rawValue)</b> · started \(batch.started.formatted(.iso8601)) · wall time \(wallTime(batch)) · jobs \(batch.jobs)</p>
            <table id="runs"><thead><tr>\(head)</tr></thead>
            \(body.joined(separator: "\n"))
            </table>
            \(matrixHTML(batch))
            <h2>Totals</h2>
            <ul>\(totals(batch).map { "<li>\(Escaping.html($0))</li>" }.joined())</ul>
            \(charts(batch))
            <script>\(script)</script>
            </body></html>

            """
    }

    /// Which run passes which test, per round reached: every test that failed in some round of
    /// one of `runs`, and for each run a mark per round whose check read a report. Nil when no
    /// run read a report with a failure.
    static func testMatrix(_ runs: [RunRecord], limit: Int = 40) -> [(String, [String])]? {
        func checks(_ r: RunRecord) -> [CheckResult] { r.rounds?.compactMap(\.check) ?? [r.check].compactMap { $0 } }
        func key(_ f: TestFailure) -> String { [f.classname, f.name].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ".") }
        var tests: [String] = []
        for r in runs {
            for check in checks(r) { for f in check.failures ?? [] where !tests.contains(key(f)) { tests.append(key(f)) } }
        }
        guard !tests.isEmpty else { return nil }
        return tests.prefix(limit).map { test in
            (test, runs.map { r in
                let marks = checks(r).map { check -> String in
                    guard check.tests != nil else { return "?" }
                    if (check.failures ?? []).contains(where: { key($0) == test }) { return "✗" }
                    return check.failuresNotKept == nil ? "✓" : "?"
                }
                return marks.isEmpty ? "—" : marks.joined(separator: " ")
            })
        }
    }

    static func matrixHTML(_ batch: BatchRecord) -> String {
        let short = shortIDs(batch)
        var out: [String] = []
        for group in groups(batch) {
            guard let matrix = testMatrix(group.runs) else { continue }
            out.append("<h3>\(Escaping.html(group.label)): tests × runs</h3><p class=\"meta\">One mark per round reached: ✓ passed or skipped, ✗ failed, ? not known.</p>")
            out.append("<table class=\"matrix\"><thead><tr><th>test</th>" + group.runs.map { "<th>\(Escaping.html(short[$0.id] ?? $0.id))</th>" }.joined() + "</tr></thead><tbody>")
            for (test, marks) in matrix {
                out.append("<tr><td>\(Escaping.html(test))</td>" + marks.map { "<td>\(Escaping.html($0))</td>" }.joined() + "</tr>")
            }
            out.append("</tbody></table>")
        }
        return out.isEmpty ? "" : "<h2>Tests × runs</h2>\n" + out.joined(separator: "\n")
    }

    /// Inline SVG, readable without colour: per model the pass rate after round 1 (dashed, first)
    /// beside the one after all rounds (solid, second), each bar labelled with its numbers; and each
    /// run's cost against its duration (a filled circle passed, a cross did not).
    static func charts(_ batch: BatchRecord) -> String {
        let runs = batch.runs.filter { !$0.createdNothing }
        guard !runs.isEmpty else { return "" }
        var models: [String] = []
        for r in runs where !models.contains(r.model ?? "default") { models.append(r.model ?? "default") }
        let rows = models.map { m in
            let of = runs.filter { ($0.model ?? "default") == m }
            return (m, of.filter(passedAtFirstRound).count, of.filter(passed).count, of.count)
        }
        let barHeight = 16, rowHeight = 44, width = 360, left = 200
        var svg = ["<figure><figcaption>Check pass rate per model: after round 1 (light, dashed, first bar) and after all rounds (dark, second bar)</figcaption>",
                   "<svg role=\"img\" width=\"\(left + width + 140)\" height=\"\(rows.count * rowHeight + 10)\">",
                  ]
        for (i, row) in rows.enumerated() {
            let y = i * rowHeight + 5
            let first = row.3 == 0 ? 0 : width * row.1 / row.3, all = row.3 == 0 ? 0 : width * row.2 / row.3
            svg.append("<text x=\"0\" y=\"\(y + barHeight)\" font-size=\"12\">\(Escaping.html(Escaping.clip(row.0, 30)))</text>")
            svg.append("<rect x=\"\(left)\" y=\"\(y)\" width=\"\(width)\" height=\"\(barHeight)\" fill=\"none\" stroke=\"#999\"/>")
            svg.append("<rect x=\"\(left)\" y=\"\(y)\" width=\"\(first)\" height=\"\(barHeight)\" fill=\"#ccc\" stroke=\"#333\" stroke-dasharray=\"3 2\"/>")
            svg.append("<text x=\"\(left + width + 6)\" y=\"\(y + 12)\" font-size=\"11\">round 1: \(row.1)/\(row.3)</text>")
            svg.append("<rect x=\"\(left)\" y=\"\(y + barHeight + 2)\" width=\"\(width)\" height=\"\(barHeight)\" fill=\"none\" stroke=\"#999\"/>")
            svg.append("<rect x=\"\(left)\" y=\"\(y + barHeight + 2)\" width=\"\(all)\" height=\"\(barHeight)\" fill=\"#333\"/>")
            svg.append("<text x=\"\(left + width + 6)\" y=\"\(y + barHeight + 14)\" font-size=\"11\">all rounds: \(row.2)/\(row.3)</text>")
        }
        svg.append("</svg></figure>")
        let points = runs.compactMap { r in r.durationS.map { (r, $0, r.costUSD ?? 0) } }
        if !points.isEmpty {
            let maxD = max(points.map(\.1).max() ?? 1, 1), maxC = max(points.map(\.2).max() ?? 0, 0.0001)
            let w = 420.0, h = 220.0, pad = 50.0
            svg.append("<figure><figcaption>Each run's cost against its duration (● passed its check, ✕ did not); max \(DurationParser.format(maxD)), \(cost(maxC))</figcaption>")
            svg.append("<svg role=\"img\" width=\"\(Int(w + pad * 2))\" height=\"\(Int(h + pad))\">")
            svg.append("<line x1=\"\(pad)\" y1=\"\(h)\" x2=\"\(pad + w)\" y2=\"\(h)\" stroke=\"#333\"/><line x1=\"\(pad)\" y1=\"0\" x2=\"\(pad)\" y2=\"\(h)\" stroke=\"#333\"/>")
            svg.append("<text x=\"\(pad + w / 2)\" y=\"\(h + 30)\" font-size=\"11\">duration (0 – \(DurationParser.format(maxD)))</text>")
            svg.append("<text x=\"0\" y=\"12\" font-size=\"11\">cost</text><text x=\"0\" y=\"26\" font-size=\"11\">\(cost(maxC))</text>")
            for (r, d, c) in points {
                let x = pad + w * d / maxD, y = h - (h - 10) * c / maxC
                let label = Escaping.html("\(r.id): \(DurationParser.format(d)), \(cost(c)), \(passed(r) ? "passed" : "did not pass")")
                func n(_ v: Double) -> String { String(format: "%.1f", v) }
                svg.append(passed(r)
                    ? "<circle cx=\"\(n(x))\" cy=\"\(n(y))\" r=\"5\" fill=\"#333\"><title>\(label)</title></circle>"
                    : "<path d=\"M\(n(x - 5)) \(n(y - 5))l10 10m0 -10l-10 10\" stroke=\"#333\" stroke-width=\"2\"><title>\(label)</title></path>")
            }
            svg.append("</svg></figure>")
        }
        return "<h2>Charts</h2>\n" + svg.joined(separator: "\n")
    }

    static func details(_ r: RunRecord, diff: String?) -> String {
        var parts = historyNotes(r).map { "<p class=\"history\"><b>\(Escaping.html($0))</b></p>" }
        parts.append("<p><b>Task</b></p><pre>\(Escaping.html(r.task, keepLines: true))</pre>")
        if let reason = r.reason { parts.append("<p><b>Reason:</b> \(Escaping.html(reason))</p>") }
        for note in r.diskNotes { parts.append("<p><b>Disk:</b> \(Escaping.html(note))</p>") }
        if let c = r.check {
            let how = (c.passed ? "passed" : "failed") + (c.exitCode.map { " (exit \($0))" } ?? "") + (c.timedOut ? ", timed out" : "")
            parts.append("<p><b>Check</b> <code>\(Escaping.html(c.command))</code>: \(how)\(c.error.map { " — " + Escaping.html($0) } ?? "")</p>")
            if !c.outputTail.isEmpty { parts.append("<pre>\(Escaping.html(c.outputTail, keepLines: true))</pre>") }
        }
        if let rounds = r.roundsText { parts.append("<p><b>Rounds:</b> \(Escaping.html(rounds))</p>") }
        for round in r.rounds ?? [] where round.check?.failures?.isEmpty == false {
            let failures = (round.check?.failures ?? []).prefix(20).map { f in
                "<li>\(Escaping.html(f.name))\(f.file.map { " (" + Escaping.html($0) + (f.line.map { ":\($0)" } ?? "") + ")" } ?? "")\(f.message.map { ": " + Escaping.html(Escaping.clip($0, 200)) } ?? "")</li>"
            }
            parts.append("<p>Round \(round.round): failing tests</p><ul>\(failures.joined())</ul>")
        }
        if let message = r.lastMessage { parts.append("<p><b>Last message</b></p><pre>\(Escaping.html(message, keepLines: true))</pre>") }
        if let diff, !diff.isEmpty { parts.append("<pre class=\"diff\">\(diffHTML(diff))</pre>") }
        parts.append("<p>Branch <code>\(Escaping.html(r.branch))</code></p>")
        return parts.joined(separator: "\n")
    }

    /// A unified diff, one block span per line classed by kind. Hunk line counts tell
    /// content from headers, so an added line `++x` is not taken for a `+++` header.
    static func diffHTML(_ diff: String, limit: Int = 5000) -> String {
        var lines = diff.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        if lines.last?.isEmpty == true { lines.removeLast() }
        var (old, new) = (0, 0)  // lines left in the current hunk
        var out = lines.prefix(limit).map { line -> String in
            let kind: String
            if line.hasPrefix("diff ") { (old, new) = (0, 0); kind = "hdr" }
            else if line.hasPrefix("@@") { (old, new) = hunkCounts(line); kind = "hunk" }
            else if line.hasPrefix("\\") { kind = "ctx" }  // "\ No newline at end of file"
            else if old <= 0 && new <= 0 { kind = "hdr" }
            else if line.hasPrefix("+") { new -= 1; kind = "add" }
            else if line.hasPrefix("-") { old -= 1; kind = "del" }
            else { old -= 1; new -= 1; kind = "ctx" }
            return "<span class=\"\(kind)\">\(Escaping.html(String(line), keepLines: true))</span>"
        }
        if lines.count > limit { out.append("<span class=\"hdr\">… \(lines.count - limit) more lines</span>") }
        return out.joined()
    }

    /// `@@ -a,b +c,d @@` -> (b, d); a missing count is 1. Unreadable: until the next header.
    static func hunkCounts(_ line: Substring) -> (Int, Int) {
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { return (.max / 2, .max / 2) }
        func count(_ range: Substring) -> Int {
            let parts = range.dropFirst().split(separator: ",")
            return parts.count > 1 ? Int(parts[1]) ?? .max / 2 : 1
        }
        return (count(fields[1]), count(fields[2]))
    }

    public static let css = """
        body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
        table{border-collapse:collapse;width:100%}
        th,td{padding:.3em .6em;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
        thead th{cursor:pointer;background:#f3f3f3;position:sticky;top:0;user-select:none}
        tr.group th{background:#eef1fb}
        tr.best td{background:#fff8db}
        .star{color:#b58100}
        td[data-v]{text-align:right;font-variant-numeric:tabular-nums}
        tr.more td{border-bottom:2px solid #ccc}
        summary{cursor:pointer;color:#555;font-size:90%}
        pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f7f7;padding:.5em;max-height:32em;overflow:auto;margin:.3em 0}
        .diff span{display:block;min-height:1.2em}
        .add{color:#116329;background:#e6ffec}.del{color:#a40e26;background:#ffebe9}
        .hunk{color:#0550ae}.hdr{font-weight:bold}
        """

    /// Sorts each task's runs (each with its details row) by the clicked column: by
    /// `data-v` numbers when both have one, else numeric-aware text; blanks last.
    static let script = """
        document.querySelectorAll('#runs thead th').forEach((th, i) => th.addEventListener('click', () => {
          const dir = th.dataset.dir === 'asc' ? -1 : 1;
          th.dataset.dir = dir > 0 ? 'asc' : 'desc';
          const key = row => { const c = row.cells[i]; return c.dataset.v ?? c.textContent.replace('★', '').trim(); };
          document.querySelectorAll('#runs tbody').forEach(tb => {
            const pairs = [...tb.querySelectorAll('tr.run')].map(r => [r, r.nextElementSibling]);
            pairs.sort(([a], [b]) => {
              const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
              if ((x === '—') !== (y === '—')) return x === '—' ? 1 : -1;
              if (!isNaN(nx) && !isNaN(ny)) return dir * (nx - ny);
              return dir * x.localeCompare(y, undefined, {numeric: true});
            });
            pairs.forEach(p => tb.append(...p));
          });
        }));
        """

    // MARK: Terminal

    public static func table(_ batch: BatchRecord) -> String {
        let best = bestRunIDs(batch)
        let short = shortIDs(batch)
        var rows = [["  RUN", "TASK", "ATT", "MODEL", "STATUS", "CHECK", "FILES", "+/-", "TURNS", "COST", "TIME"]]
        for r in groups(batch).flatMap(\.runs) {
            rows.append([
                (best.contains(r.id) ? "* " : "  ") + Escaping.visible(short[r.id] ?? r.id), Escaping.clip(Escaping.visible(r.name ?? r.task), 30),
                r.attempt.map(String.init) ?? "—", Escaping.clip(Escaping.visible(r.model ?? "default"), 24), r.status.rawValue,
                checkText(r), "\(r.filesChanged.count)", "+\(r.additions)/-\(r.deletions)",
                r.numTurns.map(String.init) ?? "—", cost(r.costUSD), r.durationS.map { DurationParser.format($0) } ?? "—",
            ])
        }
        for item in batch.unstartedItems {
            rows.append(["  —", Escaping.clip(Escaping.visible(item.label), 30), "\(item.attempt)",
                         Escaping.clip(Escaping.visible(item.model ?? "default"), 24), "not started", "—", "—", "—", "—", "—", "—"])
        }
        let lines = TextTable.lines(rows)
        let notes = batch.runs.flatMap { r in historyNotes(r).map { "! run \(Escaping.visible(short[r.id] ?? r.id)): \(Escaping.visible($0))" } }
        return (lines + (notes.isEmpty ? [] : [""] + notes) + ["", totals(batch).map { Escaping.visible($0) }.joined(separator: " · ")])
            .joined(separator: "\n") + "\n"
    }
}
