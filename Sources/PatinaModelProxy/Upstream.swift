import CCurlShim
import Foundation
import Synchronization

/// What arrives from the upstream for one request, in order; the connection's thread
/// takes it from here and writes it to the client as it comes.
final class ResponseStream: Sendable {
    enum Event {
        case head(status: Int, headers: [(String, String)])
        case data(Data)
        case end(Error?)
    }

    private let events = Mutex<[Event]>([])
    /// One signal per event pushed: `next` waits for one, then takes the first event.
    private let arrived = DispatchSemaphore(value: 0)

    func push(_ event: Event) {
        events.withLock { $0.append(event) }
        arrived.signal()
    }

    /// Blocks until the next event.
    func next() -> Event {
        arrived.wait()
        return events.withLock { $0.removeFirst() }
    }
}

/// One request as it goes upstream.
struct UpstreamRequest: Sendable {
    var url: URL
    var method: String
    var headers: [(name: String, value: String)]
    var body: Data
}

/// Why an upstream request got no (whole) answer: libcurl's reason.
struct UpstreamError: LocalizedError, CustomStringConvertible {
    let description: String
    /// No answer within the time allowed (connect, or 10 minutes without a byte).
    let timedOut: Bool

    var errorDescription: String? { description }
}

/// The upstream Messages API through libcurl (TLS verified against the system's
/// certificate store), one blocking transfer per request on its own thread: while the
/// model thinks, that thread sleeps in poll(2). (URLSession on Linux kept a write-ready
/// source armed on every new connection once its request was sent, and spun on it until
/// the answer came: a core's worth of CPU for every request waiting on the model.)
/// Easy handles are kept between requests, so their connections are reused; redirects
/// are never followed (they could carry the credential elsewhere).
final class Upstream: Sendable {
    private struct State {
        var open = true
        var idle: [EasyHandle] = []
        var inFlight: [ObjectIdentifier: Transfer] = [:]
    }
    private let state = Mutex(State())
    /// Idle handles (each with its open connections) kept for the next requests.
    static let maxIdleHandles = 16
    /// Claude Code waits up to 10 minutes for an answer; so does the proxy.
    static let idleSeconds = 600
    static let totalSeconds = 3600

    /// curl_global_init is not thread-safe: done once, before the first handle.
    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    /// Starts the request; its answer arrives through the returned stream. `cancel` stops it.
    /// Once the upstream is invalidated, the stream ends at once (cancelled).
    func start(_ request: UpstreamRequest) -> (stream: ResponseStream, cancel: @Sendable () -> Void) {
        let stream = ResponseStream()
        let transfer = Transfer(stream: stream)
        let handle = state.withLock { state -> EasyHandle?? in
            guard state.open else { return .none }
            state.inFlight[ObjectIdentifier(transfer)] = transfer
            return .some(state.idle.popLast())
        }
        guard let handle else {
            stream.push(.end(UpstreamError(description: "cancelled", timedOut: false)))
            return (stream, {})
        }
        let thread = Thread { [self] in
            let easy = handle ?? EasyHandle()
            var error: UpstreamError?
            if let easy {
                error = transfer.perform(request, on: easy)
            } else {
                error = UpstreamError(description: "libcurl could not start a transfer", timedOut: false)
            }
            // A handle not kept is freed here, closing its connections.
            state.withLock { state in
                state.inFlight.removeValue(forKey: ObjectIdentifier(transfer))
                if state.open, state.idle.count < Self.maxIdleHandles, let easy { state.idle.append(easy) }
            }
            stream.push(.end(error))
        }
        thread.name = "patina-model-proxy-upstream"
        thread.start()
        return (stream, { transfer.cancel() })
    }

    /// Cuts every request in flight (within a second) and closes the kept connections.
    func invalidate() {
        let inFlight = state.withLock { state in
            state.open = false
            state.idle = []
            return Array(state.inFlight.values)
        }
        for transfer in inFlight { transfer.cancel() }
    }

    /// One libcurl easy handle: freed by `deinit`.
    final class EasyHandle: @unchecked Sendable {
        // @unchecked: used by one transfer's thread at a time (taken from and put back into the pool under its lock).
        let raw: UnsafeMutableRawPointer

        init?() {
            guard Upstream.globalInit, let raw = curl_easy_init() else { return nil }
            self.raw = raw
        }

        deinit { curl_easy_cleanup(raw) }

        /// Forgets the options of the last request; connections stay open for the next.
        func reset() { curl_easy_reset(raw) }
    }

