import Foundation
import PatinaModelProxy
import Testing
@testable import PatinaCore

/// Figures people decide on: budgets that survive resume, batch statuses that say what
/// happened, totals that count every dollar, money at its precision, ids told apart.
@Suite struct BatchFiguresTests {
    @Test func everyOptionSurvivesTheRecord() throws {
        // Every key a batch line or a flag can set: a run record or batch.json that drops one
        // changes what `batch resume` / `patina resume` run (a budget lost, a check gone).
        var options = YoloOptions(task: "t")
        options.base = "main"
        options.baseImage = "img"
        options.agentBinary = "/bin/claude"
        options.model = "m"
        options.maxTurns = 3
        options.timeout = "5m"
        options.allow = ["a.example"]
        options.presets = ["pypi"]
        options.noFirewall = true
        options.quiet = true
        options.json = true
        options.check = "make test"
        options.checkTimeout = "1m"
        options.devcontainer = "none"
        options.noAutoPresets = true
        options.noHostCA = true
        options.maxCost = "0.002"
        options.sparse = ["src"]
        options.allowAPIFeatures = ["web_search"]
        options.rounds = 3
        options.checkReport = "report.xml"
        options.maxFileSize = "10m"
        options.maxNewPaths = 50
        options.minFree = "5%"
        let mirror = Mirror(reflecting: options)
        let defaults = Mirror(reflecting: YoloOptions(task: "t"))
        for (child, plain) in zip(mirror.children, defaults.children) where child.label != "task" {
            #expect(String(describing: child.value) != String(describing: plain.value), "set \(child.label ?? "?") in this test")
        }
        let decoded = try JSONDecoder().decode(YoloOptions.self, from: try JSONEncoder().encode(options))
        #expect(decoded == options)
    }

    @Test func aBatchLinesBudgetSurvivesResume() throws {
        let tasks = try BatchFile.parse(#"{"task": "a", "max_cost": 0.002, "check": "true", "timeout": "2m", "max_turns": 4, "allow": ["x.example"]}"#,
                                        path: "t.jsonl", jsonLines: true)
        let items = try BatchPlanner.items(tasks: tasks, defaults: YoloOptions(task: ""), attempts: 1, models: [], path: "t.jsonl")
        let batch = BatchRecord(id: "b", started: Date(), jobs: 1, inputs: BatchInputs(file: "t.jsonl", check: nil, items: items))
        let reread = try RunRecord.decoder.decode(BatchRecord.self, from: Data(batch.json().utf8))
        let options = try #require(reread.inputs.items.first?.options)
        #expect(options.maxCost == "0.002" && options.check == "true" && options.timeout == "2m" && options.maxTurns == 4)
        #expect(options.allow == ["x.example"])
    }

    static func batch(_ statuses: [RunStatus], checks: [Bool?]? = nil, unstarted: Int = 0) -> BatchRecord {
        var runs = statuses.enumerated().map { i, status in
            BatchReportTests.run("r-\(i)aaa", status: status, check: checks?[i] ?? nil)
        }
        runs = runs.map { var r = $0; r.createdNothing = false; return r }
        var items = runs.map { r -> BatchItem in
            var item = BatchItem(taskIndex: 0, name: nil, task: r.task, attempt: 1, model: nil, options: YoloOptions(task: r.task))
            item.runID = r.id
            return item
        }
        for _ in 0..<unstarted { items.append(BatchItem(taskIndex: 1, name: "later", task: "later", attempt: 1, model: nil, options: YoloOptions(task: "later"))) }
        var b = BatchRecord(id: "b", started: Date(), jobs: 1, inputs: BatchInputs(file: nil, check: nil, items: items))
        b.runs = runs
        return b
    }

