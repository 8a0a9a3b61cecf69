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

/// The live board in a real terminal: tmux gives patina a 10-row pane; eight runs at once
/// must not make the board scroll (each redraw would push a copy into the scrollback).
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct LiveBoardEndToEndTests {
    static func quoted(_ value: String) -> String { "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    @Test func eightRunsInATenRowPaneDoNotScroll() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.bash("echo x > x.txt && sleep 4 && echo slept"), .text("done")])
        try repo.write("../tasks.txt", (1...8).map { "task number \($0) of the live board test, with a long label" }.joined(separator: "\n") + "\n")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let script = repo.root.appendingPathComponent("board.sh")
        let exports = patina.environment
            .filter { $0.key.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil }
            .filter { !["TERM", "TMUX", "COLUMNS", "LINES"].contains($0.key) }
            .map { "export \($0.key)=\(Self.quoted($0.value))" }.sorted().joined(separator: "\n")
        let command = ([TestEnvironment.patinaBinary.path, "batch", "--agent-binary", TestEnvironment.claudeBinary.path,
                        "--base-image", TestEnvironment.baseImage, "--jobs", "8", repo.root.appendingPathComponent("tasks.txt").path])
            .map(Self.quoted).joined(separator: " ")
        try (exports + "\ncd \(Self.quoted(repo.path.path))\n\(command)\necho EXIT:$?\ntail -f /dev/null\n")
            .write(to: script, atomically: true, encoding: .utf8)
        let socket = "patina-board-\(UUID().uuidString.prefix(8))"
        let tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
        // The server outlives the command: no pipe of the test may reach it (it would hold it open).
        let start = Process()
        start.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // Every descriptor past stdio is closed first: tmux's server is forked, not exec'd, and
        // would keep whatever Foundation watches to see its child end. And no signal stays
        // blocked (a test's thread blocks some): else the pane's shell ignores the SIGHUP of
        // `kill-server`, and the server waits for it for ever.
        let clean = "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.closerange(3, 65536); os.execvp(sys.argv[1], sys.argv[1:])"
        start.arguments = ["python3", "-c", clean] + tmux + ["new-session", "-d", "-s", "board", "-x", "72", "-y", "10", "bash \(script.path)"]
        start.standardInput = FileHandle.nullDevice
        start.standardOutput = FileHandle.nullDevice
        start.standardError = FileHandle.nullDevice
        try start.run()
        start.waitUntilExit()
        #expect(start.terminationStatus == 0)
        defer { _ = try? ProcessRunner.run(tmux + ["kill-server"]) }
        var pane = "", sawBoard = false
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline {
            pane = try ProcessRunner.check(tmux + ["capture-pane", "-p", "-t", "board"])
            if pane.contains("queued") && pane.contains("running") { sawBoard = true }
            if pane.contains("EXIT:") { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        let history = Int(try ProcessRunner.check(tmux + ["display-message", "-p", "-t", "board", "#{history_size}"])
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        let everything = try ProcessRunner.check(tmux + ["capture-pane", "-p", "-S", "-", "-t", "board"])
        #expect(pane.contains("EXIT:0"), "\(everything)")
        #expect(sawBoard)
        // The header, eight finished lines and the final table (wrapped at 72 columns), and no
        // copy of the board: a board that scrolls leaves one per redraw.
        #expect(history >= 0 && history < 80, "scrollback of \(history) lines:\n\(everything)")
        #expect(!everything.contains("· done ") && !everything.contains("turn 1  "), "a board was left in the scrollback:\n\(everything)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }
}

/// Two attempts started in the same second differ only in their random ends: `runs` shows
/// each id whole, and `compare` names each by a label only it has, in both of its tables.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct TwinAttemptsEndToEndTests {
    @Test func twoAttemptsOfTheSameSecondAreToldApart() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.bash("echo t > t.txt && git add t.txt && git commit -qm twin"), .text("done")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let output = try patina.yolo("a task whose slug is long enough to have been cut in the old runs table", ["--attempts", "2", "--jobs", "2"])
        #expect(output.status == 0, "\(output.stderr.suffix(1500))")
        let ids = ((try PatinaRunner.record(output))["runs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(ids.count == 2)
        let listed = try patina.run(["runs"]).stdout
        for id in ids { #expect(listed.contains(id), "\(listed)") }
        #expect(listed.contains("succeeded") && !listed.contains("succeede "), "\(listed)")
        let compared = try patina.run(["compare"] + ids).stdout
        let lines = compared.split(separator: "\n").map(String.init)
        let labels = ids.map { id in lines.dropFirst().first { line in line.split(separator: " ").first.map { id.hasSuffix(String($0)) } == true } }
        #expect(labels.allSatisfy { $0 != nil } && Set(labels.compactMap { $0?.split(separator: " ").first }).count == 2, "\(compared)")
        let touched = try #require(lines.first { $0.hasPrefix("FILES TOUCHED") })
        for label in labels.compactMap({ $0?.split(separator: " ").first }) { #expect(touched.contains(String(label)), "\(compared)") }
    }
}