    /// One request's transfer: libcurl's callbacks write into its stream.
    final class Transfer: Sendable {
        private struct Head {
            var status = 0
            var headers: [(String, String)] = []
            var sent = false
        }
        let stream: ResponseStream
        private let cancelled = Atomic(false)
        /// Only the transfer's thread touches it (libcurl's callbacks run inside curl_easy_perform).
        private let head = Mutex(Head())

        init(stream: ResponseStream) {
            self.stream = stream
        }

        func cancel() { cancelled.store(true, ordering: .relaxed) }
        var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

        /// Runs the request to its end; the reason when it got no whole answer.
        func perform(_ request: UpstreamRequest, on easy: EasyHandle) -> UpstreamError? {
            easy.reset()
            let handle = easy.raw
            let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
            errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
            defer { errorBuffer.deallocate() }
            var list: UnsafeMutablePointer<curl_slist>?
            for (name, value) in request.headers { list = curl_slist_append(list, "\(name): \(value)") }
            // No `Expect: 100-continue` round trip before a large body.
            list = curl_slist_append(list, "Expect:")
            defer { curl_slist_free_all(list) }
            let context = Unmanaged.passUnretained(self).toOpaque()
            var code = CURLE_OK
            func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }
            set(patina_curl_setopt_pointer(handle, CURLOPT_URL, request.url.absoluteString))
            set(patina_curl_setopt_pointer(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
            set(patina_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
            set(patina_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
            // Through an HTTPS proxy (HTTPS_PROXY), the proxy's answer to CONNECT ("200
            // Connection established") is not the model's head: the header callback never sees it.
            set(patina_curl_setopt_long(handle, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1))
            set(patina_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
            set(patina_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
            set(patina_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1))
            set(patina_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, Upstream.idleSeconds))
            set(patina_curl_setopt_long(handle, CURLOPT_TIMEOUT, Upstream.totalSeconds))
            set(patina_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
            set(patina_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, list))
            set(patina_curl_setopt_long(handle, CURLOPT_POST, 1))
            if request.method != "POST" { set(patina_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, request.method)) }
            set(patina_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
            set(patina_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION) { data, size, count, context in
                Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue().headerLine(data, size * count)
            })
            set(patina_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context))
            set(patina_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, context in
                Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue().bodyBytes(data, size * count)
            })
            set(patina_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
            // Called about once a second while nothing arrives: how a cancel is noticed.
            set(patina_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
            set(patina_curl_setopt_progress_callback(handle) { context, _, _, _, _ in
                Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue().isCancelled ? 1 : 0
            })
            set(patina_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context))
            if code == CURLE_OK {
                // The body is sent from this buffer, which lives until curl_easy_perform returns.
                code = request.body.withUnsafeBytes { body -> CURLcode in
                    let empty: StaticString = ""
                    let fields = body.baseAddress ?? UnsafeRawPointer(empty.utf8Start)
                    let result = patina_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, fields)
                    return result == CURLE_OK ? curl_easy_perform(handle) : result
                }
            }
            if code == CURLE_OK {
                if !head.withLock({ $0.sent }) { sendHead(handle) }
                return nil
            }
            if isCancelled { return UpstreamError(description: "cancelled", timedOut: false) }
            let detail = String(cString: errorBuffer)
            return UpstreamError(description: detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail,
                                 timedOut: code == CURLE_OPERATION_TIMEDOUT)
        }

        /// One header line of the answer (every response's, 1xx included); the head goes
        /// to the stream at the empty line that ends the final one.
        private func headerLine(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
            guard let data else { return count }
            // Trimmed as bytes: in a Swift String, "\r\n" is one Character, neither "\r" nor "\n".
            var bytes = UnsafeRawBufferPointer(start: data, count: count)[...]
            while let last = bytes.last, last == 10 || last == 13 { bytes.removeLast() }
            let line = String(decoding: bytes, as: UTF8.self)
            let complete = head.withLock { head -> Head? in
                if line.hasPrefix("HTTP/") {
                    let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                    head.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                    head.headers = []
                } else if line.isEmpty {
                    if head.status >= 200 && !head.sent {
                        head.sent = true
                        return head
                    }
                } else if let colon = line.firstIndex(of: ":") {
                    head.headers.append((String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                                         String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
                }
                return nil
            }
            if let complete { stream.push(.head(status: complete.status, headers: complete.headers)) }
            return isCancelled ? 0 : count
        }

        private func bodyBytes(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
            guard !isCancelled else { return 0 }
            guard let data, count > 0 else { return count }
            stream.push(.data(Data(bytes: data, count: count)))
            return count
        }

        private func sendHead(_ handle: UnsafeMutableRawPointer) {
            var code = 0
            _ = patina_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
            let headers = head.withLock { head in
                head.sent = true
                return head.headers
            }
            stream.push(.head(status: code, headers: headers))
        }
    }
}
