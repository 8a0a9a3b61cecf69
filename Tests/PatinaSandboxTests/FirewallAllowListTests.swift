import Testing
@testable import PatinaSandbox

@Suite("Allow-list parser")
struct FirewallAllowListTests {
    @Test("good entries parse to their canonical form", arguments: [
        ("pypi.org", "pypi.org"),
        ("PyPI.org.", "pypi.org"),
        ("  pypi.org  ", "pypi.org"),
        ("*.example.com", "*.example.com"),
        ("api.anthropic.com:443", "api.anthropic.com:443"),
        ("api.anthropic.com:443/TCP", "api.anthropic.com:443/tcp"),
        ("example.com:5000/udp", "example.com:5000/udp"),
        ("10.1.2.3", "10.1.2.3"),
        ("10.1.2.3:8080/tcp", "10.1.2.3:8080/tcp"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/32", "10.1.2.3"),
        ("10.20.0.0/16:8080", "10.20.0.0/16:8080"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("[2001:db8::/32]:443/tcp", "[2001:db8::/32]:443/tcp"),
        ("_service.example.com", "_service.example.com"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ])
    func goodEntry(text: String, canonical: String) throws {
        let entry = try AllowList.parseEntry(text, source: "--allow")
        #expect(entry.description == canonical)
        #expect(entry.source == "--allow")
        // The canonical form parses back to the same entry.
        #expect(try AllowList.parseEntry(entry.description, source: "--allow") == entry)
    }

    @Test func hostKinds() throws {
        #expect(try AllowList.parseEntry("pypi.org", source: "t").host == .name("pypi.org"))
        #expect(try AllowList.parseEntry("*.example.com", source: "t").host == .domainSuffix("example.com"))
        let network = try #require(try AllowList.parseEntry("10.0.0.0/8:443", source: "t").network)
        #expect(network.family == .v4)
        #expect(network.prefix == 8)
        #expect(network.cidr == "10.0.0.0/8")
        let entry = try AllowList.parseEntry("[2001:db8::1]:443/udp", source: "t")
        #expect(entry.network?.family == .v6)
        #expect(entry.port == 443)
        #expect(entry.transport == .udp)
        #expect(try AllowList.parseEntry("pypi.org", source: "t").port == nil)
        #expect(try AllowList.parseEntry("pypi.org:443", source: "t").transport == .both)
    }

    @Test("bad entries are refused with a reason", arguments: [
        ("", "empty"),
        ("   ", "empty"),
        ("foo:bar:baz", "too many ':'"),
        ("pypi.org:0", "out of range"),
        ("pypi.org:65536", "out of range"),
        ("pypi.org:99999999", "not a number"),
        ("pypi.org:http", "not a number"),
        ("pypi.org:", "missing port"),
        (":443", "missing host"),
        ("10.0.0.0/33", "prefix"),
        ("10.0.0.0/", "prefix"),
        ("2001:db8::/129", "prefix"),
        ("10.0.0.1/8", "10.0.0.0/8"),
        ("0.0.0.0/0", "every address"),
        ("::/0", "every address"),
        ("*", "every name"),
        ("*.", "every name"),
        ("*.com", "top-level domain"),
        ("foo.*.com", "may only start"),
        ("*foo.com", "may only start"),
        ("https://pypi.org/simple", "pypi.org:443"),
        ("http://example.com:8080", "example.com:8080"),
        ("pypi.org:53", "DNS"),
        ("8.8.8.8:53/udp", "DNS"),
        ("localhost", "fully qualified"),
        ("exa mple.com", "spaces"),
        ("-bad.com", "'-'"),
        ("bad-.com", "'-'"),
        ("bad..com", "empty label"),
        (".bad.com", "empty label"),
        ("1.2.3", "not an IPv4"),
        ("256.1.1.1", "not an IPv4"),
        ("1.2.3.4.5", "not an IPv4"),
        ("[::1", "closing"),
        ("[::1]443", "':PORT'"),
        ("[pypi.org]:443", "IPv6"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("pypi.org/tcp", "needs a port"),
        ("example.com/path", "CIDR"),
        ("bücher.de", "ASCII"),
        ("exa!mple.com", "not allowed in a host name"),
    ])
    func badEntry(text: String, reason: String) {
        #expect {
            try AllowList.parseEntry(text, source: "--allow")
        } throws: { error in
            guard let error = error as? FirewallError, case .invalidEntry(let entry, let source, let why) = error else {
                return false
            }
            return entry == text && source == "--allow" && why.contains(reason)
        }
    }

    @Test func errorNamesTheEntryAndItsSource() {
        let error = FirewallError.invalidEntry(entry: "foo:bar:baz", source: "--allow", reason: "too many ':'")
        #expect(error.description.hasPrefix("invalid allow-list entry \"foo:bar:baz\" (from --allow): "))
        do {
            _ = try AllowList.parse(["pypi.org", "foo:bar:baz"], source: ".patina/allow.txt")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".hasPrefix("invalid allow-list entry \"foo:bar:baz\" (from .patina/allow.txt): too many ':'"))
            #expect(!"\(error)".contains("\n"))
        }
    }

    @Test func fileWithCommentsPresetsAndLineNumbers() throws {
        let text = """
            # the project's hosts
            pypi.org:443/tcp   # the index

            preset github
            10.1.2.3:8080
            """
        let file = try AllowList.parseFile(text, source: ".patina/allow.txt")
        #expect(file.entries.map(\.description) == ["pypi.org:443/tcp", "10.1.2.3:8080"])
        #expect(file.entries.map(\.source) == [".patina/allow.txt, line 2", ".patina/allow.txt, line 5"])
        #expect(file.presets == ["github"])
    }

    @Test func fileErrorsNameTheLine() {
        #expect(throws: FirewallError.invalidEntry(entry: "a.com b.com", source: "f, line 2", reason: "one entry a line")) {
            try AllowList.parseFile("ok.com\na.com b.com", source: "f")
        }
        #expect(throws: FirewallError.invalidEntry(entry: "x:0", source: "f, line 1", reason: "port 0 is out of range 1-65535")) {
            try AllowList.parseFile("x:0", source: "f")
        }
        #expect(throws: FirewallError.self) {
            try AllowList.parseFile("preset github", source: "preset x", allowPresets: false)
        }
    }

    @Test func sshAndNames() throws {
        #expect(try AllowList.parseEntry("github.com:22", source: "t").namesSSH)
        #expect(try AllowList.parseEntry("github.com:22/tcp", source: "t").namesSSH)
        #expect(try !AllowList.parseEntry("github.com:22/udp", source: "t").namesSSH)
        #expect(try !AllowList.parseEntry("github.com", source: "t").namesSSH)
        #expect(try !AllowList.parseEntry("10.0.0.1", source: "t").namesSSH)
    }
}

