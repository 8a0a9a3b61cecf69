// Over 450 lines on purpose: the proxy's request path (credential swap, budget, API policy, accounting) reads top to bottom as one security boundary.
import Foundation
import Synchronization

/// The real credential, held by patina only: sent upstream by the proxy, never
/// printed (its description says which kind it is, not its value).
public struct UpstreamCredential: Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        /// `x-api-key: VALUE` (ANTHROPIC_API_KEY).
        case apiKey
        /// `Authorization: Bearer VALUE` (CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_AUTH_TOKEN).
        case bearer
    }

    public let scheme: Scheme
    let value: String

    public init(scheme: Scheme, value: String) {
        self.scheme = scheme
        self.value = value
    }

    public var description: String { "\(scheme.rawValue) credential" }
}

public struct ModelProxyConfiguration: Sendable {
    /// Where the proxy listens (the docker bridge gateway); the port is picked at random.
    public var listenAddress: String
    /// The real endpoint: ANTHROPIC_BASE_URL, default https://api.anthropic.com.
    public var upstream: URL
    public var credential: UpstreamCredential
    /// What the sandbox holds instead of the credential; any other value is refused.
    public var placeholder: String
    public var prices: PriceTable
    public var maxCostUSD: Double?
    public var sharedLimit: SpendingLimit?
    /// api.jsonl; nil writes none.
    public var apiLog: URL?
    /// Values redacted from api.jsonl (every credential patina knows).
    public var secrets: [String]
    /// The upstream counts as unreachable after this many connection failures in a row…
    public var unreachableAfterFailures = 3
    /// …lasting at least this long once a request went through (a blip is not an outage).
    public var unreachableGraceSeconds: Double = 30
    /// Connections, buffered bytes and time a client may hold (per run and per process).
    public var limits = ProxyLimits()
    /// What of the API is forwarded (server-side network features only when allowed).
    public var apiPolicy = APIPolicy()

    public init(listenAddress: String, upstream: URL, credential: UpstreamCredential, placeholder: String,
                prices: PriceTable, maxCostUSD: Double? = nil, sharedLimit: SpendingLimit? = nil,
                apiLog: URL? = nil, secrets: [String] = []) {
        self.listenAddress = listenAddress
        self.upstream = upstream
        self.credential = credential
        self.placeholder = placeholder
        self.prices = prices
        self.maxCostUSD = maxCostUSD
        self.sharedLimit = sharedLimit
        self.apiLog = apiLog
        self.secrets = secrets
    }

    public static let defaultUpstream = URL(string: "https://api.anthropic.com")!

    /// A credential worth nothing anywhere but this run's proxy.
    public static func makePlaceholder(scheme: UpstreamCredential.Scheme) -> String {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        return (scheme == .apiKey ? "sk-ant-api03-" : "sk-ant-oat01-") + "patina-proxy-only-" + random
    }
}

/// What the proxy tells the run as it works.
public enum ModelProxyEvent: Sendable {
    /// A request was answered (by the upstream or by the proxy); the totals after it.
    case answered(APILogEntry, ModelUsage)
    /// The upstream could not be reached, for good: why.
    case unreachable(String)
}

/// The model endpoint of one run, outside the sandbox: serves the Messages API on an
/// address only that run's sandbox may reach, checks the run's placeholder credential,
/// forwards to the real endpoint with the real credential, passes answers (streams
/// too) through as they arrive, and counts what every answer used and cost.
///
/// One thread accepts; each client connection has its own thread (Claude Code keeps
/// a handful open); each upstream request runs on a thread of its own (`Upstream`); a refused
/// connection ends on `Lingering`'s one thread.
public final class ModelProxy: Sendable {
    public let configuration: ModelProxyConfiguration
    public let port: Int
    private let account: Account
    private let log: APILog
    private let upstream: Upstream
    private let onEvent: @Sendable (ModelProxyEvent) -> Void
    private let state = Mutex(State())
    private let connections: QuotaPair
    private let bytesInFlight: QuotaPair
    /// Lines api.jsonl gets for clients refused before their request was read (past it, only counted).
    static let maxRefusedClientLines = 100

