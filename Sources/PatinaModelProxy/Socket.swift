import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed socket call, with the call's name and the system's reason.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ call: String, errno code: Int32 = errno) {
        description = "\(call): \(String(cString: strerror(code)))"
    }

    init(message: String) {
        description = message
    }
}

/// One socket descriptor with an owner: closed exactly once, by `deinit`.
/// Another thread may `shutdown()` it to wake a blocked read; only the owner closes.
final class Socket: Sendable {
    // `fd` never changes; the kernel serializes concurrent calls on it.
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        close(fd)
    }

    /// A TCP listener on `address` (IPv4), port 0 picks a free one.
    static func listen(address: String, port: Int = 0, backlog: Int32 = 64) throws -> Socket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        let socket = Socket(fd: fd)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else {
            throw SocketError(message: "\(address) is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw SocketError("bind \(address):\(port)") }
        guard Glibc.listen(fd, backlog) == 0 else { throw SocketError("listen") }
        return socket
    }

    /// The local port the socket is bound to.
    var port: Int {
        var addr = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Waits up to `timeoutMS` for a connection; nil when none arrived.
    func accept(timeoutMS: Int32) -> Socket? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMS) > 0, pfd.revents & Int16(POLLIN) != 0 else { return nil }
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { return nil }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        var one: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return Socket(fd: client)
    }

    /// Reads at most `count` bytes; 0 at end of stream. Throws on errors and on
    /// the receive timeout.
    func read(into buffer: inout [UInt8], count: Int = 65536) throws -> Int {
        if buffer.count < count { buffer = [UInt8](repeating: 0, count: count) }
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count, 0) }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw SocketError("recv")
        }
    }

    /// Writes all of `bytes`; never raises SIGPIPE (a client that went away is an error here).
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw SocketError("send")
            }
            offset += n
        }
    }

    func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    func write(_ text: String) throws {
        try write(Data(text.utf8))
    }

    /// Waits up to `timeoutMS` for something to read (or the end of the stream); false
    /// when nothing came in time.
    func waitReadable(timeoutMS: Int32) throws -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let n = poll(&pfd, 1, max(0, timeoutMS))
            if n > 0 { return true }
            if n == 0 { return false }
            if errno == EINTR { continue }
            throw SocketError("poll")
        }
    }

    /// Reads and drops what has arrived, at most `limit` bytes, never waiting; false once the
    /// client's side has ended (or failed), true while it may still send.
    func drain(limit: Int) -> (open: Bool, read: Int) {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var read = 0
        while read < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { read += n; continue }
            if n < 0 && errno == EINTR { continue }
            return (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), read)
        }
        return (true, read)
    }

    /// Wakes any thread blocked on this socket; the owner still closes it.
    func shutdown() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }
}