@Suite("IP networks")
struct FirewallIPNetworkTests {
    @Test func containsAndMask() throws {
        let block = try IPNetwork.parse("172.16.0.0/12").get()
        #expect(block.contains(try IPNetwork.parse("172.17.0.1").get()))
        #expect(!block.contains(try IPNetwork.parse("172.32.0.1").get()))
        #expect(try IPNetwork.parse("fe80::/10").get().contains(try IPNetwork.parse("fe80::1").get()))
        #expect(try IPNetwork.parse("10.1.2.3").get().isHost)
        #expect(try IPNetwork.parse("::ffff:1.2.3.4").get().isIPv4Mapped)
    }
}

@Suite("Claude Code's own endpoints")
struct FirewallClaudeEndpointTests {
    @Test("the model proxy's URL allows exactly its host and port", arguments: [
        ("http://172.17.0.1:4321", "172.17.0.1:4321/tcp"),
        ("http://172.17.0.1:4321/v1/", "172.17.0.1:4321/tcp"),
        ("https://gateway.example.com", "gateway.example.com:443/tcp"),
        ("http://gateway.example.com", "gateway.example.com:80/tcp"),
        ("http://[2001:db8::5]:8080", "[2001:db8::5]:8080/tcp"),
    ])
    func proxyURL(url: String, entry: String) throws {
        let allowed = try ClaudeEndpoints.modelProxy(url: url)
        #expect(allowed.description == entry)
        #expect(allowed.source == "patina model proxy")
    }

    @Test("bad URLs", arguments: ["ftp://example.com", "not a url", "http://", "http://localhost:4321"])
    func badURL(url: String) {
        #expect(throws: FirewallError.self) { try ClaudeEndpoints.modelProxy(url: url) }
    }
}
