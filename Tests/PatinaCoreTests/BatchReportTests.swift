import Foundation
import Testing
@testable import PatinaCore

@Suite struct BatchReportTests {
    static func run(
        _ id: String, task: String = "fix the bug", status: RunStatus = .succeeded, check: Bool? = nil,
        lines: Int = 1, cost: Double? = 0.1, model: String? = nil, attempt: Int = 1
    ) -> RunRecord {
        var r = RunRecord(
            id: id, task: task, status: status, reason: nil, branch: "patina/\(id)",
            baseCommit: String(repeating: "a", count: 40), headCommit: String(repeating: "b", count: 40),
            repository: "/r", worktree: "/w", runDir: "/d", sessionLog: "/d/session.jsonl", transcript: nil,
            started: Date(timeIntervalSince1970: 1_795_000_000), finished: Date(timeIntervalSince1970: 1_795_000_075),
            durationS: 75, costUSD: cost, numTurns: 4, tokens: TokenCounts(), model: model, maxTurns: nil,
            timeoutS: 600, image: nil, baseImage: "debian:bookworm-slim", exitCode: 0, claudeSessionID: nil)
        r.filesChanged = [FileChangeRecord(path: "a.txt", additions: lines, deletions: 0, status: "modified")]
        r.commits = 1
        r.attempt = attempt
        if let check {
            r.check = CheckResult(command: "make test", exitCode: check ? 0 : 1, passed: check, durationS: 3, outputTail: "ok")
        }
        return r
    }

    /// A batch whose items name each run; `task` groups runs by their task index.
    static func batch(_ runs: [(task: Int, run: RunRecord)]) -> BatchRecord {
        let items = runs.map { entry in
            var item = BatchItem(taskIndex: entry.task, name: nil, task: entry.run.task, attempt: entry.run.attempt ?? 1,
                                 model: entry.run.model, options: YoloOptions(task: entry.run.task))
            item.runID = entry.run.id
            return item
        }
        var b = BatchRecord(id: "20261121-040000-batch-wxyz", started: Date(timeIntervalSince1970: 1_795_000_000),
                            jobs: 2, inputs: BatchInputs(file: "tasks.txt", check: "make test", items: items))
        b.runs = runs.map(\.run)
        b.status = .succeeded
        b.durationS = 150
        return b
    }

    @Test func passedCheckBeatsFailedCheck() {
        let b = Self.batch([(0, Self.run("r-aaaa", check: false, lines: 1)), (0, Self.run("r-bbbb", check: true, lines: 50))])
        #expect(BatchReport.bestRunIDs(b) == ["r-bbbb"])
    }

    @Test func aFailedCheckIsAFailedRunInTheTotals() throws {
        let good = Self.run("20261121-040000-fix-aaaa", check: true)
        let bad = Self.run("20261121-040000-fix-bbbb", status: .checkFailed, check: false)
        let b = Self.batch([(0, good), (0, bad)])
        let totals = BatchReport.totals(b)
        #expect(totals.contains("succeeded: 1 (check failed: 1)"))
        #expect(totals.contains("check pass rate: default 1/2 (50%)"))
        #expect(BatchReport.bestRunIDs(b) == [good.id])
        #expect(b.unfinishedItems(includingFailed: true) == [1])
        #expect(b.unfinishedItems(includingFailed: false).isEmpty)
        #expect(RunStatus.checkFailed.headline == "CHECK FAILED")
        #expect(RunStatus(rawValue: "check_failed") == .checkFailed)
        #expect(RunStatus.list().contains("check_failed"))
        let check = try #require(bad.check)
        #expect(check.summary == "`make test` FAILED (exit 1) in 3.0s")
        #expect(Comparison([good, bad]).rows.map(\.status) == ["succeeded", "check_failed"])
    }

