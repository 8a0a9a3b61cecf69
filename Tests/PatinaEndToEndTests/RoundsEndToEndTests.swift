import Foundation
import PatinaCore
import PatinaTestSupport
import Testing

/// `--rounds`: a failing check goes back to the same conversation, round after round.
/// Real Docker engine, real Claude Code, the scripted model. The fake picks its turn by the
/// number of assistant messages in a request, so a continued conversation keeps counting:
/// round 1 is turns 0–1, round 2 turns 2–3.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct RoundsEndToEndTests {
    /// Passes when value.txt holds 42, writing a JUnit report either way (a failing one
    /// names the test, its file:line and the value it found).
    static let junitCheck = """
        v=$(cat value.txt); \
        if [ "$v" = 42 ]; then \
          printf '<?xml version="1.0"?><testsuite name="t" tests="2"><testcase name="test_value" classname="tests.test_value" file="tests/test_value.py" line="7"/><testcase name="test_other" classname="tests.test_value"><skipped/></testcase></testsuite>' > report.xml; \
        else \
          printf '<?xml version="1.0"?><testsuite name="t" tests="2" failures="1"><testcase name="test_value" classname="tests.test_value" file="tests/test_value.py" line="7"><failure message="assert %s == 42">AssertionError</failure></testcase><testcase name="test_other" classname="tests.test_value"/></testsuite>' "$v" > report.xml; \
          echo "value is $v, expected 42"; exit 1; \
        fi
        """

    static func write(_ value: String) -> FakeModel.Turn {
        .bash("printf '%s\\n' '\(value)' > value.txt && git add value.txt && git commit -qm 'value \(value)'")
    }

    func mainRequests(_ model: FakeModel) -> [[String: Any]] {
        model.requests().filter { $0["kind"] as? String == "main" }
    }

    @Test func theFailingTestGoesBackAndTheSecondRoundPasses() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let mainBefore = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            Self.write("42"), .text("Fixed the value."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("set the value", ["--check", Self.junitCheck, "--check-report", "report.xml", "--rounds", "3"]))
        #expect(run.output.status == 0, "\(run.output.stderr)")
        #expect(run.status == "succeeded", "\(run.record["reason"] ?? "")")
        #expect(run.record["passed_at_round"] as? Int == 2)
        #expect(run.record["stop_reason"] as? String == "passed")
        let rounds = run.record["rounds"] as? [[String: Any]] ?? []
        #expect(rounds.count == 2)
        #expect(rounds.map { $0["round"] as? Int } == [1, 2])
        let firstCheck = rounds.first?["check"] as? [String: Any] ?? [:]
        #expect(firstCheck["passed"] as? Bool == false)
        #expect((firstCheck["tests"] as? [String: Int]) == ["total": 2, "failed": 1, "skipped": 0])
        let failure = (firstCheck["failures"] as? [[String: Any]])?.first ?? [:]
        #expect(failure["name"] as? String == "test_value")
        #expect(failure["file"] as? String == "tests/test_value.py")
        #expect(failure["line"] as? Int == 7)
        #expect(failure["message"] as? String == "assert 41 == 42")
        let lastCheck = run.record["check"] as? [String: Any] ?? [:]
        #expect(lastCheck["passed"] as? Bool == true)
        #expect((lastCheck["tests"] as? [String: Int]) == ["total": 2, "failed": 0, "skipped": 1])
        #expect(run.record["commits"] as? Int == 2)

        // Round 2's first request continues the conversation with the follow-up naming the test.
        let requests = mainRequests(model)
        let opening = try #require(requests.first { ($0["turn"] as? Int) == 2 })
        let followUp = opening["last_user_text"] as? String ?? ""
        #expect(followUp.contains("tests.test_value.test_value (tests/test_value.py:7): assert 41 == 42"), "\(followUp)")
        #expect(followUp.contains("exit code 1"), "\(followUp)")
        #expect(followUp.contains("round 2 of 3"), "\(followUp)")

        // Marks per round, the end at the last head; the value on the branch is the fixed one.
        let head = run.head
        #expect(try repo.git("rev-parse", "session-\(run.id)-round-2^{commit}") == head)
        #expect(try repo.git("rev-parse", "session-\(run.id)-end^{commit}") == head)
        #expect(try repo.git("rev-parse", "session-\(run.id)-round-1^{commit}") == repo.git("rev-parse", "\(head)^"))
        #expect(try repo.git("rev-parse", "session-\(run.id)-start^{commit}") == mainBefore)
        #expect(try repo.git("show", "\(run.branch):value.txt") == "42")
        // Each round's check output is kept; check.log is the last one.
        #expect(run.file("check-round-1.log")?.contains("value is 41") == true)
        #expect(run.file("check.log") == run.file("check-round-2.log"))
        let session = run.file("session.md") ?? ""
        #expect(session.contains("### Round 2"), "\(session)")
        #expect(session.contains("Previous Session Context"))
        // show says where it passed.
        let show = try patina.run(["show", run.id])
        #expect(show.stdout.contains("passed at round 2"), "\(show.stdout)")
        try expectUserRepositoryUntouched(repo, mainBefore: mainBefore, run: run)
    }

    @Test func roundsRunOutAndTheRunEndsCheckFailed() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            Self.write("43"), .text("Changed the value."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("set the value", ["--check", "grep -qx 42 value.txt || { echo VALUE-WRONG; exit 3; }", "--rounds", "2"]))
        #expect(run.output.status == 1, "\(run.output.stderr)")
        #expect(run.status == "check_failed")
        #expect(run.record["stop_reason"] as? String == "rounds_exhausted")
        #expect(run.record["passed_at_round"] == nil || run.record["passed_at_round"] is NSNull)
        #expect((run.record["rounds"] as? [[String: Any]])?.count == 2)
        // Without a report, the follow-up carries the check's last lines.
        let opening = try #require(mainRequests(model).first { ($0["turn"] as? Int) == 2 })
        let followUp = opening["last_user_text"] as? String ?? ""
        #expect(followUp.contains("VALUE-WRONG"), "\(followUp)")
        #expect(followUp.contains("exit code 3"), "\(followUp)")
    }

    @Test func resumingARunWithRoundsIsANewRunWithItsOwnRounds() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            Self.write("43"), .text("Changed the value."),
            Self.write("44"), .text("Changed it again."),
            Self.write("42"), .text("Fixed it."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let first = try FinishedRun(patina.yolo("set the value", ["--check", "grep -qx 42 value.txt", "--rounds", "2"]))
        #expect(first.record["stop_reason"] as? String == "rounds_exhausted")
        // The follow-up opens the new run's round 1; a failing check there goes round again (rounds 2, the earlier run's).
        let resumed = try FinishedRun(patina.run(["resume", "--json", first.id, "value.txt must hold 42"]))
        #expect(resumed.output.status == 0, "\(resumed.output.stderr)")
        #expect(resumed.id != first.id)
        #expect(resumed.record["resumed_from"] as? String == first.id)
        #expect(resumed.branch == first.branch)
        #expect((resumed.record["rounds"] as? [[String: Any]])?.count == 2)
        #expect(resumed.record["passed_at_round"] as? Int == 2)
        #expect(try repo.git("show", "\(first.branch):value.txt") == "42")
        let earlier = try #require(try JSONSerialization.jsonObject(with: Data(patina.run(["show", "--json", first.id]).stdout.utf8)) as? [String: Any])
        #expect((earlier["rounds"] as? [[String: Any]])?.count == 2, "the earlier run's record stays as it was")
        #expect(earlier["passed_at_round"] is NSNull)
    }

    @Test func aRoundThatChangesNothingStopsAndAMalformedReportIsANote() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            .text("I give up."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let check = "printf '<testsuite><testcase name=\"a\">' > report.xml; echo BROKEN-REPORT; exit 1"
        let run = try FinishedRun(patina.yolo("set the value", ["--check", check, "--check-report", "report.xml", "--rounds", "5"]))
        #expect(run.output.status == 1, "\(run.output.stderr)")
        #expect(run.status == "check_failed")
        #expect(run.record["stop_reason"] as? String == "no_change")
        #expect((run.record["rounds"] as? [[String: Any]])?.count == 2)
        let check1 = (run.record["check"] as? [String: Any]) ?? [:]
        #expect((check1["report_note"] as? String ?? "").contains("malformed XML"), "\(check1)")
        #expect(check1["tests"] == nil)
        let opening = try #require(mainRequests(model).first { ($0["turn"] as? Int) == 2 })
        #expect((opening["last_user_text"] as? String ?? "").contains("BROKEN-REPORT"))
    }

    @Test func aBudgetSpentByRoundOneStopsBeforeRoundTwo() throws {
        // Each answer reports 100,000 input tokens: $0.40 at the default model's price; round 1
        // is two answers, $0.80: the whole budget.
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            Self.write("42"), .text("Fixed the value."),
        ])
        try model.setUsage(["input_tokens": 100_000, "output_tokens": 0])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("set the value", ["--check", "grep -qx 42 value.txt", "--rounds", "3", "--max-cost", "0.8"]))
        #expect(run.output.status == 1, "\(run.output.stderr)")
        #expect(run.status == "budget_exceeded", "\(run.record["reason"] ?? "")")
        #expect(run.record["stop_reason"] as? String == "budget_exceeded")
        #expect((run.record["rounds"] as? [[String: Any]])?.count == 1)
        #expect(!mainRequests(model).contains { ($0["turn"] as? Int ?? 0) >= 2 }, "no round 2 started")
        #expect(try repo.git("show", "\(run.branch):value.txt") == "41")
    }

    @Test func ctrlCInRoundTwoStopsTheRunAndCollectsIt() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            .bash("printf '42\\n' > value.txt && sleep 600"), .text("unreachable"),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = try StartedPatina(patina, ["yolo", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                                  "--quiet", "--check", "grep -qx 42 value.txt", "--rounds", "3", "set the value"])
        // Round 2's agent is running its command once the model saw a request of turn 2.
        started.wait(until: { mainRequests(model).contains { ($0["turn"] as? Int) == 2 } }, settle: 2)
        started.interrupt()
        let runs = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]]
        let record = try #require(runs?.first)
        #expect(record["status"] as? String == "interrupted", "\(record)")
        #expect(record["stop_reason"] as? String == "interrupted")
        #expect((record["rounds"] as? [[String: Any]])?.count == 2)
        // Round 2's uncommitted change was collected onto the branch.
        #expect(try repo.git("show", "\(record["branch"] as? String ?? ""):value.txt") == "42")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func batchResumeContinuesARunInterruptedInRoundTwoAtRoundThree() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        // Round 2's command hangs the first time only (a mark in the worktree): however Claude
        // Code replays the interrupted tool call, round 3 ends with the value at 42.
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            .bash("printf '42\\n' > value.txt && if [ ! -e hung ]; then touch hung && tail -f /dev/null; fi"), .text("Carried on."),
        ])
        try model.setUsage(["input_tokens": 1_000, "output_tokens": 0])
        try repo.write("../tasks.jsonl", "{\"task\": \"set the value\", \"name\": \"value\"}\n")
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = try StartedPatina(patina, ["batch", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                                  "--quiet", "--check", "grep -qx 42 value.txt", "--rounds", "3", "--max-total-cost", "1",
                                                  repo.root.appendingPathComponent("tasks.jsonl").path])
        started.wait(until: { mainRequests(model).contains { ($0["turn"] as? Int) == 2 } }, settle: 2)
        started.interrupt()
        let before = try #require(try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]]).first
        let id = try #require(before?["id"] as? String)
        #expect(before?["status"] as? String == "interrupted", "\(before ?? [:])")
        let costBefore = before?["cost_usd"] as? Double ?? 0
        #expect(costBefore > 0)
        let requestsBefore = mainRequests(model).count

        let resumed = try patina.run(["batch", "resume", "latest", "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let batch = try #require(try JSONSerialization.jsonObject(with: Data(resumed.stdout.utf8)) as? [String: Any])
        #expect(batch["status"] as? String == "succeeded")
        #expect((batch["replaced_runs"] as? [Any] ?? []).isEmpty, "the run went on; none was replaced")
        let runs = batch["runs"] as? [[String: Any]] ?? []
        let run = try #require(runs.first)
        #expect(runs.count == 1)
        #expect(run["id"] as? String == id, "the same run, not a new one")
        #expect(run["status"] as? String == "succeeded", "\(run["reason"] ?? "")")
        #expect((run["rounds"] as? [[String: Any]])?.map { $0["round"] as? Int } == [1, 2, 3], "\(run["rounds"] ?? "")")
        #expect(run["passed_at_round"] as? Int == 3)
        #expect(run["stop_reason"] as? String == "passed")
        #expect((run["cost_usd"] as? Double ?? 0) > costBefore, "every round's cost counts")
        #expect((run["duration_s"] as? Double ?? 0) > (before?["duration_s"] as? Double ?? 0), "the whole run's time counts")
        // Round 3 continued the conversation with the follow-up for an interrupted round.
        let opening = try #require(mainRequests(model).dropFirst(requestsBefore).first)
        #expect((opening["last_user_text"] as? String ?? "").contains("Round 2 was interrupted before the check"), "\(opening)")
        #expect((opening["last_user_text"] as? String ?? "").contains("round 3 of 3"))
        #expect((opening["turn"] as? Int ?? 0) >= 2, "the same conversation, not a new one")
        #expect(try repo.git("rev-parse", "session-\(id)-round-3^{commit}") == run["head_commit"] as? String)
        #expect(try repo.git("rev-parse", "session-\(id)-round-1^{commit}") != run["head_commit"] as? String)
        #expect(try repo.git("show", "\(run["branch"] as? String ?? ""):value.txt") == "42")
        #expect(try repo.git("branch", "--list", "patina/*").split(separator: "\n").count == 1, "no second branch")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func aBatchWithRoundsReportsPassAtOneBesideAllRounds() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let model = try FakeModel(byTask: [
            (match: "quick", turns: [Self.write("42"), .text("Set it.")]),
            (match: "slow", turns: [Self.write("41"), .text("Set it."), Self.write("42"), .text("Fixed it.")]),
        ])
        try repo.write("../tasks.jsonl", """
            {"task": "quick: set the value", "name": "quick"}
            {"task": "slow: set the value", "name": "slow", "rounds": 2}

            """)
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let out = try patina.run(["batch", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                  "--jobs", "2", "--check", "grep -qx 42 value.txt", "--rounds", "3",
                                  repo.root.appendingPathComponent("tasks.jsonl").path])
        #expect(out.status == 0, "\(out.stderr)")
        let batches = try JSONSerialization.jsonObject(with: Data(try patina.run(["batches", "--json"]).stdout.utf8)) as? [[String: Any]]
        let batch = try #require(batches?.first)
        let runs = batch["runs"] as? [[String: Any]] ?? []
        let byName = Dictionary(uniqueKeysWithValues: runs.map { ($0["name"] as? String ?? "", $0) })
        #expect(byName["quick"]?["passed_at_round"] as? Int == 1)
        #expect(byName["slow"]?["passed_at_round"] as? Int == 2)
        #expect((byName["slow"]?["options"] as? [String: Any])?["rounds"] as? Int == 2, "a line's rounds win over the flag's")
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let directory = store.root.appendingPathComponent("batches/\(batch["id"] as? String ?? "")")
        let report = try String(contentsOf: directory.appendingPathComponent("report.md"), encoding: .utf8)
        #expect(report.contains("pass@1 1/2 (50%), after all rounds 2/2 (100%), mean rounds to pass 1.5"), "\(report)")
        #expect(report.contains("2 of 2 rounds used, passed at round 2"), "\(report)")
        let shown = try patina.run(["batch", "show", "latest"])
        #expect(shown.stdout.contains("passed r2"), "\(shown.stdout)")
    }

    @Test func aPatinaKilledInRoundTwoLeavesARunTheNextCommandCollectsWithItsRounds() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "value.txt": "0\n"])
        let model = try FakeModel(script: [
            Self.write("41"), .text("Set the value."),
            .bash("printf '42\\n' > value.txt && tail -f /dev/null"), .text("unreachable"),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = try StartedPatina(patina, ["yolo", "--agent-binary", TestEnvironment.claudeBinary.path, "--base-image", TestEnvironment.baseImage,
                                                  "--check", "grep -qx 42 value.txt", "--rounds", "3", "set the value"])
        started.wait(until: { mainRequests(model).contains { ($0["turn"] as? Int) == 2 } }, settle: 1)
        started.kill()

        let listed = try patina.run(["runs", "--json"])
        #expect(listed.stderr.contains("collected it"), "\(listed.stderr)")
        let runs = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        let run = try #require(runs.first)
        #expect(run["status"] as? String == "interrupted", "\(run)")
        #expect(run["stop_reason"] as? String == "interrupted")
        let rounds = run["rounds"] as? [[String: Any]] ?? []
        #expect(rounds.map { $0["round"] as? Int } == [1, 2], "\(run)")
        #expect(run["commits"] as? Int == 2, "round 1's commit and round 2's leftovers")
        let id = run["id"] as? String ?? ""
        #expect(try repo.git("show", "\(run["branch"] as? String ?? ""):value.txt") == "42")
        #expect(try repo.git("rev-parse", "session-\(id)-end^{commit}") == run["head_commit"] as? String)
        #expect(try repo.git("rev-parse", "session-\(id)-round-2^{commit}") == run["head_commit"] as? String)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }
}
