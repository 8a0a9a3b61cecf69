import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP and a UDP listener on the host (the docker bridge gateway) that the
/// firewall self-test aims at. The self-test's own verdict comes from inside
/// the sandbox; the canary is the host's independent check that nothing
/// blocked actually arrived.
public final class Canary: @unchecked Sendable {
    public let address: String
    public private(set) var tcpPort: Int = 0
    public private(set) var udpPort: Int = 0
    private var tcpSocket: Int32 = -1
    private var udpSocket: Int32 = -1
    private var hits: [String] = []
    private let lock = NSLock()
    private var running = true
    private var thread: Thread?

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(address: String) throws {
        self.address = address
        tcpSocket = try Self.bound(address, type: Int32(SOCK_STREAM.rawValue))
        udpSocket = try Self.bound(address, type: Int32(SOCK_DGRAM.rawValue))
        guard listen(tcpSocket, 16) == 0 else { throw Failure(description: "canary: listen failed: \(String(cString: strerror(errno)))") }
        tcpPort = Self.port(of: tcpSocket)
        udpPort = Self.port(of: udpSocket)
        let thread = Thread { [weak self] in self?.loop() }
        self.thread = thread
        thread.start()
    }

    deinit {
        stop()
    }

    /// What arrived, one line per connection or datagram.
    public var received: [String] {
        lock.withLock { hits }
    }

    public func stop() {
        lock.withLock {
            guard running else { return }
            running = false
        }
        // Give the poll loop one timeout to notice, then close.
        usleep(150_000)
        if tcpSocket >= 0 { close(tcpSocket); tcpSocket = -1 }
        if udpSocket >= 0 { close(udpSocket); udpSocket = -1 }
    }

    private func loop() {
        while lock.withLock({ running }) {
            var fds = [pollfd(fd: tcpSocket, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: udpSocket, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, 100) > 0 else { continue }
            if fds[0].revents & Int16(POLLIN) != 0 {
                var peer = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let fd = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(tcpSocket, $0, &length) }
                }
                if fd >= 0 {
                    close(fd)
                    lock.withLock { hits.append("tcp connection from \(Self.describe(peer))") }
                }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                var buffer = [UInt8](repeating: 0, count: 2048)
                var peer = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udpSocket, &buffer, buffer.count, 0, $0, &length) }
                }
                if n >= 0 { lock.withLock { hits.append("udp datagram (\(n) bytes) from \(Self.describe(peer))") } }
            }
        }
    }

    private static func bound(_ address: String, type: Int32) throws -> Int32 {
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { throw Failure(description: "canary: socket failed: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else {
            close(fd)
            throw Failure(description: "canary: \(address) is not an IPv4 address")
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "canary: cannot listen on \(address) (\(reason)); is the docker bridge gateway an address of this machine?")
        }
        return fd
    }

    private static func port(of fd: Int32) -> Int {
        var addr = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    private static func describe(_ addr: sockaddr_in) -> String {
        var a = addr.sin_addr
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &a, &buffer, socklen_t(INET_ADDRSTRLEN))
        return "\(String(nulTerminated: buffer)):\(UInt16(bigEndian: addr.sin_port))"
    }
}
