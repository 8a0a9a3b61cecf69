import Foundation
import PatinaTemplates

/// The sandbox's egress firewall for one run: what is allowed, which resolver
/// answers, what is closed, and what the self-test tries. Rendered from the
/// templates in `firewall/` into the files the network holder and the probes run.
///
/// Rule order (first match wins; see `firewall/rules.v4.mustache`):
/// loopback and replies; DNS only from the resolver (uid 0) to its upstreams, all
/// other port 53 rejected; IP/CIDR entries with a port; SSH rejected unless a name
/// entry names port 22; IP/CIDR entries for any port; private, link-local, gateway,
/// host, multicast and broadcast addresses rejected; name entries through the ipsets
/// the resolver fills; everything else rejected.
public struct FirewallPlan: Sendable {
    /// A resolver the sandbox's dnsmasq forwards allowed names to.
    public struct DNSServer: Sendable, Equatable, CustomStringConvertible {
        public let address: IPNetwork
        public let port: Int

        /// dnsmasq's spelling: `10.0.0.2`, `10.0.0.2#5353`.
        public var dnsmasq: String { port == 53 ? address.address : "\(address.address)#\(port)" }
        public var description: String {
            let host = address.family == .v6 ? "[\(address.address)]" : address.address
            return port == 53 ? address.address : "\(host):\(port)"
        }
    }

    /// The allow-list: repository, presets and `--allow`, duplicates removed.
    public let entries: [AllowEntry]
    /// What Claude Code itself needs (`ClaudeEndpoints`).
    public let agentEndpoints: [AllowEntry]
    public let upstreamDNS: [DNSServer]
    /// This machine's own addresses: closed unless an entry names them.
    public let hostAddresses: [IPNetwork]
    /// The docker bridge gateway: closed unless an entry names it.
    public let gateway: IPNetwork?
    public let selfTest: SelfTestTargets
    /// Allowed names the resolver answers itself with this machine's addresses for them.
    public let pinned: [PinnedName]
    /// Names only patina added (toolchains' presets): the self-test skips one that does not
    /// resolve rather than failing.
    public var optionalNames: Set<String> = []

    public init(
        entries: [AllowEntry],
        agentEndpoints: [AllowEntry],
        upstreamDNS: [String],
        upstreamSources: [String] = [],
        hostAddresses: [String],
        gateway: String?,
        selfTest: SelfTestTargets = SelfTestTargets(),
        pinned: [PinnedName] = []
    ) throws {
        self.agentEndpoints = Self.unique(agentEndpoints, excluding: [])
        self.entries = Self.unique(entries, excluding: Set(self.agentEndpoints.map(\.key)))
        self.upstreamDNS = try upstreamDNS.map(Self.parseDNSServer)
        self.hostAddresses = try hostAddresses.map { try Self.parseNetwork($0, setting: "host address") }
        self.gateway = try gateway.map { try Self.parseNetwork($0, setting: "gateway") }
        self.selfTest = selfTest
        let exactNames = Set((agentEndpoints + entries).compactMap(\.name))
        self.pinned = pinned.filter { exactNames.contains($0.name) }
        let names = allEntries.filter(\.isNamed)
        if !names.isEmpty, self.upstreamDNS.isEmpty {
            throw FirewallError.noUpstreamDNS(names: names.map(\.description), looked: upstreamSources)
        }
    }

    /// Claude Code's endpoints first, then the allow-list.
    public var allEntries: [AllowEntry] { agentEndpoints + entries }

    /// `mechanism`: where the holder's own script comes from (patina's data: a repository
    /// may change its firewall's rules, not how the holder reports to patina or gives up
    /// its capabilities); `templates` when nil.
    public func render(templates: TemplateSet, mechanism: TemplateSet? = nil) throws -> RenderedFirewall {
        let context = self.context()
        var files: [String: String] = [:]
        for (name, template) in RenderedFirewall.templates {
            files[name] = try (RenderedFirewall.mechanism.contains(name) ? mechanism ?? templates : templates).render(template, context)
        }
        return RenderedFirewall(files: files)
    }

