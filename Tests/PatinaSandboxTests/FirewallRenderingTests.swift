import Foundation
import PatinaTemplates
import Testing
@testable import PatinaSandbox

@Suite("Firewall rendering")
struct FirewallRenderingTests {
    let templates = TemplateSet(dataDirectory: firewallDataDirectory, overrideDirectory: nil)

    func plan(_ entries: [String], proxy: String? = "http://172.17.0.1:4321",
              upstream: [String] = ["10.255.255.53"]) throws -> FirewallPlan {
        try FirewallPlan(
            entries: AllowList.parse(entries, source: "--allow"),
            agentEndpoints: proxy.map { [try ClaudeEndpoints.modelProxy(url: $0)] } ?? [],
            upstreamDNS: upstream,
            hostAddresses: ["192.168.1.20", "2001:db8:1::20"],
            gateway: "172.17.0.1",
            selfTest: .canary(address: "172.17.0.1", tcpPort: 18080, udpPort: 18081, dnsPort: 18053))
    }

    func lines(_ text: String?) -> [String] {
        (text ?? "").split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
    }

    /// Index of the first line containing every fragment.
    func index(_ lines: [String], _ fragments: String...) -> Int? {
        lines.firstIndex { line in fragments.allSatisfy { line.contains($0) } }
    }

