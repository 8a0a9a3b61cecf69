import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Facts about the host's network the firewall needs.
public enum HostNetwork {
    /// This machine's own addresses (IPv4 and IPv6, loopback excluded): the
    /// sandbox must not reach the host unless an allow-list entry names it.
    public static func addresses() -> [String] {
        var result: [String] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let addr = entry.pointee.ifa_addr else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let family = Int32(addr.pointee.sa_family)
            let size = family == AF_INET ? MemoryLayout<sockaddr_in>.size : family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : 0
            guard size > 0, getnameinfo(addr, socklen_t(size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            var text = String(nulTerminated: host)
            if let percent = text.firstIndex(of: "%") { text = String(text[..<percent]) }
            if text == "127.0.0.1" || text == "::1" || text.hasPrefix("fe80") { continue }
            if !result.contains(text) { result.append(text) }
        }
        return result
    }

    /// The IPv4 address of one interface, e.g. docker0.
    public static func ipv4Address(of interface: String) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let addr = entry.pointee.ifa_addr, Int32(addr.pointee.sa_family) == AF_INET,
                  String(nulTerminated: Array(UnsafeBufferPointer(start: entry.pointee.ifa_name, count: strlen(entry.pointee.ifa_name) + 1))) == interface
            else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(addr, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            return String(nulTerminated: host)
        }
        return nil
    }

    /// Upstream DNS servers for the sandbox's resolver: the host's resolv.conf
    /// without loopback servers (which a container cannot reach).
    public static func upstreamDNS(resolvConf: String = "/etc/resolv.conf") -> [String] {
        guard let text = try? String(contentsOfFile: resolvConf, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, parts[0] == "nameserver" else { return nil }
            let server = String(parts[1])
            return server.hasPrefix("127.") || server == "::1" ? nil : server
        }
    }
}

extension String {
    /// A C character buffer up to its first NUL.
    init(nulTerminated buffer: [CChar]) {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self.init(decoding: bytes, as: UTF8.self)
    }
}