    @Test func fewerChangedLinesWin() {
        let b = Self.batch([(0, Self.run("r-aaaa", check: true, lines: 9)), (0, Self.run("r-bbbb", check: true, lines: 2))])
        #expect(BatchReport.bestRunIDs(b) == ["r-bbbb"])
    }

    @Test func costBreaksTiesAndUnknownCostIsWorst() {
        let b = Self.batch([
            (0, Self.run("r-aaaa", cost: nil)), (0, Self.run("r-bbbb", cost: 0.5)), (0, Self.run("r-cccc", cost: 0.2)),
        ])
        #expect(BatchReport.bestRunIDs(b) == ["r-cccc"])
        let unknown = Self.batch([(0, Self.run("r-aaaa", cost: nil)), (0, Self.run("r-bbbb", cost: 9))])
        #expect(BatchReport.bestRunIDs(unknown) == ["r-bbbb"])
    }

    @Test func noBestWhenEveryRunFailed() {
        let b = Self.batch([
            (0, Self.run("r-aaaa", status: .failed, check: false)), (0, Self.run("r-bbbb", status: .timedOut)),
            (1, Self.run("r-cccc", task: "other")),
        ])
        #expect(BatchReport.bestRunIDs(b) == ["r-cccc"])
    }

    @Test func unfinishedRunNeverBeatsASucceededOne() {
        let b = Self.batch([(0, Self.run("r-aaaa", status: .timedOut, check: true)), (0, Self.run("r-bbbb", check: false, lines: 40))])
        #expect(BatchReport.bestRunIDs(b) == ["r-bbbb"])
        // With nothing that succeeded, a passed check is enough.
        let alone = Self.batch([(0, Self.run("r-aaaa", status: .timedOut, check: true)), (0, Self.run("r-bbbb", status: .failed))])
        #expect(BatchReport.bestRunIDs(alone) == ["r-aaaa"])
    }

    @Test func groupsByTaskIndexElseByTaskText() {
        let b = Self.batch([(0, Self.run("r-aaaa", lines: 3)), (1, Self.run("r-bbbb", lines: 5))])
        #expect(BatchReport.bestRunIDs(b) == ["r-aaaa", "r-bbbb"])
        var loose = b
        loose.inputs.items = []  // same task text: one group
        #expect(BatchReport.bestRunIDs(loose) == ["r-aaaa"])
    }

    @Test func markdownHasARowPerRunAndEscapesCells() {
        var b = Self.batch([
            (0, Self.run("r-aaaa", task: "fix a | b\nnext line", check: true)),
            (0, Self.run("r-bbbb", task: "fix a | b\nnext line", check: false)),
            (1, Self.run("r-cccc", task: "*bold* [x](y) \u{1B}[31m", model: "opus")),
        ])
        b.runs[1].lastMessage = "done\n# Injected\n<img src=x> | cell"
        b.runs[1].reason = "stopped\r\n- item"
        let md = BatchReport.markdown(b)
        let lines = md.split(separator: "\n", omittingEmptySubsequences: false)
        let rows = lines.filter { $0.hasPrefix("| ") && !$0.hasPrefix("| Task ") }
        #expect(rows.count == 3)
        for row in rows {
            // 12 columns: 13 pipes that are not escaped.
            let pipes = row.indices.filter { row[$0] == "|" && ($0 == row.startIndex || row[row.index(before: $0)] != "\\") }
            #expect(pipes.count == 13, "\(row)")
        }
        #expect(md.contains(#"fix a \| b<br>next line"#))
        #expect(!lines.contains { $0.hasPrefix("next line") })
        #expect(md.contains(#"\*bold\* \[x\](y)"#))
        #expect(!md.contains("\u{1B}"))
        // The agent's words stay on one list line, escaped.
        #expect(!lines.contains { $0.hasPrefix("# Injected") || $0.hasPrefix("- item") })
        #expect(md.contains(##"last message: done<br>\# Injected<br>\<img src=x\> \| cell"##))
        #expect(md.contains(#"reason: stopped\\r\\n- item"#))  // CR LF shown as text, escaped
        #expect(md.hasPrefix("# Batch 20261121-040000-batch-wxyz\n"))
        #expect(rows.filter { $0.contains("★ best") }.count == 2)
        #expect(md.contains("## Totals"))
        #expect(md.contains("default 1/2 (50%)") && md.contains("opus 1/1 (100%)"))
    }

