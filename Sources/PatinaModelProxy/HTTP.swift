import Foundation

/// One HTTP/1.x request as the proxy received it.
struct HTTPRequest: Sendable {
    var method: String
    /// The request target as sent: path and query (`/v1/messages?beta=true`).
    var target: String
    var version: String
    /// In the order received; names as sent.
    var headers: [(name: String, value: String)]
    var body: Data

    var path: String { String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "") }

    func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes it unless told to keep it.
    var keepsAlive: Bool {
        let connection = header("Connection")?.lowercased() ?? ""
        if version == "HTTP/1.0" { return connection.contains("keep-alive") }
        return !connection.contains("close")
    }
}

/// Why a request could not be read, or is not served: answered with `status` when the
/// client is still there, then the connection is dropped. `refused` names the rule in api.jsonl.
struct HTTPParseError: Error, CustomStringConvertible {
    let status: Int
    let description: String
    var refused = "bad_request"
}

/// Reads requests one after another from a client connection: the head first (so the
/// credential is checked before a body byte is read), then, when asked, the body.
///
/// Everything a client sends is checked against the caps before it is used: sizes before
/// arithmetic, buffered bytes against the run's and the process's quotas, time against
/// the request's deadlines. Bytes are consumed by moving an offset, so parsing is linear
/// in what arrives (1-byte chunks included).
final class HTTPRequestReader {
    private let socket: Socket
    private let limits: ProxyLimits
    private let quota: QuotaPair
    /// Received bytes; those before `start` are consumed.
    private var buffer: [UInt8] = []
    private var start = 0
    private var scratch: [UInt8] = []
    private var deadline: ContinuousClock.Instant = .now
    /// Request bytes taken from the quotas for the body being read or served.
    private(set) var reserved = 0
    static let maxHeadBytes = 64 << 10
    static let maxChunkLine = 1024

    init(socket: Socket, limits: ProxyLimits, quota: QuotaPair) {
        self.socket = socket
        self.limits = limits
        self.quota = quota
    }

    deinit { releaseBody() }

    private var pendingCount: Int { buffer.count - start }

