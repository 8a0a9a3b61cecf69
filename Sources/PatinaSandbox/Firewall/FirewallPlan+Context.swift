/// Turns the plan into the values the templates in `firewall/` fill in. The templates
/// keep the structure and order of the rules; this computes one match per entry.
extension FirewallPlan {
    /// A port set shared by a group of names: one ipset pair per distinct set.
    struct PortSet: Hashable, Comparable {
        /// (port, "tcp" | "udp"); empty means any port and protocol.
        let ports: [PortProtocol]

        struct PortProtocol: Hashable, Comparable {
            let port: Int
            let proto: String
            static func < (a: Self, b: Self) -> Bool { (a.port, a.proto) < (b.port, b.proto) }
        }

        var isAny: Bool { ports.isEmpty }

        init(_ ports: some Sequence<PortProtocol>) { self.ports = Set(ports).sorted() }

        init(entry: AllowEntry) {
            self.init(entry.port.map { port in entry.transport.protocols.map { PortProtocol(port: port, proto: $0) } } ?? [])
        }

        static func union(_ sets: [PortSet]) -> PortSet {
            if sets.contains(where: \.isAny) { return PortSet([]) }
            return PortSet(sets.flatMap(\.ports))
        }

        /// `any`, `p443`, `p443t`, `p53u_p80`.
        var token: String {
            if isAny { return "any" }
            let byPort = Dictionary(grouping: ports, by: \.port)
            return byPort.keys.sorted().map { port in
                let protos = Set(byPort[port]!.map(\.proto))
                return "p\(port)" + (protos.count == 2 ? "" : protos.contains("tcp") ? "t" : "u")
            }.joined(separator: "_")
        }

        static func < (a: PortSet, b: PortSet) -> Bool {
            if a.isAny != b.isAny { return a.isAny }
            return a.ports.lexicographicallyPrecedes(b.ports)
        }
    }

    /// Names that share one port set, with the ipset pair dnsmasq fills for them.
    struct NameGroup {
        let ports: PortSet
        let set4: String
        let set6: String
        /// dnsmasq `ipset=/DOMAIN/` keys (a name, or the base of a `*.` pattern).
        let domains: [String]
        var allowsSSH: Bool { ports.ports.contains { $0.port == 22 && $0.proto == "tcp" } }
    }

    /// The domain a name entry's addresses are filed under: dnsmasq's `ipset=/D/` also
    /// covers every subdomain of D, and its `*.` wildcards do not work for ipsets.
    static func domainKey(_ entry: AllowEntry) -> String? {
        switch entry.host {
        case .name(let name): name
        case .domainSuffix(let base): base
        case .network: nil
        }
    }

    static func isBelow(_ name: String, _ base: String) -> Bool { name.hasSuffix("." + base) }

    var nameGroups: [NameGroup] {
        let named = allEntries.filter(\.isNamed)
        var keys: [String] = []
        for entry in named { if let key = Self.domainKey(entry), !keys.contains(key) { keys.append(key) } }
        // A key's addresses get every port that any entry covering it allows.
        var portsByKey: [String: PortSet] = [:]
        for key in keys {
            let covering = named.filter { entry in
                switch entry.host {
                case .name(let name): return name == key
                case .domainSuffix(let base): return base == key || Self.isBelow(key, base)
                case .network: return false
                }
            }
            portsByKey[key] = PortSet.union(covering.map(PortSet.init(entry:)))
        }
        let specs = Set(portsByKey.values).sorted()
        var groups: [NameGroup] = []
        for (index, spec) in specs.enumerated() {
            var token = spec.token
            if "patina4_".count + token.count > 31 { token = "g\(index + 1)" }
            groups.append(NameGroup(ports: spec, set4: "patina4_" + token, set6: "patina6_" + token,
                                    domains: keys.filter { portsByKey[$0] == spec }))
        }
        return groups
    }

    // MARK: - Template context