    private struct State {
        var running = true
        var seq = 0
        var clients: [ObjectIdentifier: Socket] = [:]
        var failuresInARow = 0
        var firstFailure: Date?
        var everAnswered = false
        var unreachable: String?
        var refusedClientLines = 0
    }

    /// Binds and starts serving at once.
    public init(configuration: ModelProxyConfiguration, onEvent: @escaping @Sendable (ModelProxyEvent) -> Void = { _ in }) throws {
        self.configuration = configuration
        let listener = try Socket.listen(address: configuration.listenAddress)
        port = listener.port
        account = Account(prices: configuration.prices, maxCostUSD: configuration.maxCostUSD, sharedLimit: configuration.sharedLimit)
        log = try APILog(url: configuration.apiLog, secrets: configuration.secrets + [configuration.credential.value])
        upstream = Upstream()
        self.onEvent = onEvent
        let limits = configuration.limits
        connections = QuotaPair(run: Quota(limit: limits.connections), process: limits.process.connections)
        bytesInFlight = QuotaPair(run: Quota(limit: limits.bytesInFlight), process: limits.process.bytesInFlight)
        // The accepting thread owns the listener: it is closed when the loop ends, after stop().
        let accepting = Thread { [self] in acceptLoop(listener) }
        accepting.name = "patina-model-proxy-accept"
        accepting.start()
    }

    /// What the sandbox sets ANTHROPIC_BASE_URL to.
    public var baseURL: String { "http://\(configuration.listenAddress):\(port)" }

    /// The totals so far (final once `stop()` returned).
    public var usage: ModelUsage { account.snapshot }

    public var isRunning: Bool { state.withLock { $0.running } }

    /// Stops accepting, cuts every client connection and upstream request, closes api.jsonl.
    public func stop() {
        let clients = state.withLock { state -> [Socket]? in
            guard state.running else { return nil }
            state.running = false
            return Array(state.clients.values)
        }
        guard let clients else { return }
        for client in clients { client.shutdown() }
        upstream.invalidate()
        log.close()
    }

    // MARK: Connections

    private func acceptLoop(_ listener: Socket) {
        while state.withLock({ $0.running }) {
            guard let client = listener.accept(timeoutMS: 100) else { continue }
            if let refusedBy = connections.reserve(1) {
                // Answered at once, from this thread: no thread of its own, its request never parsed
                // (`Lingering` drops what it sends until it closes).
                let message = refusedBy == "run" ? "too many connections to this run's model proxy (\(configuration.limits.connections))"
                                                 : "too many connections to patina's model proxies"
                refuseClient(client, status: 503, message: message, refused: "connections")
                continue
            }
            let accepted = state.withLock { state -> Bool in
                guard state.running else { return false }
                state.clients[ObjectIdentifier(client)] = client
                return true
            }
            guard accepted else {
                connections.release(1)
                continue
            }
            let thread = Thread { [self] in
                serve(client)
                _ = state.withLock { $0.clients.removeValue(forKey: ObjectIdentifier(client)) }
                connections.release(1)
            }
            thread.name = "patina-model-proxy-client"
            thread.start()
        }
    }

    private func serve(_ client: Socket) {
        let reader = HTTPRequestReader(socket: client, limits: configuration.limits, quota: bytesInFlight)
        while state.withLock({ $0.running }) {
            var request: HTTPRequest
            do {
                guard let head = try reader.nextHead() else { return }
                request = head
            } catch let error as HTTPParseError {
                refuseClient(client, status: error.status, message: error.description, refused: error.refused)
                return
            } catch {
                return  // the client went away
            }
            // The credential and the route are judged from the head: a stranger's body is never read.
            let writer = HTTPResponseWriter(socket: client, keepAlive: request.keepsAlive, chunked: request.version != "HTTP/1.0")
            if let refusal = refusalBeforeBody(request) {
                refuseClient(client, status: refusal.status, message: refusal.message, refused: refusal.refused, request: request,
                             type: refusal.type)
                return
            }
            do {
                if request.header("Expect")?.lowercased() == "100-continue" { try client.write("HTTP/1.1 100 Continue\r\n\r\n") }
                try reader.readBody(of: &request)
            } catch let error as HTTPParseError {
                reader.releaseBody()
                refuseClient(client, status: error.status, message: error.description, refused: error.refused, request: request)
                return
            } catch {
                return
            }
            let connectionUsable = handle(request, writer: writer)
            reader.releaseBody()
            if !connectionUsable || !writer.keepAlive { return }
        }
    }

