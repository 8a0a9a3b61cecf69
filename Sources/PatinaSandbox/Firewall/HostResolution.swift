import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An allowed name the sandbox resolver answers itself, with the addresses this
/// machine resolves it to: on networks that answer public names with their own
/// addresses (an inspecting proxy, an internal mirror), answers the resolver's
/// rebinding guard would drop. The name opens exactly those addresses, never one
/// the host does not get for it.
public struct PinnedName: Sendable, Equatable, Codable {
    public var name: String
    public var addresses: [String]
    public var reason: String

    public init(name: String, addresses: [String], reason: String) {
        self.name = name
        self.addresses = addresses
        self.reason = reason
    }
}

/// Decides which allowed names are pinned to the host's own resolution.
public enum HostResolution {
    /// What dnsmasq's `stop-dns-rebind` drops (its private_net/private_net6).
    static let guarded = networks([
        "0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
        "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "255.255.255.255/32",
        "::/128", "::1/128", "fe80::/10", "fc00::/7", "::ffff:0:0/96", "2001:db8::/32",
    ])
    /// Never opened through a name: this network, loopback, link-local (cloud metadata), multicast.
    static let never = networks([
        "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fe80::/10", "ff00::/8", "::ffff:0:0/96",
    ])
    /// Closed by the firewall unless something names them: only `accept_private_dns` does, per name.
    static let closedPrivate = networks(["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "fc00::/7"])

    static func networks(_ list: [String]) -> [IPNetwork] {
        list.map { try! IPNetwork.parse($0).get() }
    }

    static func isIn(_ address: IPNetwork, _ list: [IPNetwork]) -> Bool { list.contains { $0.contains(address) } }

    /// Whether an address is one the firewall closes unless an entry names it.
    public static func isClosedPrivate(_ address: String) -> Bool {
        guard case .success(let network) = IPNetwork.parse(address) else { return false }
        return isIn(network, closedPrivate)
    }

    /// The pins for `names`, given how this machine resolves each (`resolved`), and
    /// lines saying why a name was not pinned. `accepted` lists the names
    /// `.patina/config.json` allows private answers for; `closed` holds this machine's
    /// addresses and the bridge gateway, which a name never opens.
    public static func pins(
        names: [String], resolved: [String: [String]], accepted: Set<String>, closed: [String]
    ) -> (pins: [PinnedName], notes: [String]) {
        var pins: [PinnedName] = []
        var notes: [String] = []
        let closedHosts = closed.compactMap { try? IPNetwork.parse($0).get() }
        for name in names {
            let addresses = (resolved[name] ?? []).compactMap { try? IPNetwork.parse($0).get() }
            guard addresses.contains(where: { isIn($0, guarded) }) else { continue }
            let shown = addresses.map(\.address).joined(separator: ", ")
            if let bad = addresses.first(where: { isIn($0, never) || closedHosts.contains($0) }) {
                notes.append("\(name) resolves to \(bad.address) on this machine (loopback, link-local or this machine itself): the sandbox resolver keeps dropping it")
                continue
            }
            let isPrivate = addresses.contains { isIn($0, closedPrivate) }
            if isPrivate && !accepted.contains(name) {
                notes.append("\(name) resolves to private \(shown) on this machine: the sandbox resolver drops such answers; list it in accept_private_dns in .patina/config.json to allow them")
                continue
            }
            pins.append(PinnedName(
                name: name, addresses: addresses.map(\.address),
                reason: isPrivate ? "allowed (accept_private_dns): the sandbox resolver answers it with what this machine resolves it to"
                    : "allowed: the sandbox resolver answers it with what this machine resolves it to (an address it drops in forwarded answers)"))
        }
        return (pins, notes)
    }

    /// Resolves names with this machine's own resolver, all at once, waiting at most
    /// `timeout` seconds; a name that does not resolve in time maps to nothing.
    public static func resolve(_ names: [String], timeout: Double = 5) -> [String: [String]] {
        let results = ResultBox()
        let group = DispatchGroup()
        for name in names {
            group.enter()
            DispatchQueue.global().async {
                results.set(name, addresses(of: name))
                group.leave()
            }
        }
        _ = group.wait(timeout: .now() + timeout)
        return results.snapshot()
    }

    /// getaddrinfo(3): the numeric addresses of a name, in order, without duplicates.
    public static func addresses(of name: String) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(list) }
        var out: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ai_next }
            guard let addr = entry.pointee.ai_addr else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(addr, entry.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let text = String(nulTerminated: host)
            if !out.contains(text) { out.append(text) }
        }
        return out
    }

    private final class ResultBox: Sendable {
        private let values = Mutex<[String: [String]]>([:])
        func set(_ name: String, _ addresses: [String]) { values.withLock { $0[name] = addresses } }
        func snapshot() -> [String: [String]] { values.withLock { $0 } }
    }
}
