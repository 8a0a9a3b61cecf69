import Foundation
import PatinaTemplates
import Testing
@testable import PatinaSandbox

/// Networks that answer public names with their own addresses: allowed names are
/// answered with exactly what this machine resolves them to, never anything else.
@Suite("DNS answers pinned to the host's resolution")
struct DNSPinTests {
    let templates = TemplateSet(dataDirectory: firewallDataDirectory, overrideDirectory: nil)

    @Test func whichNamesArePinned() {
        let (pins, notes) = HostResolution.pins(
            names: ["pypi.org", "public.example", "mirror.corp", "mirror2.corp", "meta.example", "me.example", "gone.example"],
            resolved: [
                "pypi.org": ["203.0.113.80"],                  // a TEST-NET answer: the guard drops it, the firewall does not close it
                "public.example": ["93.184.215.14"],           // nothing to do: forwarded as always
                "mirror.corp": ["10.20.30.40"],                // private: only when accept_private_dns names it
                "mirror2.corp": ["10.20.30.41"],
                "meta.example": ["169.254.169.254"],           // never: link-local, cloud metadata
                "me.example": ["192.168.1.20"],                // never: this machine
            ],
            accepted: ["mirror.corp", "me.example"], closed: ["192.168.1.20", "172.17.0.1"])
        #expect(pins.map(\.name) == ["pypi.org", "mirror.corp"])
        #expect(pins[0].addresses == ["203.0.113.80"] && pins[0].reason.hasPrefix("allowed: the sandbox resolver answers it with what this machine resolves it to") && !pins[0].reason.contains("would drop"))
        #expect(pins[1].reason.contains("accept_private_dns"))
        #expect(notes.count == 3)
        #expect(notes.contains { $0.contains("mirror2.corp resolves to private 10.20.30.41") && $0.contains("accept_private_dns") })
        #expect(notes.contains { $0.contains("meta.example resolves to 169.254.169.254") })
        #expect(notes.contains { $0.contains("me.example resolves to 192.168.1.20") })
    }

    func plan(pinned: [PinnedName]) throws -> FirewallPlan {
        try FirewallPlan(
            entries: AllowList.parse(["pypi.org:443/tcp", "mirror.corp:443/tcp", "other.example:443/tcp"], source: "--allow"),
            agentEndpoints: [try ClaudeEndpoints.modelProxy(url: "http://172.17.0.1:4321")],
            upstreamDNS: ["10.255.255.53"], hostAddresses: ["192.168.1.20"], gateway: "172.17.0.1",
            selfTest: .canary(address: "172.17.0.1", tcpPort: 18080, udpPort: 18081, dnsPort: 18053), pinned: pinned)
    }

    @Test func pinnedNamesAreAnsweredLocallyAndTheirAddressesAllowedFromTheStart() throws {
        let rendered = try plan(pinned: [
            PinnedName(name: "pypi.org", addresses: ["203.0.113.80"], reason: "host"),
            PinnedName(name: "mirror.corp", addresses: ["10.20.30.40"], reason: "accept_private_dns"),
            PinnedName(name: "not-allowed.example", addresses: ["203.0.113.9"], reason: "host"),
        ]).render(templates: templates)
        let dnsmasq = try #require(rendered.files["dnsmasq.conf"])
        #expect(dnsmasq.contains("host-record=pypi.org,203.0.113.80"))
        #expect(dnsmasq.contains("host-record=mirror.corp,10.20.30.40"))
        // Never forwarded: the upstream's answer cannot add anything.
        #expect(!dnsmasq.contains("server=/pypi.org/"))
        #expect(dnsmasq.contains("server=/other.example/10.255.255.53"))
        // A name the allow-list does not hold is never pinned.
        #expect(!dnsmasq.contains("not-allowed.example"))
        #expect(dnsmasq.contains("stop-dns-rebind"))
        let ipsets = try #require(rendered.files["ipsets"])
        #expect(ipsets.contains("add patina4_p443t 203.0.113.80"))
        #expect(ipsets.contains("add patina4_p443t 10.20.30.40"))
        // The private address is opened on the name's port only, before the private ranges are closed.
        let rules = try #require(rendered.files["rules.v4"]).split(separator: "\n").map(String.init)
        let open = try #require(rules.firstIndex { $0.contains("-d 10.20.30.40/32 -p tcp -m tcp --dport 443") && $0.hasSuffix("-j ACCEPT") })
        let closed = try #require(rules.firstIndex { $0.contains("-d 10.0.0.0/8") })
        #expect(open < closed)
        #expect(!rules.contains { $0.contains("203.0.113.80") })
    }

    @Test func withoutPinsNothingChanges() throws {
        let rendered = try plan(pinned: []).render(templates: templates)
        #expect(!(rendered.files["dnsmasq.conf"] ?? "").contains("host-record="))
        #expect(!(rendered.files["ipsets"] ?? "").contains("add "))
    }

    @Test func hostResolutionOfLocalhost() {
        #expect(HostResolution.addresses(of: "localhost").contains { $0 == "127.0.0.1" || $0 == "::1" })
        #expect(HostResolution.addresses(of: "no-such-name.invalid").isEmpty)
    }
}