    /// Answers a client that broke a rule (or found no room) and drops it. It is counted;
    /// api.jsonl gets a line for the first few only, so a client cannot fill the disk.
    private func refuseClient(_ client: Socket, status: Int, message: String, refused: String, request: HTTPRequest? = nil,
                              type: String? = nil) {
        let type = type ?? (status >= 500 ? "overloaded_error" : (status == 413 ? "request_too_large" : "invalid_request_error"))
        // Counted before the client hears of it: what it sends next is judged with this one known.
        if refused != "credential" && refused != "route" { account.countRefusedClient() }
        if request != nil { account.countRequest() }
        defer { Lingering.shared.end(client) }
        let answer = {
            let writer = HTTPResponseWriter(socket: client, keepAlive: false)
            let text = refused == "credential" ? message : "patina's model proxy: \(message)"
            try? writer.complete(status: status, json: Self.errorBody(type: type, message: text),
                                 extraHeaders: [("x-should-retry", status == 503 ? "true" : "false")])
        }
        let logged = state.withLock { state -> Int? in
            guard state.refusedClientLines < Self.maxRefusedClientLines else { return nil }
            state.refusedClientLines += 1
            state.seq += 1
            return state.seq
        }
        guard let seq = logged else { return answer() }
        var entry = APILogEntry(time: Date(), seq: seq, method: request?.method ?? "", path: request?.path ?? "", status: status, latencyMS: 0)
        entry.errorType = type
        entry.errorMessage = message
        entry.refused = refused
        log.append(entry)
        onEvent(.answered(entry, account.snapshot))
        answer()
    }

    struct Refusal {
        let status: Int
        let type: String
        let message: String
        let refused: String
        var feature: String?
    }

    /// What refuses a request on its head alone: a wrong credential, a route not forwarded.
    private func refusalBeforeBody(_ request: HTTPRequest) -> Refusal? {
        guard credentialMatches(request) else {
            account.countRefusedCredential()
            return Refusal(status: 401, type: "authentication_error", message: "invalid x-api-key", refused: "credential")
        }
        guard Self.isForwarded(request) else {
            return Refusal(status: 404, type: "not_found_error",
                           message: "patina's model proxy forwards only POST /v1/messages and /v1/messages/count_tokens (not \(request.method) \(request.path))",
                           refused: "route")
        }
        return nil
    }

    static func isForwarded(_ request: HTTPRequest) -> Bool {
        request.method == "POST" && (request.path == "/v1/messages" || request.path == "/v1/messages/count_tokens")
    }

    /// Answers a refusal with an API-shaped error and logs it; false when the connection is gone.
    private func answerRefusal(_ refusal: Refusal, writer: HTTPResponseWriter, entry: APILogEntry, started: Date) -> Bool {
        var entry = entry
        entry.status = refusal.status
        entry.errorType = refusal.type
        entry.errorMessage = refusal.message
        entry.refused = refusal.refused
        entry.feature = refusal.feature
        if let feature = refusal.feature { account.countRefusedFeature(feature) }
        let headers = [("request-id", "req_patina_\(entry.seq)"), ("x-should-retry", "false")]
        let sent = (try? writer.complete(status: refusal.status, json: Self.errorBody(type: refusal.type, message: refusal.message), extraHeaders: headers)) != nil
        finish(&entry, started: started)
        return sent
    }

    // MARK: One request