    /// The host's DNS servers a container can reach, and the file they came from:
    /// `resolvConf`'s, or, when it lists only loopback servers (systemd-resolved's stub
    /// 127.0.0.53, the default on Ubuntu desktops), systemd-resolved's own list of
    /// upstreams in `resolvedConf`, as Docker does.
    public static func hostUpstreamServers(
        resolvConf: URL = URL(fileURLWithPath: "/etc/resolv.conf"),
        resolvedConf: URL = URL(fileURLWithPath: "/run/systemd/resolve/resolv.conf")
    ) -> (servers: [String], looked: [String]) {
        let text = (try? String(contentsOf: resolvConf, encoding: .utf8)) ?? ""
        let servers = upstreamServers(resolvConf: text)
        if !servers.isEmpty { return (servers, [resolvConf.path]) }
        let resolved = upstreamServers(resolvConf: (try? String(contentsOf: resolvedConf, encoding: .utf8)) ?? "")
        return (resolved, [resolvConf.path, resolvedConf.path])
    }

    /// The nameservers of a resolv.conf that a container can reach (loopback ones,
    /// such as systemd-resolved's 127.0.0.53, exist only on the host).
    public static func upstreamServers(resolvConf: String) -> [String] {
        resolvConf.split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver" else { return nil }
            let address = String(words[1].split(separator: "%").first ?? words[1])
            guard case .success(let network) = IPNetwork.parse(address) else { return nil }
            let loopback = (network.family == .v4 && network.bytes[0] == 127) || network.address == "::1"
            return loopback ? nil : network.address
        }
    }

    // MARK: - Parsing settings

    static func unique(_ entries: [AllowEntry], excluding: Set<String>) -> [AllowEntry] {
        var seen = excluding
        return entries.filter { seen.insert($0.key).inserted }
    }

    static func parseNetwork(_ text: String, setting: String) throws -> IPNetwork {
        switch IPNetwork.parse(text.trimmed) {
        case .success(let network): return network
        case .failure(let reason): throw FirewallError.invalidSetting(name: setting, value: text, reason: reason.description)
        }
    }

    /// `ADDRESS`, `ADDRESS:PORT`, `[IPV6]:PORT` or dnsmasq's `ADDRESS#PORT`.
    static func parseDNSServer(_ text: String) throws -> DNSServer {
        func fail(_ reason: String) -> FirewallError {
            .invalidSetting(name: "upstream DNS server", value: text, reason: reason)
        }
        let trimmed = text.trimmed
        var host = trimmed
        var portText: String?
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { throw fail("'[' without a closing ']'") }
            host = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
            let rest = trimmed[trimmed.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw fail("expected ':PORT' after ']'") }
                portText = String(rest.dropFirst())
            }
        } else if let hash = trimmed.firstIndex(of: "#") {
            host = String(trimmed[..<hash])
            portText = String(trimmed[trimmed.index(after: hash)...])
        } else if trimmed.filter({ $0 == ":" }).count == 1, let colon = trimmed.firstIndex(of: ":") {
            host = String(trimmed[..<colon])
            portText = String(trimmed[trimmed.index(after: colon)...])
        }
        guard case .success(let network) = IPNetwork.parse(host), network.isHost else {
            throw fail("not an IP address (the resolver's own upstream cannot be a name)")
        }
        var port = 53
        if let portText {
            guard portText.allSatisfy(\.isASCIIDigit), let value = Int(portText), (1...65535).contains(value) else {
                throw fail("port \"\(portText)\" is not a number from 1 to 65535")
            }
            port = value
        }
        if (network.family == .v4 && network.bytes[0] == 127) || network.address == "::1" {
            throw fail("a loopback address is this machine's, not the sandbox's; name a resolver the containers can reach")
        }
        return DNSServer(address: network, port: port)
    }
}
