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

/// Why a request could not be read: answered with 400 (or 413) when the client is still there.
struct HTTPParseError: Error, CustomStringConvertible {
    let status: Int
    let description: String
}

/// Reads requests one after another from a client connection.
final class HTTPRequestReader {
    private let socket: Socket
    private var pending: [UInt8] = []
    private var scratch: [UInt8] = []
    static let maxHeadBytes = 64 << 10
    /// Claude Code sends the whole conversation each time; a long one with images runs to tens of MB.
    static let maxBodyBytes = 64 << 20

    init(socket: Socket) {
        self.socket = socket
    }

    /// The next request, or nil when the client closed the connection between requests.
    /// `onExpectContinue` answers `Expect: 100-continue` before the body is read.
    func next(onExpectContinue: () throws -> Void) throws -> HTTPRequest? {
        guard let headEnd = try fill(untilFound: [13, 10, 13, 10], limit: Self.maxHeadBytes) else { return nil }
        let head = String(decoding: pending[..<headEnd], as: UTF8.self)
        pending.removeFirst(headEnd + 4)
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
        var request = HTTPRequest(method: String(requestLine[0]), target: String(requestLine[1]), version: String(requestLine[2]),
                                  headers: headers, body: Data())
        if request.header("Expect")?.lowercased() == "100-continue" { try onExpectContinue() }
        if request.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            request.body = try readChunkedBody()
        } else if let lengthText = request.header("Content-Length") {
            guard let length = Int(lengthText), length >= 0 else { throw HTTPParseError(status: 400, description: "bad Content-Length") }
            guard length <= Self.maxBodyBytes else { throw HTTPParseError(status: 413, description: "request body over \(Self.maxBodyBytes >> 20) MB") }
            request.body = Data(try take(length))
        }
        return request
    }

    private func readChunkedBody() throws -> Data {
        var body = Data()
        while true {
            guard let lineEnd = try fill(untilFound: [13, 10], limit: 4096) else { throw HTTPParseError(status: 400, description: "truncated chunk") }
            let sizeText = String(decoding: pending[..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            pending.removeFirst(lineEnd + 2)
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw HTTPParseError(status: 400, description: "bad chunk size")
            }
            if size == 0 {
                // Trailers, if any, up to the empty line.
                while true {
                    guard let end = try fill(untilFound: [13, 10], limit: Self.maxHeadBytes) else { return body }
                    pending.removeFirst(end + 2)
                    if end == 0 { return body }
                }
            }
            guard body.count + size <= Self.maxBodyBytes else { throw HTTPParseError(status: 413, description: "request body over \(Self.maxBodyBytes >> 20) MB") }
            body.append(contentsOf: try take(size))
            _ = try take(2)
        }
    }

    /// Reads until `pattern` is in the pending bytes; its offset, or nil at a clean end of stream
    /// with nothing pending.
    private func fill(untilFound pattern: [UInt8], limit: Int) throws -> Int? {
        var searchFrom = 0
        while true {
            if let found = Self.find(pattern, in: pending, from: searchFrom) { return found }
            guard pending.count <= limit else { throw HTTPParseError(status: 431, description: "request head too large") }
            searchFrom = max(0, pending.count - pattern.count + 1)
            let n = try socket.read(into: &scratch)
            if n == 0 {
                if pending.isEmpty { return nil }
                throw HTTPParseError(status: 400, description: "connection closed mid-request")
            }
            pending.append(contentsOf: scratch[..<n])
        }
    }

    private func take(_ count: Int) throws -> ArraySlice<UInt8> {
        while pending.count < count {
            let n = try socket.read(into: &scratch)
            if n == 0 { throw HTTPParseError(status: 400, description: "connection closed mid-body") }
            pending.append(contentsOf: scratch[..<n])
        }
        let taken = pending[..<count]
        pending.removeFirst(count)
        return taken
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

    /// No CR or LF may reach the client inside a header.
    static func clean(_ s: String) -> String {
        s.contains(where: { $0 == "\r" || $0 == "\n" }) ? s.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ") : s
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
