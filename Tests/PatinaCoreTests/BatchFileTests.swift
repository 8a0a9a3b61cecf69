import Foundation
import Testing
@testable import PatinaCore

@Suite struct BatchFileTests {
    @Test func textFileSkipsBlankAndCommentLines() throws {
        let tasks = try BatchFile.parse("first task\n\n# a comment\n  second task  \n", path: "t.txt", jsonLines: false)
        #expect(tasks.map(\.task) == ["first task", "second task"])
        #expect(tasks.map(\.line) == [1, 4])
    }

    @Test func jsonLinesKeysWinOverFlags() throws {
        let text = """
            {"task": "a", "name": "A", "attempts": 2, "models": ["m1", "m2"], "timeout": "5m", "max_turns": 3, "check": "make test", "allow": "pypi.org"}
            {"task": "b", "model": "m3", "base": "HEAD~1"}
            """
        let tasks = try BatchFile.parse(text, path: "t.jsonl", jsonLines: true)
        var defaults = YoloOptions(task: "")
        defaults.check = "true"
        defaults.allow = ["example.org"]
        defaults.timeout = "1m"
        let items = try BatchPlanner.items(tasks: tasks, defaults: defaults, attempts: 1, models: ["default-model"], path: "t.jsonl")
        #expect(items.count == 5)
        let a = items.filter { $0.taskIndex == 0 }
        #expect(a.map(\.model) == ["m1", "m1", "m2", "m2"])
        #expect(a.map(\.attempt) == [1, 2, 1, 2])
        #expect(a.allSatisfy { $0.options.check == "make test" && $0.options.timeout == "5m" && $0.options.maxTurns == 3 })
        #expect(a.first?.options.allow == ["example.org", "pypi.org"])
        #expect(a.first?.label == "A")
        let b = try #require(items.last)
        #expect(b.model == "m3" && b.options.base == "HEAD~1" && b.options.check == "true" && b.options.timeout == "1m")
    }

    @Test(arguments: [
        (#"{"task": "a", "attempts": true}"#, "\"attempts\" must be a whole number"),
        (#"{"task": "a", "attempts": 1.5}"#, "\"attempts\" must be a whole number"),
        (#"{"task": "a", "attempts": 101}"#, "between 1 and 100"),
        (#"{"task": ""}"#, "\"task\" is missing or empty"),
        (#"{"name": "x"}"#, "\"task\" is missing or empty"),
        (#"{"task": "a", "model": "x", "models": ["y"]}"#, "not both"),
        (#"{"task": "a", "models": []}"#, "at least one model"),
        (#"{"task": "a", "allow": [1]}"#, "\"allow\" must be a string or a list"),
        (#"["task"]"#, "not a JSON object"),
        (#"{"task": "a", "colour": "red"}"#, "unknown key \"colour\""),
    ])
    func badLinesNameFileAndLine(line: String, expected: String) {
        #expect {
            try BatchFile.parse("{\"task\": \"fine\"}\n" + line + "\n", path: "b.jsonl", jsonLines: true)
        } throws: { error in
            "\(error)".hasPrefix("b.jsonl:2: ") && "\(error)".contains(expected)
        }
    }

    @Test func defaultJobsFollowTheMemoryLimit() {
        let small = BatchPlanner.defaultJobs(memoryLimit: "256m")
        let large = BatchPlanner.defaultJobs(memoryLimit: "4096g")
        #expect(small >= 1 && small <= ProcessInfo.processInfo.activeProcessorCount * 2)
        #expect(large == 1)
    }

    @Test func unfinishedItemsAreThoseNeverStartedOrInterrupted() {
        var batch = BatchRecord(id: "20261201-000000-b-abcd", started: Date(), jobs: 1, inputs: BatchInputs(file: nil, check: nil, items: [
            BatchItem(taskIndex: 0, name: nil, task: "a", attempt: 1, model: nil, options: YoloOptions(task: "a")),
            BatchItem(taskIndex: 0, name: nil, task: "a", attempt: 2, model: nil, options: YoloOptions(task: "a")),
            BatchItem(taskIndex: 1, name: nil, task: "b", attempt: 1, model: nil, options: YoloOptions(task: "b")),
            BatchItem(taskIndex: 2, name: nil, task: "c", attempt: 1, model: nil, options: YoloOptions(task: "c")),
        ]))
        func run(_ id: String, _ status: RunStatus) -> RunRecord {
            var r = RunRecord(
                id: id, task: "t", status: status, reason: nil, branch: "patina/\(id)", baseCommit: "0", headCommit: nil,
                repository: "/r", worktree: "/w", runDir: "/d", sessionLog: "/s", transcript: nil, started: Date(),
                finished: nil, durationS: nil, costUSD: nil, numTurns: nil, tokens: nil, model: nil, maxTurns: nil,
                timeoutS: 60, image: nil, baseImage: "x", exitCode: nil, claudeSessionID: nil)
            r.batch = batch.id
            return r
        }
        batch.inputs.items[0].runID = "r0"
        batch.inputs.items[1].runID = "r1"
        batch.inputs.items[2].runID = "r2"
        batch.runs = [run("r0", .succeeded), run("r1", .interrupted), run("r2", .failed)]
        #expect(batch.unfinishedItems(includingFailed: false) == [1, 3])
        #expect(batch.unfinishedItems(includingFailed: true) == [1, 2, 3])
    }
}
