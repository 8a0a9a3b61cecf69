import Foundation
import PatinaTestSupport
import Synchronization
import Testing
@testable import PatinaModelProxy

/// The proxy between real sockets: a raw HTTP client on one side, the scripted fake
/// Messages API (Tests/Fixtures/fake_anthropic.py) on the other, both on loopback.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ModelProxyTests {
    static let realKey = "sk-ant-real-key-held-by-patina-only"

    final class Events: Sendable {
        let list = Mutex<[ModelProxyEvent]>([])
        var unreachable: [String] {
            list.withLock { $0.compactMap { if case .unreachable(let why) = $0 { why } else { nil } } }
        }
    }

    static func proxy(upstream: String, scheme: UpstreamCredential.Scheme = .apiKey, maxCost: Double? = nil,
                      sharedLimit: SpendingLimit? = nil, apiLog: URL? = nil, events: Events = Events()) throws -> ModelProxy {
        var configuration = ModelProxyConfiguration(
            listenAddress: "127.0.0.1", upstream: URL(string: upstream)!,
            credential: UpstreamCredential(scheme: scheme, value: realKey),
            placeholder: ModelProxyConfiguration.makePlaceholder(scheme: scheme),
            prices: try PriceTableTests.shipped(), maxCostUSD: maxCost, sharedLimit: sharedLimit, apiLog: apiLog)
        configuration.unreachableGraceSeconds = 30
        return try ModelProxy(configuration: configuration) { event in events.list.withLock { $0.append(event) } }
    }

    static func messagesBody(model: String = "claude-sonnet-4-5", stream: Bool = true, tools: Bool = true) -> Data {
        var body: [String: Any] = [
            "model": model, "max_tokens": 100, "stream": stream,
            "messages": [["role": "user", "content": "say hi"]],
        ]
        if tools { body["tools"] = [["name": "Bash", "description": "run", "input_schema": ["type": "object"]]] }
        return try! JSONSerialization.data(withJSONObject: body)
    }

    static func send(_ proxy: ModelProxy, path: String = "/v1/messages?beta=true", method: String = "POST",
                     key: String? = nil, bearer: String? = nil, body: Data = messagesBody()) throws -> RawHTTP.Response {
        var headers = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]
        if let key { headers.append(("x-api-key", key)) }
        if let bearer { headers.append(("Authorization", "Bearer \(bearer)")) }
        return try RawHTTP.send(port: proxy.port, method: method, target: path, headers: headers, body: body)
    }

    @Test func forwardsWithTheRealKeyAndCountsWhatTheAnswerUsed() throws {
        let fake = try FakeModel(script: [.text("hello there")], host: "127.0.0.1")
        try fake.setUsage(["input_tokens": 1234, "output_tokens": 56, "cache_read_input_tokens": 700, "cache_creation_input_tokens": 80])
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("api-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: log) }
        let proxy = try Self.proxy(upstream: fake.baseURL, apiLog: log)
        defer { proxy.stop() }

        let response = try Self.send(proxy, key: proxy.configuration.placeholder)
        #expect(response.status == 200)
        #expect(response.header("content-type")?.hasPrefix("text/event-stream") == true)
        #expect(response.text.contains("hello there"))
        #expect(response.text.contains("event: message_stop"))

        // The fake received the real key, never the placeholder, and the query string.
        let requests = fake.requests().filter { $0["path"] as? String == "/v1/messages" }
        #expect(requests.count == 1)
        #expect(requests.first?["x_api_key"] as? String == Self.realKey)
        #expect(requests.first?["query"] as? String == "beta=true")

        // Usage as the fake reported it, priced by the table.
        let usage = proxy.usage
        #expect(usage.requests == 1 && usage.turns == 1)
        #expect(usage.usage == APIUsage(inputTokens: 1234, outputTokens: 56, cacheReadTokens: 700, cacheWriteTokens: 80))
        let expected = (1234 * 3.0 + 56 * 15.0 + 700 * 0.3 + 80 * 3.75) / 1_000_000
        #expect(usage.costUSD == expected)
        proxy.stop()
        let entries = APILogEntry.read(log)
        #expect(entries.count == 1)
        #expect(entries.first?.model == "claude-sonnet-4-5" && entries.first?.status == 200 && entries.first?.stream == true)
        #expect(entries.first?.usage?.outputTokens == 56 && entries.first?.costUSD == expected)
        #expect(entries.first?.firstByteMS != nil && entries.first!.latencyMS >= entries.first!.firstByteMS!)
        #expect(!((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains(Self.realKey))
    }

    @Test func bearerCredentialsGoUpstreamAsBearer() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL, scheme: .bearer)
        defer { proxy.stop() }
        let response = try Self.send(proxy, bearer: proxy.configuration.placeholder, body: Self.messagesBody(stream: false))
        #expect(response.status == 200)
        #expect(response.text.contains("\"usage\""))
        let request = try #require(fake.requests().first)
        #expect(request["authorization"] as? String == "Bearer \(Self.realKey)")
        #expect(request["x_api_key"] is NSNull || request["x_api_key"] == nil)
    }

    @Test func anyOtherCredentialIsRefusedAndNothingIsForwarded() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        for attempt in [try Self.send(proxy), try Self.send(proxy, key: "sk-ant-guess"), try Self.send(proxy, key: Self.realKey),
                        try Self.send(proxy, bearer: proxy.configuration.placeholder + "x")] {
            #expect(attempt.status == 401)
            #expect(attempt.text.contains("authentication_error"))
        }
        #expect(fake.requests().isEmpty)
        #expect(proxy.usage.refusedCredential == 4)
    }

    @Test func onlyTheMessagesAPIIsForwarded() throws {
        let fake = try FakeModel(script: [.text("hi")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        let key = proxy.configuration.placeholder
        #expect(try Self.send(proxy, path: "/v1/models", method: "GET", key: key, body: Data()).status == 404)
        #expect(try Self.send(proxy, path: "/v1/messages/batches", key: key).status == 404)
        #expect(try Self.send(proxy, path: "/v1/files", key: key).status == 404)
        #expect(fake.requests().isEmpty)
        let count = try Self.send(proxy, path: "/v1/messages/count_tokens", key: key, body: Self.messagesBody(stream: false))
        #expect(count.status == 200 && count.text.contains("input_tokens"))
        // Counting tokens costs nothing and is not a turn.
        #expect(proxy.usage.turns == 0 && proxy.usage.usage == APIUsage() && proxy.usage.costUSD == 0)
    }

    @Test func aSlowStreamReachesTheClientAsItArrives() throws {
        let fake = try FakeModel(script: [.text(String(repeating: "slowly streamed words ", count: 12))], host: "127.0.0.1")
        try fake.setEventDelay(0.25)
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        let response = try Self.send(proxy, key: proxy.configuration.placeholder)
        #expect(response.status == 200)
        let firstByte = try #require(response.firstBodyAt)
        // About 12 events 0.25 s apart: the first arrives seconds before the last.
        #expect(response.endAt - firstByte > 2, "first byte at \(firstByte)s, end at \(response.endAt)s")
        #expect(firstByte < 1, "the first event was held back: \(firstByte)s")
    }

    @Test func aSpentBudgetRefusesFurtherRequests() throws {
        let fake = try FakeModel(script: [.bash("true"), .bash("true"), .text("done")], host: "127.0.0.1")
        try fake.setUsage(["input_tokens": 1_000_000, "output_tokens": 0])
        let proxy = try Self.proxy(upstream: fake.baseURL, maxCost: 2.5)
        defer { proxy.stop() }
        let key = proxy.configuration.placeholder
        #expect(try Self.send(proxy, key: key).status == 200)  // $3: past the budget once answered
        let refused = try Self.send(proxy, key: key)
        #expect(refused.status == 402)
        #expect(refused.text.contains("billing_error") && refused.text.contains("--max-cost"))
        #expect(refused.header("x-should-retry") == "false")
        #expect(fake.requests().count == 1)
        #expect(proxy.usage.costUSD == 3 && proxy.usage.refusedForBudget == 1)
        #expect(proxy.usage.budgetExceeded?.contains("$2.50") == true)
        // Counting tokens stays possible (it costs nothing).
        #expect(try Self.send(proxy, path: "/v1/messages/count_tokens", key: key).status == 200)
    }

    @Test func aBatchBudgetIsSharedAcrossRuns() throws {
        let fake = try FakeModel(script: [.text("done")], host: "127.0.0.1")
        try fake.setUsage(["input_tokens": 1_000_000, "output_tokens": 0])
        let limit = SpendingLimit(limitUSD: 5)
        let first = try Self.proxy(upstream: fake.baseURL, sharedLimit: limit)
        let second = try Self.proxy(upstream: fake.baseURL, sharedLimit: limit)
        defer { first.stop(); second.stop() }
        #expect(try Self.send(first, key: first.configuration.placeholder).status == 200)
        #expect(try Self.send(second, key: second.configuration.placeholder).status == 200)
        #expect(limit.spentUSD == 6 && limit.isReached)
        #expect(try Self.send(first, key: first.configuration.placeholder).status == 402)
        #expect(try Self.send(second, key: second.configuration.placeholder).text.contains("--max-total-cost"))
    }

    @Test func aModelWithoutAPriceHasNoCostAndIsRefusedUnderABudget() throws {
        let fake = try FakeModel(script: [.text("done")], host: "127.0.0.1")
        let open = try Self.proxy(upstream: fake.baseURL)
        defer { open.stop() }
        #expect(try Self.send(open, key: open.configuration.placeholder, body: Self.messagesBody(model: "claude-nonesuch-9")).status == 200)
        #expect(open.usage.costUSD == nil)
        #expect(open.usage.unpriced == ["no price for model claude-nonesuch-9"])

        let budgeted = try Self.proxy(upstream: fake.baseURL, maxCost: 10)
        defer { budgeted.stop() }
        let refused = try Self.send(budgeted, key: budgeted.configuration.placeholder, body: Self.messagesBody(model: "claude-nonesuch-9"))
        #expect(refused.status == 400 && refused.text.contains("model_prices"))
        #expect(budgeted.usage.refusedUnpriced?.contains("claude-nonesuch-9") == true)
        #expect(fake.requests().count == 1)
    }

    @Test func anUnreachableUpstreamIsDeclaredAfterThreeFailures() throws {
        // A port on loopback where nothing listens.
        let dead = try Socket.listen(address: "127.0.0.1")
        let deadPort = dead.port
        _ = consume dead
        let events = Events()
        let proxy = try Self.proxy(upstream: "http://127.0.0.1:\(deadPort)", events: events)
        defer { proxy.stop() }
        for attempt in 1...3 {
            let response = try Self.send(proxy, key: proxy.configuration.placeholder)
            #expect(response.status == 502)
            #expect(response.text.contains("could not reach http://127.0.0.1:\(deadPort)"))
            #expect(events.unreachable.count == (attempt == 3 ? 1 : 0))
        }
        #expect(proxy.usage.unreachable?.contains("127.0.0.1:\(deadPort)") == true)
    }

    @Test func certificatesAreVerified() throws {
        let server = try SelfSignedHTTPS()
        defer { server.stop() }
        let proxy = try Self.proxy(upstream: "https://127.0.0.1:\(server.port)")
        defer { proxy.stop() }
        let response = try Self.send(proxy, key: proxy.configuration.placeholder)
        #expect(response.status == 502)
        #expect(response.text.lowercased().contains("certificate"), "\(response.text)")
        #expect(server.requests == 0)
    }

    /// A run's model often thinks for a minute before its first byte; all that time the
    /// proxy must sleep, not spin (it once burned ~1 s of CPU per second of waiting).
    @Test func waitingForASlowModelCostsNoCPU() throws {
        let fake = try FakeModel(script: [.delayed(.text("after a long think"), seconds: 3)], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        let cpuBefore = Self.processCPUSeconds()
        let started = Date()
        let response = try Self.send(proxy, key: proxy.configuration.placeholder)
        let wall = Date().timeIntervalSince(started)
        let cpu = Self.processCPUSeconds() - cpuBefore
        #expect(response.status == 200 && response.text.contains("after a long think"))
        #expect(wall >= 2.9)
        #expect(cpu < 0.5, "\(cpu) s of CPU while waiting \(wall) s for the model")
    }

    @Test func aLineBreakInAnUpstreamHeaderCannotStartAnotherHeader() {
        #expect(HTTPResponseWriter.clean("v\r\nSet-Cookie: x") == "v  Set-Cookie: x")
        #expect(HTTPResponseWriter.clean("v\nX: y\r") == "v X: y ")
        #expect(HTTPResponseWriter.clean("plain value") == "plain value")
    }

    /// User and system time of this whole process so far.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    @Test func stoppingCutsAnAnswerInFlight() throws {
        let fake = try FakeModel(script: [.text(String(repeating: "a long slow answer ", count: 40))], host: "127.0.0.1")
        try fake.setEventDelay(0.5)
        let proxy = try Self.proxy(upstream: fake.baseURL)
        let started = Date()
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { proxy.stop() }
        // The answer would take ~10 s; the client sees the connection end soon after the stop.
        _ = try? Self.send(proxy, key: proxy.configuration.placeholder)
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(!proxy.isRunning)
        // Nothing listens any more (the accepting thread notices within 0.1 s).
        Thread.sleep(forTimeInterval: 0.3)
        #expect(throws: (any Error).self) { try RawHTTP.connect(port: proxy.port) }
    }

    @Test func anHTTP10ClientGetsABodyThatEndsWithTheConnection() throws {
        let fake = try FakeModel(script: [.text("old client")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        let response = try RawHTTP.send(port: proxy.port, method: "POST", target: "/v1/messages", headers: [
            ("content-type", "application/json"), ("x-api-key", proxy.configuration.placeholder),
        ], body: Self.messagesBody(), version: "HTTP/1.0")
        #expect(response.status == 200)
        #expect(response.header("transfer-encoding") == nil && response.header("connection") == "close")
        #expect(response.text.hasPrefix("event: message_start") && response.text.contains("old client"))
    }

    @Test func oneConnectionCarriesSeveralRequests() throws {
        let fake = try FakeModel(script: [.text("again")], host: "127.0.0.1")
        let proxy = try Self.proxy(upstream: fake.baseURL)
        defer { proxy.stop() }
        let responses = try RawHTTP.sendKeepAlive(port: proxy.port, count: 3, headers: [
            ("content-type", "application/json"), ("x-api-key", proxy.configuration.placeholder),
        ], body: Self.messagesBody())
        #expect(responses.map(\.status) == [200, 200, 200])
        #expect(responses.allSatisfy { $0.text.contains("again") })
        #expect(proxy.usage.requests == 3)
    }
}