    func context() -> [String: Any] {
        let groups = nameGroups
        var context: [String: Any] = [
            "entry_count": allEntries.count,
            "name_count": allEntries.filter(\.isNamed).count,
            "entries": allEntries.map { ["entry": $0.description, "source": $0.source] },
        ]
        let pinnedEntries = pinnedPrivateEntries
        for family in [IPNetwork.Family.v4, .v6] {
            let suffix = family.rawValue
            let ipEntries = (allEntries + pinnedEntries).filter { $0.network?.family == family }
            context["dns_upstreams_\(suffix)"] = upstreamDNS.filter { $0.address.family == family }.map {
                ["address": $0.address.cidr, "port": $0.port]
            }
            context["explicit_ports_\(suffix)"] = ipEntries.filter { $0.port != nil }.flatMap { entry in
                entry.transport.protocols.map { proto in
                    ["match": "-d \(entry.network!.cidr) -p \(proto) -m \(proto) --dport \(entry.port!)",
                     "comment": Self.comment("allow \(entry) (\(entry.source))")]
                }
            }
            context["explicit_any_\(suffix)"] = ipEntries.filter { $0.port == nil }.map { entry in
                ["match": "-d \(entry.network!.cidr)", "comment": Self.comment("allow \(entry) (\(entry.source))")]
            }
            var closed: [[String: Any]] = []
            if let gateway, gateway.family == family {
                closed.append(["cidr": gateway.cidr, "comment": "closed: docker bridge gateway"])
            }
            for address in hostAddresses where address.family == family {
                closed.append(["cidr": address.cidr, "comment": "closed: this machine"])
            }
            context["closed_\(suffix)"] = closed
            let set: (NameGroup) -> String = { family == .v4 ? $0.set4 : $0.set6 }
            context["ssh_sets_\(suffix)"] = groups.filter(\.allowsSSH).map { ["set": set($0)] }
            context["name_rules_\(suffix)"] = groups.flatMap { group in
                Self.setMatches(group).map { match in
                    ["match": match + "-m set --match-set \(set(group)) dst",
                     "comment": Self.comment("names: " + Self.listed(group.domains))]
                }
            }
        }
        context["ipsets"] = groups.flatMap { group in
            [["name": group.set4, "family": "inet"], ["name": group.set6, "family": "inet6"]]
        }
        // A pinned name's addresses are in its set from the start: the resolver answers
        // it from its own records and adds nothing.
        context["ipset_members"] = pinned.flatMap { pin -> [[String: Any]] in
            guard let group = groups.first(where: { $0.domains.contains(pin.name) }) else { return [] }
            return pin.addresses.compactMap { address -> [String: Any]? in
                guard case .success(let network) = IPNetwork.parse(address) else { return nil }
                return ["set": network.family == .v4 ? group.set4 : group.set6, "address": network.address]
            }
        }
        context.merge(dnsmasqContext(groups), uniquingKeysWith: { $1 })
        context.merge(selfTestContext(), uniquingKeysWith: { $1 })
        return context
    }

    /// The protocol and port part of each iptables rule for a group ("" for any port).
    static func setMatches(_ group: NameGroup) -> [String] {
        if group.ports.isAny { return [""] }
        var matches: [String] = []
        for proto in ["tcp", "udp"] {
            let ports = group.ports.ports.filter { $0.proto == proto }.map(\.port)
            // multiport takes at most 15 ports a rule.
            for start in stride(from: 0, to: ports.count, by: 15) {
                let chunk = ports[start..<min(start + 15, ports.count)]
                matches.append(chunk.count == 1
                    ? "-p \(proto) -m \(proto) --dport \(chunk.first!) "
                    : "-p \(proto) -m multiport --dports \(chunk.map(String.init).joined(separator: ",")) ")
            }
        }
        return matches
    }

    /// Explicit entries for the private addresses of names `accept_private_dns` pins: the
    /// firewall closes private ranges before it looks at the names' sets.
    var pinnedPrivateEntries: [AllowEntry] {
        pinned.flatMap { pin in
            pin.addresses.filter(HostResolution.isClosedPrivate).flatMap { address -> [AllowEntry] in
                guard case .success(let network) = IPNetwork.parse(address) else { return [] }
                return allEntries.filter { $0.name == pin.name }.map {
                    AllowEntry(host: .network(network), port: $0.port, transport: $0.transport, source: "\(pin.name), accept_private_dns")
                }
            }
        }
    }

    func dnsmasqContext(_ groups: [NameGroup]) -> [String: Any] {
        let named = allEntries.filter(\.isNamed)
        let pinnedNames = Set(pinned.map(\.name))
        var patterns: [String] = []
        for entry in named where !patterns.contains(entry.hostPattern) && !pinnedNames.contains(entry.hostPattern) {
            patterns.append(entry.hostPattern)
        }
        let suffixBases = named.compactMap { entry -> String? in
            if case .domainSuffix(let base) = entry.host { return base }
            return nil
        }
        // dnsmasq's server=/name/ also matches subdomains: answer NXDOMAIN below an
        // exact name unless a *. pattern allows them.
        var exact: [String] = []
        for entry in named {
            guard let name = entry.name, !exact.contains(name) else { continue }
            if suffixBases.contains(where: { $0 == name || Self.isBelow(name, $0) }) { continue }
            exact.append(name)
        }
        return [
            "upstreams": upstreamDNS.map { ["server": $0.dnsmasq] },
            "servers": patterns.flatMap { pattern in
                upstreamDNS.map { ["pattern": pattern, "upstream": $0.dnsmasq] }
            },
            "exact_names": exact.map { ["name": $0] },
            "host_records": pinned.flatMap { pin in pin.addresses.map { ["name": pin.name, "address": $0, "why": pin.reason] } },
            "ipset_lines": groups.flatMap { group in
                group.domains.map { ["domain": $0, "sets": "\(group.set4),\(group.set6)"] }
            },
        ]
    }

