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
        for (_, address) in interfaceAddresses() where !(address == "127.0.0.1" || address == "::1" || address.hasPrefix("fe80")) {
            if !result.contains(address) { result.append(address) }
        }
        return result
    }

    /// The IPv4 address of one interface, e.g. docker0.
    public static func ipv4Address(of interface: String) -> String? {
        interfaceAddresses().first { $0.interface == interface && $0.address.contains(".") }?.address
    }

    /// Every (interface, numeric address) pair of this machine, in getifaddrs order.
    static func interfaceAddresses() -> [(interface: String, address: String)] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [(String, String)] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let addr = entry.pointee.ifa_addr, let name = entry.pointee.ifa_name else { continue }
            let family = Int32(addr.pointee.sa_family)
            let size = family == AF_INET ? MemoryLayout<sockaddr_in>.size : family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : 0
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard size > 0, getnameinfo(addr, socklen_t(size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            var text = String(nulTerminated: host)
            if let percent = text.firstIndex(of: "%") { text = String(text[..<percent]) }
            let interface = String(nulTerminated: Array(UnsafeBufferPointer(start: name, count: strlen(name) + 1)))
            result.append((interface, text))
        }
        return result
    }
}

extension String {
    /// A C character buffer up to its first NUL.
    init(nulTerminated buffer: [CChar]) {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self.init(decoding: bytes, as: UTF8.self)
    }
}