    /// A repository may change its firewall's rules (`.patina/firewall/`), not the holder's
    /// script: how it reports to patina and gives up its capabilities is patina's.
    @Test func theHoldersScriptIsAlwaysPatinas() throws {
        let overrides = FileManager.default.temporaryDirectory.appendingPathComponent("patina-fw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: overrides) }
        try FileManager.default.createDirectory(at: overrides.appendingPathComponent("firewall"), withIntermediateDirectories: true)
        for name in ["holder.sh", "rules.v4"] {
            try "# the repository's \(name)\n".write(to: overrides.appendingPathComponent("firewall/\(name).mustache"), atomically: true, encoding: .utf8)
        }
        let repository = TemplateSet(dataDirectory: firewallDataDirectory, overrideDirectory: overrides)
        let rendered = try plan([]).render(templates: repository, mechanism: templates)
        #expect(rendered["rules.v4"] == "# the repository's rules.v4\n", "the rules are the repository's to change")
        #expect(rendered["holder.sh"] == (try plan([]).render(templates: templates))["holder.sh"])
        #expect(rendered["holder.sh"]?.contains("setpriv --bounding-set") == true)
    }

    @Test func rulesAreInOrder() throws {
        let rendered = try plan(["10.1.2.3:8080/tcp", "10.20.0.0/16", "pypi.org:443/tcp", "*.example.com"]).render(templates: templates)
        let v4 = lines(rendered["rules.v4"])
        let expected: [[String]] = [
            ["-A OUTPUT -o lo -j ACCEPT"],
            ["-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"],
            ["-d 10.255.255.53/32 -p udp", "--dport 53", "--uid-owner 0", "-j ACCEPT"],
            ["-p udp -m udp --dport 53", "PATINA_REJECT"],
            ["-d 172.17.0.1/32 -p tcp -m tcp --dport 4321", "-j ACCEPT"],
            ["-d 10.1.2.3/32 -p tcp -m tcp --dport 8080", "-j ACCEPT"],
            ["-A OUTPUT -p tcp -m tcp --dport 22 -j PATINA_SSH"],
            ["-A OUTPUT -d 10.20.0.0/16 -m comment", "-j ACCEPT"],
            ["-d 172.17.0.1/32", "gateway", "PATINA_REJECT"],
            ["-d 192.168.1.20/32", "this machine", "PATINA_REJECT"],
            ["-d 10.0.0.0/8", "PATINA_REJECT"],
            ["-d 169.254.0.0/16", "PATINA_REJECT"],
            ["--match-set patina4_", "-j ACCEPT"],
            ["not allow-listed", "PATINA_REJECT"],
        ]
        let order = expected.map { fragments in
            v4.firstIndex { line in fragments.allSatisfy { line.contains($0) } } ?? -1
        }
        #expect(!order.contains(-1), "a rule is missing: \(zip(expected, order).filter { $0.1 == -1 }.map(\.0))")
        #expect(order == order.sorted(), "rules out of order: \(order)")
        #expect(v4.last == "COMMIT")
        #expect(v4.contains(":OUTPUT DROP [0:0]"))
        #expect(v4.contains(":INPUT DROP [0:0]"))
        #expect(v4.contains("-A PATINA_REJECT -p tcp -j REJECT --reject-with tcp-reset"))
    }

    @Test func theModelProxyIsTheOnlyModelEndpoint() throws {
        let v4 = lines(try plan([]).render(templates: templates)["rules.v4"])
        let accepts = v4.filter { $0.contains("172.17.0.1") && $0.hasSuffix("-j ACCEPT") }
        #expect(accepts == [
            "-A OUTPUT -d 172.17.0.1/32 -p tcp -m tcp --dport 4321 -m comment --comment \"allow 172.17.0.1:4321/tcp (patina model proxy)\" -j ACCEPT",
        ])
        // No Anthropic host is on the agent's allow-list: the proxy reaches the API from outside.
        let rendered = try plan([]).render(templates: templates)
        #expect(!rendered.files.values.contains { $0.contains("anthropic.com") })
        #expect(!lines(rendered["rules.v4"]).contains { $0.contains("--match-set patina4_") && $0.hasSuffix("-j ACCEPT") })
    }

    @Test func sshIsClosedUnlessNamed() throws {
        let closed = lines(try plan(["github.com", "10.0.0.5"]).render(templates: templates)["rules.v4"])
        #expect(closed.filter { $0.hasPrefix("-A PATINA_SSH") } == [
            "-A PATINA_SSH -m comment --comment \"closed: ssh\" -j PATINA_REJECT",
        ])
        // An address allowed on any port still does not get SSH: its accept comes after the SSH jump.
        let sshJump = try #require(index(closed, "--dport 22 -j PATINA_SSH"))
        let anyPort = try #require(index(closed, "-d 10.0.0.5/32", "-j ACCEPT"))
        #expect(sshJump < anyPort)

        let named = try plan(["github.com:22/tcp", "10.0.0.6:22"]).render(templates: templates)
        let v4 = lines(named["rules.v4"])
        #expect(v4.contains("-A PATINA_SSH -m set --match-set patina4_p22t dst -j RETURN"))
        #expect(lines(named["rules.v6"]).contains("-A PATINA_SSH -m set --match-set patina6_p22t dst -j RETURN"))
        let ipSSH = try #require(index(v4, "-d 10.0.0.6/32 -p tcp -m tcp --dport 22", "-j ACCEPT"))
        #expect(ipSSH < (try #require(index(v4, "--dport 22 -j PATINA_SSH"))))
        #expect(index(v4, "-p tcp -m tcp --dport 22 -m set --match-set patina4_p22t dst", "-j ACCEPT") != nil)
    }

    @Test func ipv6IsDeniedByDefault() throws {
        let rendered = try plan(["[2001:db8::1]:443", "pypi.org"]).render(templates: templates)
        let v6 = lines(rendered["rules.v6"])
        #expect(v6.contains(":OUTPUT DROP [0:0]"))
        #expect(v6.contains(":INPUT DROP [0:0]"))
        #expect(v6.last == "COMMIT")
        #expect(v6.contains("-A PATINA_REJECT -j REJECT --reject-with icmp6-adm-prohibited"))
        for closed in ["fc00::/7", "fe80::/10", "ff00::/8", "::ffff:0:0/96", "2001:db8:1::20/128"] {
            #expect(index(v6, "-d \(closed) ", "PATINA_REJECT") != nil, "missing close of \(closed)")
        }
        #expect(index(v6, "-d 2001:db8::1/128 -p tcp -m tcp --dport 443", "-j ACCEPT") != nil)
        #expect(index(v6, "-m set --match-set patina6_any dst", "-j ACCEPT") != nil)
        #expect(index(v6, "not allow-listed", "PATINA_REJECT") == v6.count - 2)
        // No IPv4 address leaks into the IPv6 rules and no IPv6 one into IPv4.
        #expect(!v6.contains { $0.contains("172.17.0.1") || $0.contains("10.255.255.53") })
        #expect(!lines(rendered["rules.v4"]).contains { $0.contains("2001:db8") })
    }

    @Test func resolverAnswersOnlyAllowedNames() throws {
        let rendered = try plan(["pypi.org:443/tcp", "files.pythonhosted.org:443/tcp", "*.example.com",
                                 "api.example.com:8443", "github.com", "*.github.com"],
                                upstream: ["10.255.255.53", "[2001:db8::53]:5353"]).render(templates: templates)
        let conf = lines(rendered["dnsmasq.conf"])
        #expect(conf.last == "address=/#/")
        for line in ["no-resolv", "no-hosts", "stop-dns-rebind", "user=root", "listen-address=127.0.0.1",
                     "server=/pypi.org/10.255.255.53", "server=/pypi.org/2001:db8::53#5353",
                     "server=/*.example.com/10.255.255.53", "server=/api.example.com/10.255.255.53",
                     "address=/*.pypi.org/", "address=/*.files.pythonhosted.org/",
                     "ipset=/pypi.org/patina4_p443t,patina6_p443t",
                     "ipset=/files.pythonhosted.org/patina4_p443t,patina6_p443t",
                     "ipset=/example.com/patina4_any,patina6_any",
                     // Below *.example.com, so it gets that pattern's ports too.
                     "ipset=/api.example.com/patina4_any,patina6_any",
                     "ipset=/github.com/patina4_any,patina6_any"] {
            #expect(conf.contains(line), "missing \(line)")
        }
        // Names covered by a *. pattern keep their subdomains.
        #expect(!conf.contains("address=/*.api.example.com/"))
        #expect(!conf.contains("address=/*.github.com/"))
        let sets = lines(rendered["ipsets"])
        #expect(sets == [
            "create patina4_any hash:ip family inet hashsize 1024 maxelem 65536",
            "create patina6_any hash:ip family inet6 hashsize 1024 maxelem 65536",
            "create patina4_p443t hash:ip family inet hashsize 1024 maxelem 65536",
            "create patina6_p443t hash:ip family inet6 hashsize 1024 maxelem 65536",
        ])
        let v4 = lines(rendered["rules.v4"])
        #expect(index(v4, "-d 10.255.255.53/32 -p tcp -m tcp --dport 53 -m owner --uid-owner 0") != nil)
        #expect(index(lines(rendered["rules.v6"]), "-d 2001:db8::53/128 -p udp -m udp --dport 5353 -m owner --uid-owner 0") != nil)
    }

    @Test func manyPortsShareShortSetNames() throws {
        let ports = (8000..<8020).map { "many.example.com:\($0)/tcp" }
        let rendered = try plan(ports).render(templates: templates)
        let setNames = lines(rendered["ipsets"]).map { $0.split(separator: " ")[1] }
        #expect(setNames.allSatisfy { $0.count <= 31 })
        let v4 = lines(rendered["rules.v4"]).filter { $0.contains("-m multiport") }
        #expect(v4.count == 2, "20 ports need two multiport rules of at most 15")
        #expect(v4.allSatisfy { $0.contains("--dports") && $0.split(separator: ",").count <= 15 })
    }

    @Test func plansAreValidated() throws {
        #expect(throws: FirewallError.self) { try plan(["pypi.org"], upstream: []) }
        #expect(throws: FirewallError.self) { try plan([], upstream: ["127.0.0.53"]) }
        #expect(throws: FirewallError.self) { try plan([], upstream: ["dns.example.com"]) }
        #expect(throws: FirewallError.self) {
            try FirewallPlan(entries: [], agentEndpoints: [], upstreamDNS: [], hostAddresses: ["nope"], gateway: nil)
        }
        // Addresses only: no resolver needed.
        #expect(try FirewallPlan(entries: AllowList.parse(["10.0.0.1:80"], source: "t"), agentEndpoints: [],
                                 upstreamDNS: [], hostAddresses: [], gateway: nil).entries.count == 1)
        #expect(try FirewallPlan.parseDNSServer("10.0.0.2#5353").description == "10.0.0.2:5353")
        #expect(try FirewallPlan.parseDNSServer("[2001:db8::53]:53").dnsmasq == "2001:db8::53")
    }

    @Test func duplicatesAreDropped() throws {
        let p = try plan(["172.17.0.1:4321/tcp", "pypi.org", "PYPI.org", "10.0.0.1"])
        #expect(p.allEntries.map(\.description) == ["172.17.0.1:4321/tcp", "pypi.org", "10.0.0.1"])
        #expect(p.allEntries.first?.source == "patina model proxy")
    }

    @Test func upstreamServersFromResolvConf() {
        let conf = "# generated\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nnameserver ::1\nsearch example.com\n"
        #expect(FirewallPlan.upstreamServers(resolvConf: conf) == ["10.255.255.53", "fe80::1"])
    }

    @Test func selfTestProbesWhatWasAllowed() throws {
        var firewall = try plan(["10.1.2.3:8080/tcp", "10.1.2.4:53000/udp", "10.0.0.0/8:443", "pypi.org:443/tcp",
                                 "*.example.com", "example.org", "proxy.golang.org:443/tcp"])
        // A name only patina's toolchain presets brought in: skipped when it does not resolve.
        firewall.optionalNames = ["proxy.golang.org"]
        let rendered = try firewall.render(templates: templates)
        let script = try #require(rendered["selftest.sh"])
        for line in ["blocked_tcp '172.17.0.1' 18080 '172.17.0.1:18080' &",
                     "blocked_udp '172.17.0.1' 18081 '172.17.0.1:18081' &",
                     "foreign_dns_udp '172.17.0.1' 18053 '172.17.0.1:18053' &",
                     "foreign_dns_tcp '172.17.0.1' 18053 '172.17.0.1:18053' &",
                     "blocked_name 'blocked.patina-selftest.invalid' &",
                     "resolver_nxdomain 'blocked.patina-selftest.invalid' &",
                     "reach_tcp '172.17.0.1' 4321 '172.17.0.1:4321/tcp' &",
                     "reach_tcp '10.1.2.3' 8080 '10.1.2.3:8080/tcp' &",
                     "resolve 'pypi.org' '443' '' &",
                     "resolve 'example.org' '' '' &",
                     "resolve 'proxy.golang.org' '443' 'optional' &",
                     "echo \"SKIP resolve $1 not found",
                     "'reach-tcp pypi.org:443'",
                     "'resolve example.org'",
                     "'SKIP allowed 10.0.0.0/8:443 a block, not one host'",
                     "'SKIP allowed *.example.com a pattern, no one name to resolve'",
                     "'SKIP allowed 10.1.2.4:53000/udp no TCP port to connect to'",
                     "deadline=3"] {
            #expect(script.contains(line), "missing \(line)")
        }
        #expect(!script.contains("reach_tcp '10.1.2.4'"))
    }

    @Test func dnsQueryIsWellFormed() {
        let query = FirewallPlan.dnsQuery(for: "a.bc")
        #expect(query == [0x70, 0x61, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                          1, 0x61, 2, 0x62, 0x63, 0, 0, 1, 0, 1])
        #expect(FirewallPlan.printfEscaped([0x00, 0x25, 0xff]) == "\\x00\\x25\\xff")
        #expect(FirewallPlan.lengthPrefixed([1, 2, 3]).prefix(2) == [0, 3])
    }

    @Test func scriptsAreValidBashAndWritten() throws {
        let rendered = try plan(["10.1.2.3:8080/tcp", "pypi.org:443/tcp", "*.example.com"]).render(templates: templates)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patina-fw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try rendered.write(to: dir)
        for name in RenderedFirewall.fileNames {
            let path = dir.appendingPathComponent(name).path
            #expect(FileManager.default.fileExists(atPath: path))
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == (name.hasSuffix(".sh") ? 0o755 : 0o644))
        }
        for script in ["apply.sh", "selftest.sh"] {
            let bash = Process()
            bash.executableURL = URL(fileURLWithPath: "/bin/bash")
            bash.arguments = ["-n", dir.appendingPathComponent(script).path]
            try bash.run()
            bash.waitUntilExit()
            #expect(bash.terminationStatus == 0, "\(script) does not parse")
        }
    }

    @Test func netguardDockerfile() throws {
        let dockerfile = try Netguard.dockerfile(templates: templates, baseImage: "patina-test/bookworm:minbase")
        #expect(dockerfile.contains("FROM patina-test/bookworm:minbase\n"))
        for fragment in ["--no-install-recommends", "iptables", "ipset", "dnsmasq-base", "iproute2", "rm -rf /var/lib/apt/lists/*"] {
            #expect(dockerfile.contains(fragment))
        }
    }
}
