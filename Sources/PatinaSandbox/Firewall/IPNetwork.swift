#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address with a prefix length: one host (`/32`, `/128`) or a CIDR block.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public enum Family: String, Sendable, Hashable { case v4, v6 }

    public let family: Family
    /// Network-order bytes of the address (4 or 16).
    public let bytes: [UInt8]
    public let prefix: Int

    public var maxPrefix: Int { family == .v4 ? 32 : 128 }
    public var isHost: Bool { prefix == maxPrefix }

    /// The address alone, in canonical text (`10.0.0.0`, `2001:db8::1`).
    public var address: String { Self.format(bytes, family) }

    /// `10.1.2.3` for a host, `10.0.0.0/8` for a block.
    public var description: String { isHost ? address : "\(address)/\(prefix)" }

    /// Always with the prefix, as iptables wants it: `10.1.2.3/32`.
    public var cidr: String { "\(address)/\(prefix)" }

    public init(family: Family, bytes: [UInt8], prefix: Int) {
        self.family = family
        self.bytes = bytes
        self.prefix = prefix
    }

    /// Parses `ADDRESS` or `ADDRESS/PREFIX`. The reason on failure is one short phrase.
    public static func parse(_ text: String) -> Result<IPNetwork, Reason> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return .failure(Reason("more than one '/'")) }
        let addressText = String(parts[0])
        let family: Family
        let bytes: [UInt8]
        if let v4 = parseV4(addressText) {
            family = .v4
            bytes = v4
        } else if let v6 = parseV6(addressText) {
            family = .v6
            bytes = v6
        } else {
            return .failure(Reason("\"\(addressText)\" is not an IPv4 or IPv6 address"))
        }
        let maxPrefix = family == .v4 ? 32 : 128
        var prefix = maxPrefix
        if parts.count == 2 {
            let prefixText = String(parts[1])
            guard !prefixText.isEmpty, prefixText.allSatisfy(\.isASCIIDigit), prefixText.count <= 3,
                  let value = Int(prefixText), value <= maxPrefix
            else {
                return .failure(Reason("prefix \"/\(parts[1])\" is not a number from 0 to \(maxPrefix)"))
            }
            prefix = value
        }
        let network = IPNetwork(family: family, bytes: bytes, prefix: prefix)
        let masked = network.masked
        if masked.bytes != bytes {
            return .failure(Reason("address bits are set past the /\(prefix) prefix (the network is \(masked.cidr))"))
        }
        return .success(network)
    }

    /// The network with every bit past the prefix cleared.
    public var masked: IPNetwork {
        var out = bytes
        for index in out.indices {
            let bitsBefore = index * 8
            if bitsBefore >= prefix { out[index] = 0 }
            else if bitsBefore + 8 > prefix {
                let keep = prefix - bitsBefore
                out[index] &= UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
            }
        }
        return IPNetwork(family: family, bytes: out, prefix: prefix)
    }

    /// Whether `other` lies inside this network.
    public func contains(_ other: IPNetwork) -> Bool {
        guard other.family == family, other.prefix >= prefix else { return false }
        return IPNetwork(family: family, bytes: other.bytes, prefix: prefix).masked.bytes == bytes
    }

    /// `::ffff:a.b.c.d`: reaches an IPv4 host through an IPv6 socket.
    public var isIPv4Mapped: Bool {
        family == .v6 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
    }

    public struct Reason: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    static func parseV4(_ text: String) -> [UInt8]? {
        // inet_pton accepts only the strict dotted quad: no "10.1", no hex, no octal.
        guard !text.isEmpty, text.allSatisfy({ $0.isASCIIDigit || $0 == "." }) else { return nil }
        var raw = in_addr()
        guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
        return withUnsafeBytes(of: &raw) { Array($0) }
    }

    static func parseV6(_ text: String) -> [UInt8]? {
        guard text.contains(":"), text.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        var raw = in6_addr()
        guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
        return withUnsafeBytes(of: &raw) { Array($0) }
    }

    static func format(_ bytes: [UInt8], _ family: Family) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok = bytes.withUnsafeBytes { raw in
            buffer.withUnsafeMutableBufferPointer { out in
                inet_ntop(family == .v4 ? AF_INET : AF_INET6, raw.baseAddress, out.baseAddress, socklen_t(out.count)) != nil
            }
        }
        precondition(ok, "inet_ntop failed on a parsed address")
        let end = buffer.firstIndex(of: 0) ?? buffer.endIndex
        return String(decoding: buffer[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