    func selfTestContext() -> [String: Any] {
        var reach: [[String: Any]] = []
        var skipped: [[String: Any]] = []
        var resolve: [[String: Any]] = []
        var resolved: Set<String> = []
        for entry in allEntries {
            switch entry.host {
            case .network(let network):
                if network.isHost, let port = entry.port, entry.transport != .udp {
                    reach.append(["host": network.address, "port": port, "target": entry.description])
                } else {
                    skipped.append(["target": entry.description,
                                    "why": network.isHost ? "no TCP port to connect to" : "a block, not one host"])
                }
            case .name(let name):
                guard resolved.insert(name).inserted else { continue }
                var item: [String: Any] = ["name": name, "optional": optionalNames.contains(name)]
                let tcpPort = allEntries.first { $0.name == name && $0.port != nil && $0.transport != .udp }?.port
                if let tcpPort { item["port"] = tcpPort }
                resolve.append(item)
            case .domainSuffix:
                skipped.append(["target": entry.description, "why": "a pattern, no one name to resolve"])
            }
        }
        var expected: [(String, String)] = []
        expected += selfTest.blockedTCP.map { ("blocked-tcp", $0.description) }
        expected += selfTest.blockedUDP.map { ("blocked-udp", $0.description) }
        expected += selfTest.foreignDNS.flatMap { [("foreign-dns-udp", $0.description), ("foreign-dns-tcp", $0.description)] }
        expected += [("blocked-name", selfTest.blockedName), ("resolver-nxdomain", selfTest.blockedName)]
        expected += reach.map { ("reach-tcp", $0["target"] as! String) }
        for item in resolve {
            let name = item["name"] as! String
            expected.append(("resolve", name))
            if let port = item["port"] { expected.append(("reach-tcp", "\(name):\(port)")) }
        }
        let blockedQuery = Self.dnsQuery(for: selfTest.blockedName)
        return [
            "deadline": selfTest.deadlineSeconds,
            "expected": expected.map { ["check": $0.0, "target": $0.1] },
            "blocked_name": selfTest.blockedName,
            "blocked_query": Self.printfEscaped(blockedQuery),
            "blocked_query_tcp": Self.printfEscaped(Self.lengthPrefixed(blockedQuery)),
            "foreign_query": Self.printfEscaped(Self.dnsQuery(for: "exfil.patina-selftest.invalid")),
            "foreign_query_tcp": Self.printfEscaped(Self.lengthPrefixed(Self.dnsQuery(for: "exfil.patina-selftest.invalid"))),
            "blocked_tcp": selfTest.blockedTCP.map(Self.endpointContext),
            "blocked_udp": selfTest.blockedUDP.map(Self.endpointContext),
            "foreign_dns": selfTest.foreignDNS.map(Self.endpointContext),
            "reach_tcp": reach,
            "resolve": resolve,
            "skipped": skipped,
        ]
    }

    static func endpointContext(_ endpoint: SelfTestTargets.Endpoint) -> [String: Any] {
        ["host": endpoint.address.address, "port": endpoint.port, "target": endpoint.description]
    }

    /// A DNS query for `name`, type A, recursion desired.
    static func dnsQuery(for name: String) -> [UInt8] {
        var bytes: [UInt8] = [0x70, 0x61, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
        for label in name.split(separator: ".") {
            let utf8 = Array(label.utf8.prefix(63))
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes += [0x00, 0x00, 0x01, 0x00, 0x01]
        return bytes
    }

    static func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
        [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
    }

    /// Bytes as a printf format of `\xHH` escapes (no '%' can appear).
    static func printfEscaped(_ bytes: [UInt8]) -> String {
        bytes.map { "\\x" + String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// iptables comments: at most 256 bytes, no quotes.
    static func comment(_ text: String) -> String {
        let cleaned = String(text.map { $0 == "\"" || $0 == "\\" || $0 == "\n" ? "'" : $0 })
        return cleaned.utf8.count <= 200 ? cleaned : String(cleaned.prefix(190)) + " …"
    }

    static func listed(_ names: [String]) -> String {
        names.count <= 3 ? names.joined(separator: ", ") : names.prefix(3).joined(separator: ", ") + " and \(names.count - 3) more"
    }
}

extension AllowEntry {
    /// dnsmasq's spelling of the host: `pypi.org`, `*.example.com`.
    var hostPattern: String {
        switch host {
        case .name(let name): name
        case .domainSuffix(let base): "*." + base
        case .network(let network): network.description
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
