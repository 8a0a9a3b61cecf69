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

    public static func checkText(_ r: RunRecord) -> String { r.check.map { $0.passed ? "passed" : "failed" } ?? "—" }
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
            "check pass rate: " + (rates.isEmpty ? "—" : rates.joined(separator: ", ")),
            spend,
            "wall time: " + wallTime(batch),
        ]
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
            let notes = group.runs.filter { $0.reason != nil || $0.lastMessage != nil || $0.history != nil || !$0.diskNotes.isEmpty }
            if !notes.isEmpty { out.append("") }
            for r in notes {
                var line = "- run \(Escaping.markdown(short[r.id] ?? r.id))"
                for note in historyNotes(r) { line += " — **" + Escaping.markdown(Escaping.clip(note, 400)) + "**" }
                if let reason = r.reason { line += " — reason: " + Escaping.markdown(Escaping.clip(reason, 300)) }
                for note in r.diskNotes { line += " — disk: " + Escaping.markdown(Escaping.clip(note, 400)) }
                if let message = r.lastMessage { line += " — last message: " + Escaping.markdown(Escaping.clip(message, 300)) }
                out.append(line)
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
            <h2>Totals</h2>
            <ul>\(totals(batch).map { "<li>\(Escaping.html($0))</li>" }.joined())</ul>
            <script>\(script)</script>
            </body></html>

            """
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
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        let lines = rows.map { row in
            zip(row, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }
                .joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let notes = batch.runs.flatMap { r in historyNotes(r).map { "! run \(Escaping.visible(short[r.id] ?? r.id)): \(Escaping.visible($0))" } }
        return (lines + (notes.isEmpty ? [] : [""] + notes) + ["", totals(batch).map { Escaping.visible($0) }.joined(separator: " · ")])
            .joined(separator: "\n") + "\n"
    }
}