    /// Answers one request; false when the connection cannot carry another one.
    private func handle(_ request: HTTPRequest, writer: HTTPResponseWriter) -> Bool {
        let started = Date()
        let seq = state.withLock { state -> Int in
            state.seq += 1
            return state.seq
        }
        account.countRequest()
        var entry = APILogEntry(time: started, seq: seq, method: request.method, path: request.path, status: 0, latencyMS: 0)

        func answer(_ refusal: Refusal) -> Bool {
            answerRefusal(refusal, writer: writer, entry: entry, started: started)
        }

        let isMessages = request.path == "/v1/messages"
        guard let body = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any] else {
            return answer(Refusal(status: 400, type: "invalid_request_error", message: "patina's model proxy: the request body is not a JSON object",
                                  refused: "bad_request"))
        }
        entry.requestedModel = body["model"] as? String
        if isMessages {
            entry.stream = body["stream"] as? Bool ?? false
            entry.tools = (body["tools"] as? [Any])?.count ?? 0
        }
        let beta: String?
        switch configuration.apiPolicy.judge(beta: request.header("anthropic-beta"), body: body) {
        case .refuse(let feature, let message):
            return answer(Refusal(status: 403, type: "permission_error", message: message, refused: "api_feature", feature: feature))
        case .forward(let kept, let dropped):
            beta = kept
            if !dropped.isEmpty { entry.droppedBetas = dropped }
        }
        if isMessages, case .refuse(let status, let type, let message) = account.admit(model: entry.requestedModel) {
            return answer(Refusal(status: status, type: type, message: message, refused: status == 402 ? "budget" : "unpriced_model"))
        }
        if let reason = state.withLock({ $0.unreachable }) {
            return answer(Refusal(status: 502, type: "api_error", message: "patina's model proxy cannot reach \(configuration.upstream.absoluteString): \(reason)",
                                  refused: "unreachable"))
        }
        return forward(request, beta: beta, isMessages: isMessages, entry: &entry, started: started, writer: writer)
    }

    private func forward(_ request: HTTPRequest, beta: String?, isMessages: Bool, entry: inout APILogEntry, started: Date, writer: HTTPResponseWriter) -> Bool {
        var headers = request.headers.filter { !Self.notForwarded.contains($0.name.lowercased()) }
        if let beta { headers.append(("anthropic-beta", beta)) }
        switch configuration.credential.scheme {
        case .apiKey: headers.append(("x-api-key", configuration.credential.value))
        case .bearer: headers.append(("Authorization", "Bearer \(configuration.credential.value)"))
        }
        let upstreamRequest = UpstreamRequest(url: upstreamURL(for: request.target), method: request.method, headers: headers,
                                              body: request.body)

        let (stream, cancel) = upstream.start(upstreamRequest)
        var scanner: AnswerScanner?
        var clientGone = false
        var outcome = true
        var completeAfterCounting = false
        loop: while true {
            switch stream.next() {
            case .head(let status, let headers):
                entry.status = status
                noteAnswered()
                scanner = AnswerScanner(contentType: headers.first { $0.0.lowercased() == "content-type" }?.1)
                do { try writer.head(status: status, headers: headers) } catch {
                    clientGone = true
                    cancel()
                }
            case .data(let data):
                if entry.firstByteMS == nil { entry.firstByteMS = Self.milliseconds(since: started) }
                scanner?.feed(data)
                if !clientGone {
                    do { try writer.chunk(data) } catch {
                        clientGone = true
                        cancel()
                    }
                }
            case .end(let error):
                if clientGone {
                    entry.errorMessage = entry.errorMessage ?? "the client went away before the answer ended"
                    outcome = false
                } else if error != nil, !isRunning {
                    // Cut off by stop(): the run is over, this says nothing about the upstream.
                    entry.errorMessage = "the model proxy stopped before the answer ended"
                    outcome = false
                } else if let error, entry.status == 0 {
                    // Nothing came back: the upstream could not be reached.
                    let reason = Self.reason(error)
                    let status = (error as? UpstreamError)?.timedOut == true ? 504 : 502
                    noteFailure(reason)
                    let message = "patina's model proxy could not reach \(configuration.upstream.absoluteString): \(reason)"
                    outcome = (try? writer.complete(status: status, json: Self.errorBody(type: "api_error", message: message))) != nil
                    entry.status = status
                    entry.errorType = "api_error"
                    entry.errorMessage = message
                    entry.refused = "unreachable"
                } else if let error {
                    // Cut off mid-answer: the client sees the stream end without its last chunk.
                    entry.errorMessage = "the upstream answer broke off: \(Self.reason(error))"
                    outcome = false
                } else if entry.status == 0 {
                    outcome = (try? writer.complete(status: 502, json: Self.errorBody(type: "api_error", message: "patina's model proxy: the upstream sent no answer"))) != nil
                    entry.status = 502
                } else {
                    completeAfterCounting = true
                }
                break loop
            }
        }
        // The answer is counted (and logged) before the client sees its end: the next
        // request it sends is judged against a budget that includes this one.
        if var scanner {
            let summary = scanner.finish()
            entry.model = summary.model
            entry.stopReason = summary.stopReason
            if let type = summary.errorType { entry.errorType = type }
            if let message = summary.errorMessage { entry.errorMessage = message }
            if isMessages { entry.usage = summary.usage }
            let (cost, unpriced) = account.record(status: entry.status, isMessages: isMessages, offeredTools: (entry.tools ?? 0) > 0,
                                                  summary: summary, requestedModel: entry.requestedModel)
            if isMessages, summary.usage != nil {
                entry.costUSD = cost
                entry.unpriced = unpriced
            }
        }
        finish(&entry, started: started)
        if completeAfterCounting { outcome = (try? writer.end()) != nil }
        return outcome
    }

    private func finish(_ entry: inout APILogEntry, started: Date) {
        entry.latencyMS = Self.milliseconds(since: started)
        log.append(entry)
        onEvent(.answered(entry, account.snapshot))
    }

    // MARK: Reachability

    private func noteAnswered() {
        state.withLock { state in
            state.failuresInARow = 0
            state.firstFailure = nil
            state.everAnswered = true
        }
    }

    private func noteFailure(_ reason: String) {
        let declared = state.withLock { state -> Bool in
            guard state.unreachable == nil else { return false }
            state.failuresInARow += 1
            let first = state.firstFailure ?? Date()
            state.firstFailure = first
            let longEnough = !state.everAnswered || Date().timeIntervalSince(first) >= configuration.unreachableGraceSeconds
            guard state.failuresInARow >= configuration.unreachableAfterFailures, longEnough else { return false }
            state.unreachable = reason
            return true
        }
        if declared {
            let described = "\(configuration.upstream.absoluteString) could not be reached: \(reason)"
            account.markUnreachable(described)
            onEvent(.unreachable(described))
        }
    }

    // MARK: Helpers

    /// Headers the client sent that are not passed on: hop-by-hop ones, the ones the
    /// proxy or libcurl sets, and any credential.
    static let notForwarded: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
        "proxy-authorization", "te", "trailer", "upgrade", "expect", "accept-encoding",
        "x-api-key", "authorization", "cookie", "anthropic-beta",
    ]

    private func upstreamURL(for target: String) -> URL {
        var base = configuration.upstream.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return URL(string: base + target) ?? configuration.upstream
    }

    private func credentialMatches(_ request: HTTPRequest) -> Bool {
        var offered: [String] = []
        if let key = request.header("x-api-key") { offered.append(key) }
        if let authorization = request.header("Authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { offered.append(String(parts[1])) }
        }
        return offered.contains { Self.constantTimeEqual($0, configuration.placeholder) }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    static func errorBody(type: String, message: String) -> Data {
        let object: [String: Any] = ["type": "error", "error": ["type": type, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    static func reason(_ error: Error) -> String {
        let text = (error as NSError).localizedDescription
        return text.isEmpty || text == "(null)" ? "\(error)" : text
    }

    static func milliseconds(since start: Date) -> Double {
        (Date().timeIntervalSince(start) * 1_000_000).rounded() / 1000
    }
}