    /// The next request with an empty body, or nil when the client closed the connection
    /// (or stayed idle past `idleSeconds`) between requests.
    func nextHead() throws -> HTTPRequest? {
        if pendingCount == 0 {
            guard try socket.waitReadable(timeoutMS: Self.milliseconds(limits.idleSeconds)) else { return nil }
        }
        let began = ContinuousClock.now
        deadline = began + .milliseconds(Self.milliseconds(limits.headSeconds))
        guard let headEnd = try fill(untilFound: [13, 10, 13, 10], limit: Self.maxHeadBytes, what: "request head") else { return nil }
        let head = String(decoding: buffer[start..<headEnd], as: UTF8.self)
        consume(upTo: headEnd + 4)
        deadline = began + .milliseconds(Self.milliseconds(limits.requestSeconds))
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            throw HTTPParseError(status: 400, description: "malformed request line")
        }
        var headers: [(String, String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw HTTPParseError(status: 400, description: "malformed header line") }
            headers.append((String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                            String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        return HTTPRequest(method: String(requestLine[0]), target: String(requestLine[1]), version: String(requestLine[2]),
                           headers: headers, body: Data())
    }

    /// Reads the body `request`'s head announces, holding its bytes against the quotas
    /// until `releaseBody()`.
    func readBody(of request: inout HTTPRequest) throws {
        if request.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            request.body = try readChunkedBody()
        } else if let lengthText = request.header("Content-Length") {
            guard lengthText.count <= 19, let length = Int(lengthText), length >= 0 else {
                throw HTTPParseError(status: 400, description: "bad Content-Length")
            }
            guard length <= limits.maxBodyBytes else { throw Self.tooLarge(limits.maxBodyBytes) }
            try reserve(length)
            var body = Data(capacity: length)
            try read(length, into: &body)
            request.body = body
        }
    }

    /// Gives the body's bytes back to the quotas (once the request was answered).
    func releaseBody() {
        if reserved > 0 { quota.release(reserved) }
        reserved = 0
    }

    private func reserve(_ amount: Int) throws {
        guard amount > 0 else { return }
        if let refusedBy = quota.reserve(amount) {
            throw HTTPParseError(status: 503, description: refusedBy == "run"
                                    ? "too many request bytes in flight for this run; try again later"
                                    : "too many request bytes in flight in patina; try again later",
                                 refused: "in_flight")
        }
        reserved += amount
    }

    private func readChunkedBody() throws -> Data {
        var body = Data()
        while true {
            guard let lineEnd = try fill(untilFound: [13, 10], limit: Self.maxChunkLine, what: "chunk size line") else {
                throw HTTPParseError(status: 400, description: "truncated chunk")
            }
            let line = buffer[start..<lineEnd]
            let sizeBytes = line.prefix { $0 != UInt8(ascii: ";") }
            let sizeText = String(decoding: sizeBytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            consume(upTo: lineEnd + 2)
            // At most 15 hex digits: every value then fits an Int, and the cap decides the rest.
            guard !sizeText.isEmpty, sizeText.count <= 15, let size = Int(sizeText, radix: 16), size >= 0 else {
                throw HTTPParseError(status: 400, description: "bad chunk size")
            }
            if size == 0 {
                // Trailers, if any, up to the empty line.
                var trailerBytes = 0
                while true {
                    guard let end = try fill(untilFound: [13, 10], limit: Self.maxHeadBytes, what: "trailers") else { return body }
                    trailerBytes += end - start + 2
                    guard trailerBytes <= Self.maxHeadBytes else { throw HTTPParseError(status: 431, description: "trailers too large", refused: "too_large") }
                    let empty = end == start
                    consume(upTo: end + 2)
                    if empty { return body }
                }
            }
            guard size <= limits.maxBodyBytes - body.count else { throw Self.tooLarge(limits.maxBodyBytes) }
            try reserve(size)
            try read(size, into: &body)
            while pendingCount < 2 {
                let n = try receive()
                if n == 0 { throw HTTPParseError(status: 400, description: "connection closed mid-body") }
                buffer.append(contentsOf: scratch[..<n])
            }
            guard buffer[start] == 13, buffer[start + 1] == 10 else {
                throw HTTPParseError(status: 400, description: "chunk not followed by CRLF")
            }
            consume(upTo: start + 2)
        }
    }

    private static func tooLarge(_ limit: Int) -> HTTPParseError {
        HTTPParseError(status: 413, description: "request body over \(limit >> 20) MB", refused: "too_large")
    }

    private func consume(upTo end: Int) {
        start = end
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.count <= 1 << 20)
            start = 0
        } else if start > 1 << 16, start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// Reads until `pattern` is in the pending bytes; its offset in `buffer`, or nil at a
    /// clean end of stream with nothing pending. More than `limit` pending bytes without
    /// it is an error.
    private func fill(untilFound pattern: [UInt8], limit: Int, what: String) throws -> Int? {
        var searchFrom = start
        while true {
            if let found = Self.find(pattern, in: buffer, from: searchFrom) { return found }
            guard pendingCount <= limit + pattern.count else {
                throw HTTPParseError(status: 431, description: "\(what) too large", refused: "too_large")
            }
            searchFrom = max(start, buffer.count - pattern.count + 1)
            let n = try receive()
            if n == 0 {
                if pendingCount == 0 { return nil }
                throw HTTPParseError(status: 400, description: "connection closed mid-request")
            }
            buffer.append(contentsOf: scratch[..<n])
        }
    }

    /// Moves `count` bytes of the stream into `body`: first what is pending, then straight
    /// from the socket.
    private func read(_ count: Int, into body: inout Data) throws {
        let fromBuffer = min(count, pendingCount)
        body.append(contentsOf: buffer[start..<(start + fromBuffer)])
        consume(upTo: start + fromBuffer)
        var remaining = count - fromBuffer
        while remaining > 0 {
            let n = try receive()
            if n == 0 { throw HTTPParseError(status: 400, description: "connection closed mid-body") }
            let used = min(n, remaining)
            body.append(contentsOf: scratch[..<used])
            if used < n { buffer.append(contentsOf: scratch[used..<n]) }
            remaining -= used
        }
    }

    /// One read within the request's deadline.
    private func receive() throws -> Int {
        let left = ContinuousClock.now.duration(to: deadline)
        let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
        guard ms > 0, try socket.waitReadable(timeoutMS: Int32(clamping: ms)) else {
            throw HTTPParseError(status: 408, description: "request not received in time", refused: "timeout")
        }
        return try socket.read(into: &scratch)
    }

    private static func milliseconds(_ seconds: Double) -> Int32 {
        Int32(clamping: Int((seconds * 1000).rounded()))
    }

    static func find(_ pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        var i = start
        while i <= bytes.count - pattern.count {
            if bytes[i] == pattern[0] && bytes[i..<(i + pattern.count)].elementsEqual(pattern) { return i }
            i += 1
        }
        return nil
    }
}

/// Writes one response to a client: the head, then the body in chunks as it arrives.
/// An HTTP/1.0 client gets no chunked encoding: its body ends when the connection closes.
struct HTTPResponseWriter {
    let socket: Socket
    let keepAlive: Bool
    let chunked: Bool

    init(socket: Socket, keepAlive: Bool, chunked: Bool = true) {
        self.socket = socket
        self.chunked = chunked
        self.keepAlive = keepAlive && chunked
    }

    /// Headers that belong to one hop, or that the proxy sets itself.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "content-encoding",
    ]

    func head(status: Int, headers: [(String, String)]) throws {
        var text = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        for (name, value) in headers where !Self.hopByHop.contains(name.lowercased()) {
            text += "\(Self.clean(name)): \(Self.clean(value))\r\n"
        }
        if chunked { text += "Transfer-Encoding: chunked\r\n" }
        text += "Connection: \(keepAlive ? "keep-alive" : "close")\r\n\r\n"
        try socket.write(text)
    }

    func chunk(_ data: Data) throws {
        guard !data.isEmpty else { return }
        guard chunked else { return try socket.write(data) }
        var framed = Data(String(data.count, radix: 16).utf8)
        framed.append(contentsOf: [13, 10])
        framed.append(data)
        framed.append(contentsOf: [13, 10])
        try socket.write(framed)
    }

    func end() throws {
        if chunked { try socket.write("0\r\n\r\n") }
    }

    /// A whole response of the proxy's own (errors): JSON with a length.
    func complete(status: Int, json: Data, extraHeaders: [(String, String)] = []) throws {
        var text = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Type: application/json\r\nContent-Length: \(json.count)\r\n"
        for (name, value) in extraHeaders { text += "\(name): \(value)\r\n" }
        text += "Connection: \(keepAlive ? "keep-alive" : "close")\r\n\r\n"
        var data = Data(text.utf8)
        data.append(json)
        try socket.write(data)
    }

    /// No CR or LF may reach the client inside a header. (Scalars, not Characters: "\r\n"
    /// is one Character, equal to neither.)
    static func clean(_ s: String) -> String {
        s.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) ? s.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ") : s
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Payload Too Large"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 529: "Overloaded"
        default: "Status \(status)"
        }
    }
}
