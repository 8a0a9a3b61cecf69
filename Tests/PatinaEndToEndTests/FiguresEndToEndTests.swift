import Foundation
import PatinaTestSupport
import Testing

/// The figures people spend money on, end to end: a line's budget survives
/// `batch resume --failed`, small budgets are reported at their precision, and a run whose
/// patina was SIGKILLed keeps the cost its model proxy logged.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct FiguresEndToEndTests {
    @Test func aLinesBudgetSurvivesResumeFailedAndIsReportedAtItsPrecision() throws {
        let repo = try TemporaryRepository()
        // Every answer reports 100,000 input tokens: far past a $0.002 budget after the first.
        let model = try FakeModel(script: [.bash("echo one > one.txt && git add one.txt && git commit -qm one"),
                                           .bash("echo two > two.txt"), .text("done")])
        try model.setUsage(["input_tokens": 100_000, "output_tokens": 0])
        try repo.write("../tasks.jsonl", #"{"task": "spend a little", "max_cost": 0.002}"# + "\n")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let first = try patina.run(["batch", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                    "--json", repo.root.appendingPathComponent("tasks.jsonl").path])
        #expect(first.status == 1, "\(first.stderr.suffix(1500))")
        let batch = try PatinaRunner.record(first)
        #expect(batch["status"] as? String == "failed")
        let run = try #require((batch["runs"] as? [[String: Any]])?.first)
        #expect(run["status"] as? String == "budget_exceeded", "\(run)")
        #expect(run["max_cost_usd"] as? Double == 0.002)
        #expect(first.stderr.contains("--max-cost $0.0020"), "\(first.stderr.suffix(2000))")
        #expect(!first.stderr.contains("$0.00)"), "a budget rounded to cents: \(first.stderr.suffix(2000))")

        let resumed = try patina.run(["batch", "resume", "latest", "--failed", "--json"])
        #expect(resumed.status == 1, "\(resumed.stderr.suffix(1500))")
        let again = try PatinaRunner.record(resumed)
        let rerun = try #require((again["runs"] as? [[String: Any]])?.first)
        #expect(rerun["id"] as? String != run["id"] as? String)
        #expect(rerun["max_cost_usd"] as? Double == 0.002, "the line's budget was dropped on resume: \(rerun)")
        #expect(rerun["status"] as? String == "budget_exceeded", "\(rerun)")
        // Both runs' spend is the batch's.
        let total = ((run["cost_usd"] as? Double) ?? 0) + ((rerun["cost_usd"] as? Double) ?? 0)
        let shown = try patina.run(["batch", "show", "latest"]).stdout
        #expect(shown.contains(String(format: "total spend: $%.4f", total)), "\(shown)")
        #expect(shown.contains("of it by 1 replaced run"), "\(shown)")
    }

    @Test func aSIGKILLedRunKeepsTheCostItsProxyLogged() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [
            .bash("echo w > w.txt && git add w.txt && git commit -qm work"),
            .bash("tail -f /dev/null"),
            .text("unreachable"),
        ])
        try model.setUsage(["input_tokens": 10_000, "output_tokens": 100])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let process = try patina.start(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                        "hang after some work"])
        let deadline = Date().addingTimeInterval(120)
        while model.requests().filter({ $0["path"] as? String == "/v1/messages" && $0["has_tools"] as? Bool == true }).count < 2
                && Date() < deadline && process.isRunning {
            Thread.sleep(forTimeInterval: 0.2)
        }
        Thread.sleep(forTimeInterval: 1)
        #expect(process.isRunning)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()

        let listed = try patina.run(["runs", "--json"])
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        let run = try #require(runs.first)
        #expect(run["status"] as? String == "interrupted", "\(run)")
        let apiLog = try String(contentsOfFile: (run["run_dir"] as? String ?? "") + "/api.jsonl", encoding: .utf8)
        let logged = apiLog.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        let cost = logged.compactMap { $0["cost_usd"] as? Double }.reduce(0, +)
        #expect(cost > 0)
        let recorded = try #require(run["cost_usd"] as? Double, "the killed run lost its cost: \(run)")
        #expect(abs(recorded - cost) < 1e-9)
        #expect(run["requests"] as? Int == logged.count)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }
}
