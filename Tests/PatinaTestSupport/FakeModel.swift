import Foundation
import PatinaSandbox

/// The scripted fake of the Anthropic Messages API (Tests/Fixtures/fake_anthropic.py),
/// listening on the docker bridge gateway so the real Claude Code CLI inside the
/// sandbox reaches it through ANTHROPIC_BASE_URL.
public final class FakeModel: @unchecked Sendable {
    public let host: String
    public let port: Int
    public let recordFile: URL
    private let process: Process
    private let directory: URL

    /// One turn of the script: tool calls, or the final text.
    public enum Turn {
        case bash(String)
        case tools([(name: String, input: [String: Any])])
        case text(String)
        /// The turn, answered after `seconds`.
        indirect case delayed(Turn, seconds: Double)
        /// The first `times` requests for this turn get HTTP `status` (429: rate limit), later ones the turn.
        indirect case failing(Turn, status: Int, times: Int)
        /// The turn, reporting this usage (input_tokens, output_tokens, cache_read_input_tokens, …).
        indirect case usage(Turn, [String: Int])

        var json: [String: Any] {
            switch self {
            case .bash(let command): return ["tool": "Bash", "input": ["command": command, "description": "run a command"]]
            case .tools(let calls): return ["tools": calls.map { ["tool": $0.name, "input": $0.input] }]
            case .text(let text): return ["text": text]
            case .delayed(let turn, let seconds): return turn.json.merging(["delay": seconds]) { $1 }
            case .usage(let turn, let usage): return turn.json.merging(["usage": usage]) { $1 }
            case .failing(let turn, let status, let times):
                let type = status == 429 ? "rate_limit_error" : status == 529 ? "overloaded_error" : "api_error"
                return turn.json.merging([
                    "error": ["status": status, "type": type, "message": "fake_anthropic: scripted \(status)"],
                    "error_times": times,
                ]) { $1 }
            }
        }
    }

    /// One script per task: a conversation whose task contains `match` follows `turns`.
    public convenience init(byTask scripts: [(match: String, turns: [Turn])], fallback: [Turn] = [], host: String? = nil) throws {
        try self.init(json: [
            "turns": fallback.map(\.json),
            "by_task": scripts.map { ["match": $0.match, "turns": $0.turns.map(\.json)] },
        ], host: host)
    }

    public convenience init(script turns: [Turn], host: String? = nil) throws {
        try self.init(json: ["turns": turns.map(\.json)], host: host)
    }

    init(json script: [String: Any], host: String?) throws {
        let host = host ?? Self.bridgeGateway()
        self.host = host
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fake-model-\(UUID().uuidString.prefix(8))")
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let scriptFile = directory.appendingPathComponent("script.json")
        recordFile = directory.appendingPathComponent("record.jsonl")
        let portFile = directory.appendingPathComponent("port")
        let data = try JSONSerialization.data(withJSONObject: script)
        try data.write(to: scriptFile)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestEnvironment.fixtures.appendingPathComponent("fake_anthropic.py").path,
                             "--host", host, "--port", "0", "--script", scriptFile.path,
                             "--record", recordFile.path, "--port-file", portFile.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: {
            let log = directory.appendingPathComponent("server.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            return log
        }())
        try process.run()
        var port = 0
        for _ in 0..<100 {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                port = p
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        guard port > 0 else {
            process.terminate()
            throw ProcessRunner.Failure(description: "fake model did not start on \(host)")
        }
        self.port = port
    }

    deinit {
        // SIGKILL: children started from a test's worker thread inherit its
        // blocked signal mask, so SIGTERM would stay pending forever.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Swaps the script: the fake re-reads it on every request.
    public func update(script turns: [Turn]) throws {
        let data = try JSONSerialization.data(withJSONObject: ["turns": turns.map(\.json)])
        try data.write(to: directory.appendingPathComponent("script.json"), options: .atomic)
    }

    /// Sets a top-level key of the script (e.g. "usage", "event_delay"), keeping the rest.
    public func setScriptKey(_ key: String, _ value: Any) throws {
        let url = directory.appendingPathComponent("script.json")
        var script = (try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]) ?? [:]
        script[key] = value
        try JSONSerialization.data(withJSONObject: script).write(to: url, options: .atomic)
    }

    /// The usage every answer reports (input_tokens, output_tokens, cache_read_input_tokens, …).
    public func setUsage(_ usage: [String: Int]) throws { try setScriptKey("usage", usage) }

    /// Seconds between the events of every streamed answer.
    public func setEventDelay(_ seconds: Double) throws { try setScriptKey("event_delay", seconds) }

    public var baseURL: String { "http://\(host):\(port)" }

    /// Every request the fake received, as recorded JSON objects.
    public func requests() -> [[String: Any]] {
        records().filter { $0["kind"] as? String != "stream_end" }
    }

    /// Every line of the record: requests, and `stream_end` lines (seq, time) for streamed answers.
    public func records() -> [[String: Any]] {
        guard let text = try? String(contentsOf: recordFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    /// Messages API requests it answered with a message (not an error): path, model, usage.
    public func answeredMessages() -> [[String: Any]] {
        requests().filter { $0["path"] as? String == "/v1/messages" && $0["usage"] != nil && $0["answered"] as? String != "error" }
    }

    /// The text of every tool result the agent sent back, in order (each
    /// request carries the whole history; only its newest results count).
    public func toolResults() -> [String] {
        requests().filter { $0["kind"] as? String == "main" }.flatMap { request -> [String] in
            (request["new_tool_results"] as? [Any] ?? []).map { item in
                if let s = item as? String { return s }
                if let d = item as? [String: Any] { return (d["content"] as? String) ?? (d["text"] as? String) ?? "\(d)" }
                return "\(item)"
            }
        }
    }

    public static func bridgeGateway() -> String {
        let out = try? ProcessRunner.run(["docker", "network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"])
        let gw = out?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if !gw.isEmpty { return gw }
        // Older engines leave the gateway out of IPAM: take docker0's own address.
        return HostNetwork.ipv4Address(of: "docker0") ?? "172.17.0.1"
    }
}
