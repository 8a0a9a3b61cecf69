import Foundation
import PatinaTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client over a plain socket, for seeing exactly what the proxy
/// sends and when: the head, then each piece of the body with the time it arrived.
enum RawHTTP {
    struct Response {
        var status = 0
        var headers: [(String, String)] = []
        var body = Data()
        /// Seconds from sending to the first body byte, and to the end of the response.
        var firstBodyAt: Double?
        var endAt: Double = 0

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw Failure(description: "connect to 127.0.0.1:\(port) failed")
        }
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func request(method: String, target: String, headers: [(String, String)], body: Data, close: Bool, version: String = "HTTP/1.1") -> Data {
        var head = "\(method) \(target) \(version)\r\nHost: proxy\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "Content-Length: \(body.count)\r\n"
        if close { head += "Connection: close\r\n" }
        var data = Data((head + "\r\n").utf8)
        data.append(body)
        return data
    }

    static func send(port: Int, method: String, target: String, headers: [(String, String)], body: Data, version: String = "HTTP/1.1") throws -> Response {
        let fd = try connect(port: port)
        defer { close(fd) }
        let start = Date()
        try write(fd, request(method: method, target: target, headers: headers, body: body, close: true, version: version))
        var reader = Reader(fd: fd, start: start)
        return try reader.response()
    }

    /// `count` requests one after another on one connection.
    static func sendKeepAlive(port: Int, count: Int, headers: [(String, String)], body: Data) throws -> [Response] {
        let fd = try connect(port: port)
        defer { close(fd) }
        var reader = Reader(fd: fd, start: Date())
        var responses: [Response] = []
        for _ in 0..<count {
            try write(fd, request(method: "POST", target: "/v1/messages", headers: headers, body: body, close: false))
            responses.append(try reader.response())
        }
        return responses
    }

    static func write(_ fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw Failure(description: "send failed") }
                offset += n
            }
        }
    }

    struct Reader {
        let fd: Int32
        let start: Date
        var pending: [UInt8] = []
        var eof = false

        mutating func more() throws {
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n >= 0 else { throw Failure(description: "recv failed (timeout?)") }
            if n == 0 { eof = true }
            pending += buffer[..<n]
        }

        mutating func line() throws -> String {
            while true {
                if let i = pending.firstIndex(of: 10) {
                    let text = String(decoding: pending[..<i], as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
                    pending.removeFirst(i + 1)
                    return text
                }
                if eof { throw Failure(description: "connection closed") }
                try more()
            }
        }

        mutating func bytes(_ n: Int) throws -> [UInt8] {
            while pending.count < n {
                if eof { throw Failure(description: "connection closed mid-body") }
                try more()
            }
            let out = Array(pending[..<n])
            pending.removeFirst(n)
            return out
        }

        mutating func response() throws -> Response {
            var response = Response()
            let statusLine = try line()
            response.status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
            while true {
                let header = try line()
                if header.isEmpty { break }
                if let colon = header.firstIndex(of: ":") {
                    response.headers.append((String(header[..<colon]), String(header[header.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
                }
            }
            if response.header("transfer-encoding")?.lowercased() == "chunked" {
                while true {
                    let size = Int(try line().split(separator: ";").first ?? "", radix: 16) ?? 0
                    if size == 0 {
                        _ = try line()
                        break
                    }
                    let chunk = try bytes(size)
                    if response.firstBodyAt == nil { response.firstBodyAt = Date().timeIntervalSince(start) }
                    response.body.append(contentsOf: chunk)
                    _ = try line()
                }
            } else if let length = Int(response.header("content-length") ?? "") {
                response.body = Data(try bytes(length))
                response.firstBodyAt = Date().timeIntervalSince(start)
            } else {
                // Until the connection closes.
                while !eof {
                    try more()
                    if !pending.isEmpty && response.firstBodyAt == nil { response.firstBodyAt = Date().timeIntervalSince(start) }
                }
                response.body = Data(pending)
                pending = []
            }
            response.endAt = Date().timeIntervalSince(start)
            return response
        }
    }
}

/// An HTTPS server on loopback with a self-signed certificate (made with openssl):
/// a client that verifies certificates must refuse it.
final class SelfSignedHTTPS: @unchecked Sendable {
    let port: Int
    private let process: Process
    private let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("self-signed-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try ProcessRunner.check(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                                 "-keyout", directory.appendingPathComponent("key.pem").path,
                                 "-out", directory.appendingPathComponent("cert.pem").path])
        let script = """
            import http.server, ssl, sys, os
            d = sys.argv[1]
            class H(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    open(os.path.join(d, "requests"), "a").write("x")
                    self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
                def log_message(self, *a): pass
            s = http.server.HTTPServer(("127.0.0.1", 0), H)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
            s.socket = ctx.wrap_socket(s.socket, server_side=True)
            open(os.path.join(d, "port.tmp"), "w").write(str(s.server_address[1]))
            os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
            s.serve_forever()
            """
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, directory.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var found = 0
        for _ in 0..<100 {
            if let text = try? String(contentsOf: directory.appendingPathComponent("port"), encoding: .utf8), let p = Int(text) {
                found = p
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        port = found
        guard found > 0 else {
            stop()
            throw RawHTTP.Failure(description: "the HTTPS test server did not start")
        }
    }

    var requests: Int { ((try? String(contentsOf: directory.appendingPathComponent("requests"), encoding: .utf8)) ?? "").count }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