    @Test func htmlIsSelfContainedEscapedAndHasARowPerRun() {
        var evil = Self.run("r-bbbb", task: "red \u{1B}[31m text", check: false)
        evil.lastMessage = "done <script>alert('x')</script> & \"quoted\""
        evil.reason = "check failed\u{7}"
        let b = Self.batch([(0, Self.run("r-aaaa", check: true)), (0, evil), (1, Self.run("r-cccc", task: "other"))])
        let diff = """
            diff --git a/a.txt b/a.txt
            --- a/a.txt
            +++ b/a.txt
            @@ -1,2 +1,2 @@
             same
            -old line
            +new line

            """
        let html = BatchReport.html(b, diffs: ["r-bbbb": diff])
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        for id in ["r-aaaa", "r-bbbb", "r-cccc"] {
            #expect(html.components(separatedBy: "data-run-id=\"\(id)\"").count == 2)
        }
        #expect(html.components(separatedBy: "<tr class=\"run").count == 4)
        #expect(html.contains("<table id=\"runs\">"))
        for external in ["http://", "https://", "<script src", "<link", "src=", "url("] {
            #expect(!html.contains(external), "\(external)")
        }
        #expect(html.components(separatedBy: "<script").count == 2)  // only the page's own script
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"))
        #expect(!html.contains("\u{1B}") && !html.contains("\u{7}"))
        #expect(html.contains(#"red \x1b[31m text"#))
        #expect(html.contains(#"check failed\x07"#))
        #expect(html.contains("<span class=\"add\">+new line</span>"))
        #expect(html.contains("<span class=\"del\">-old line</span>"))
        #expect(html.contains("<span class=\"hunk\">@@ -1,2 +1,2 @@</span>"))
        #expect(html.contains("<span class=\"hdr\">+++ b/a.txt</span>"))
        #expect(html.contains("<tr class=\"run best\" data-run-id=\"r-aaaa\">"))
        #expect(html.contains("<details>"))
    }

    @Test func diffHeadersInsideAHunkAreContent() {
        let html = BatchReport.diffHTML("@@ -0,0 +1,1 @@\n+++x\n--- a/next\n")
        #expect(html.contains("<span class=\"add\">+++x</span>"))
        #expect(html.contains("<span class=\"hdr\">--- a/next</span>"))
    }

    @Test func tableHasALinePerRunAndMarksTheBest() {
        let b = Self.batch([
            (0, Self.run("20261121-040000-one-aaaa", check: true)),
            (0, Self.run("20261121-040000-one-bbbb", check: false)),
            (1, Self.run("20261121-040000-two-cccc", task: "a very long task \u{1B}[2J that goes on and on and on", model: "sonnet")),
        ])
        let text = BatchReport.table(b)
        let lines = text.split(separator: "\n")
        #expect(lines.first?.contains("RUN") == true && lines.first?.contains("TIME") == true)
        #expect(lines.filter { $0.hasPrefix("* aaaa ") }.count == 1)
        #expect(lines.filter { $0.hasPrefix("  bbbb ") }.count == 1)
        #expect(lines.filter { $0.hasPrefix("* cccc ") }.count == 1)
        #expect(!text.contains("\u{1B}"))
        #expect(text.contains("1m15s"))
        #expect(lines.last?.contains("runs: 3") == true)
        // Columns line up: every run line is as long as the header up to the TIME column.
        let time = lines[0].range(of: "TIME")!.lowerBound.utf16Offset(in: lines[0])
        #expect(lines[1...3].allSatisfy { $0.count >= time })
    }
}
