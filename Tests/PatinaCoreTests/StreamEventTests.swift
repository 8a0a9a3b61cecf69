import Foundation
import Testing
@testable import PatinaCore

@Suite struct StreamEventTests {
    @Test func initLine() {
        let line = #"{"type":"system","subtype":"init","session_id":"abc","model":"claude-sonnet-4-5","tools":["Bash","Read"],"cwd":"/workspace"}"#
        #expect(StreamEvent.parse(line) == [.initialized(sessionID: "abc", model: "claude-sonnet-4-5", tools: 2)])
    }

    @Test func assistantToolUseIsSummarised() {
        let line = #"{"type":"assistant","message":{"id":"m1","model":"x","content":[{"type":"text","text":"Let me commit."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"git add a.txt\ngit commit -m 'add a'"}}],"usage":{"input_tokens":10,"output_tokens":5}}}"#
        let events = StreamEvent.parse(line)
        #expect(events.count == 2)
        #expect(events[0] == .assistantText("Let me commit."))
        #expect(events[1] == .toolUse(id: "t1", name: "Bash", summary: "git add a.txt ⏎ git commit -m 'add a'"))
    }

    @Test func toolResultWithErrorAndBlocks() {
        let line = #"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"permission denied"}]}]}}"#
        #expect(StreamEvent.parse(line) == [.toolResult(id: "t1", isError: true, text: "permission denied")])
    }

    @Test func resultLine() {
        let line = #"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"total_cost_usd":0.0123,"duration_ms":1500,"result":"Done.","session_id":"abc","usage":{"input_tokens":100,"output_tokens":20,"cache_read_input_tokens":7,"cache_creation_input_tokens":3}}"#
        guard case .result(let summary) = StreamEvent.parse(line).first else {
            Issue.record("no result event")
            return
        }
        #expect(summary.subtype == "success")
        #expect(!summary.isError)
        #expect(summary.numTurns == 3)
        #expect(summary.costUSD == 0.0123)
        #expect(summary.tokens.input == 100 && summary.tokens.output == 20 && summary.tokens.cacheRead == 7 && summary.tokens.cacheCreation == 3)
        #expect(summary.text == "Done.")
    }

    @Test(arguments: [
        "not json at all",
        #"{"type":"assistant","message":{"content":[{"type":"tool_use","na"#,  // truncated
        "[1,2,3]",
        #"{"type": 42}"#,
    ])
    func malformedOrOddLinesNeverCrash(line: String) {
        let events = StreamEvent.parse(line)
        #expect(events.count <= 1)
        if case .malformed = events.first { } else if case .other = events.first { } else {
            Issue.record("unexpected \(events)")
        }
    }

    @Test func emptyLineIsIgnored() {
        #expect(StreamEvent.parse("   ").isEmpty)
    }

    @Test func recorderKeepsEveryLineAndCountsTurns() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("session.jsonl")
        let recorder = try SessionRecorder(sessionLog: log, progress: nil)
        let lines = [
            #"{"type":"system","subtype":"init","session_id":"s1","model":"claude-sonnet-4-5","tools":[]}"#,
            #"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}],"usage":{"input_tokens":1000,"output_tokens":100}}}"#,
            "garbage {",
            #"{"type":"assistant","message":{"id":"m2","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":1000,"output_tokens":100}}}"#,
            #"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"total_cost_usd":0.5,"usage":{}}"#,
        ]
        for line in lines { recorder.receive(line) }
        recorder.close()
        let written = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(written == lines)
        #expect(recorder.turns == 2)
        #expect(recorder.malformedLines == 1)
        #expect(recorder.sessionID == "s1")
        #expect(recorder.result?.costUSD == 0.5)
    }

    @Test func recorderRedactsCredentialsFromEveryLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("session.jsonl")
        let key = "sk-ant-api03-real\"key\\x"
        let recorder = try SessionRecorder(sessionLog: log, progress: nil, redactor: Redactor(secrets: [key]))
        let line = try String(decoding: JSONSerialization.data(withJSONObject: ["type": "user", "text": "env: ANTHROPIC_API_KEY=\(key)"]), as: UTF8.self)
        recorder.receive(line)
        recorder.receive("plain \(key) text")
        recorder.close()
        let written = try String(contentsOf: log, encoding: .utf8)
        #expect(!written.contains("real"), "\(written)")
        #expect(written.contains("ANTHROPIC_API_KEY=[redacted]") && written.contains("plain [redacted] text"))
        // Still JSON.
        #expect(try JSONSerialization.jsonObject(with: Data(written.split(separator: "\n")[0].utf8)) is [String: Any])
    }
}
