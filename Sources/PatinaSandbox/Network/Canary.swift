import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP and a UDP listener on the host (the docker bridge gateway) that the
/// firewall self-test aims at. The self-test's own verdict comes from inside
/// the sandbox; the canary is the host's independent check that nothing
/// blocked actually arrived.
public final class Canary: Sendable {
    public let address: String
    public let tcpPort: Int
    public let udpPort: Int
    private let tcpSocket: Int32
    private let udpSocket: Int32
    private struct State {
        var hits: [String] = []
        var running = true
    }
    private let state = Mutex(State())

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(address: String) throws {
        self.address = address
        let tcp = try Self.bound(address, type: Int32(SOCK_STREAM.rawValue))
        let udp: Int32
        do {
            udp = try Self.bound(address, type: Int32(SOCK_DGRAM.rawValue))
        } catch {
            close(tcp)
            throw error
        }
        guard listen(tcp, 16) == 0 else {
            close(tcp)
            close(udp)
            throw Failure(description: "canary: cannot listen on \(address)")
        }
        tcpSocket = tcp
        udpSocket = udp
        tcpPort = Self.port(of: tcp)
        udpPort = Self.port(of: udp)
        // The running thread keeps the canary alive until stop(); it closes the sockets.
        Thread { self.loop() }.start()
    }

    /// What arrived, one line per connection or datagram.
    public var received: [String] {
        state.withLock { $0.hits }
    }

    /// Returns at once; the poll loop notices within one timeout and closes the
    /// sockets itself, so nobody closes them under it.
    public func stop() {
        state.withLock { $0.running = false }
    }

    private func loop() {
        defer {
            close(tcpSocket)
            close(udpSocket)
        }
        while state.withLock({ $0.running }) {
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
                    state.withLock { $0.hits.append("tcp connection from \(Self.describe(peer))") }
                }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                var buffer = [UInt8](repeating: 0, count: 2048)
                var peer = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udpSocket, &buffer, buffer.count, 0, $0, &length) }
                }
                if n >= 0 { state.withLock { $0.hits.append("udp datagram (\(n) bytes) from \(Self.describe(peer))") } }
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