    @Test(arguments: [
        ([RunStatus.succeeded, .succeeded], nil as [Bool?]?, 0, false, 0, BatchStatus.succeeded),
        ([.succeeded, .failed], nil, 0, false, 0, .failed),
        ([.succeeded, .timedOut], nil, 0, false, 0, .failed),
        ([.error], nil, 0, false, 0, .failed),
        ([.budgetExceeded], nil, 0, false, 0, .failed),
        ([.succeeded, .succeeded], [true, false], 0, false, 0, .failed),
        ([.succeeded], [true], 0, false, 0, .succeeded),
        ([.succeeded], nil, 2, false, 2, .budgetExceeded),
        ([.succeeded, .interrupted], nil, 1, true, 0, .interrupted),
    ])
    func aBatchsStatusSaysWhatHappened(statuses: [RunStatus], checks: [Bool?]?, unstarted: Int, stopped: Bool, heldBack: Int,
                                       expected: BatchStatus) {
        #expect(Self.batch(statuses, checks: checks, unstarted: unstarted).outcome(stopped: stopped, unstartedForBudget: heldBack) == expected)
    }

    @Test func unstartedTasksAreListedAndReplacedRunsStayInTheTotal() {
        var b = Self.batch([.succeeded], unstarted: 2)
        b.runs[0].costUSD = 0.25
        b.runs[0].requests = 3
        var replaced = ReplacedRun(BatchReportTests.run("r-9zzz", status: .interrupted, cost: 0.5))
        replaced.requests = 2
        b.replacedRuns = [replaced]
        #expect(b.costUSD == 0.75)
        let table = BatchReport.table(b)
        #expect(table.split(separator: "\n").filter { $0.hasPrefix("  —") && $0.contains("not started") }.count == 2, "\(table)")
        #expect(table.contains("runs: 1 (2 not started)"), "\(table)")
        #expect(table.contains("$0.7500") && table.contains("$0.5000 of it by 1 replaced run"), "\(table)")
        #expect(BatchReport.markdown(b).contains("## Not started"))
    }

    @Test func moneyKeepsItsPrecisionAndLosesItsNoise() throws {
        #expect(Money.format(0.002) == "$0.0020")
        #expect(Money.format(0.005) == "$0.0050")
        #expect(Money.format(0.0025) == "$0.0025")
        #expect(Money.format(0.00012345) == "$0.00012345")
        #expect(Money.format(2) == "$2.00")
        #expect(Money.format(12.5) == "$12.50")
        let sum = Money.exact(0.00046 + 0.00092)
        let json = String(decoding: try JSONEncoder().encode([sum]), as: UTF8.self)
        #expect(json == "[0.00138]")
    }

    @Test func idsAreToldApartByTheirShortestUniqueEnd() {
        let a = "20261207-101500-fix-the-flaky-test-in-the-parser-k3x9"
        let b = "20261207-101500-fix-the-flaky-test-in-the-parser-m2p4"
        let c = "20261207-101501-other-k3x9"
        let short = RunID.abbreviations([a, b, c])
        #expect(short[b] == "m2p4")
        #expect(short[a] != short[c] && short[a].map { a.hasSuffix($0) } == true && short[c].map { c.hasSuffix($0) } == true)
        for (id, label) in short { #expect([a, b, c].filter { $0.contains(label) } == [id]) }
    }

    @Test func aKilledRunsFiguresComeBackFromAPILog() {
        func entry(_ seq: Int, cost: Double?, tools: Int = 1, refused: String? = nil) -> APILogEntry {
            var e = APILogEntry(time: Date(), seq: seq, method: "POST", path: "/v1/messages", status: refused == nil ? 200 : 402, latencyMS: 1)
            e.tools = tools
            e.refused = refused
            if refused == nil {
                e.usage = APIUsage(inputTokens: 100, outputTokens: 10)
                e.costUSD = cost
            }
            return e
        }
        let usage = ModelUsage(replaying: [entry(1, cost: 0.00046), entry(2, cost: 0.00092), entry(3, cost: nil, refused: "budget")])
        #expect(usage.requests == 3 && usage.turns == 2 && usage.refusedForBudget == 1)
        #expect(usage.costUSD == 0.00138)
        #expect(usage.usage.inputTokens == 200 && usage.usage.outputTokens == 20)
        var record = BatchReportTests.run("r-aaaa", cost: nil)
        record.takeFigures(from: usage)
        #expect(record.costUSD == 0.00138 && record.requests == 3 && record.numTurns == 2)
    }
}
