import Foundation

/// One allow-list entry: where the agent may connect.
///
/// Written `HOST[:PORT][/tcp|/udp]`:
/// - `pypi.org` — exactly that name (not its subdomains), any port;
/// - `*.example.com` — every subdomain of example.com (not example.com itself);
/// - `10.1.2.3`, `10.0.0.0/8`, `2001:db8::1`, `2001:db8::/32` — an address or a CIDR block;
/// - `api.anthropic.com:443`, `10.1.2.3:8080/tcp`, `[2001:db8::1]:443` — with a port
///   (TCP and UDP unless `/tcp` or `/udp` says which).
public struct AllowEntry: Sendable, Hashable, CustomStringConvertible {
    public enum Host: Sendable, Hashable {
        /// An exact host name, lower case, no trailing dot.
        case name(String)
        /// `*.BASE`: any name below BASE. Holds BASE.
        case domainSuffix(String)
        /// An address or CIDR block.
        case network(IPNetwork)
    }

    public enum Transport: String, Sendable, Hashable {
        /// TCP and UDP.
        case both
        case tcp
        case udp

        var protocols: [String] {
            switch self {
            case .both: ["tcp", "udp"]
            case .tcp: ["tcp"]
            case .udp: ["udp"]
            }
        }
    }

    public let host: Host
    /// nil: any port (and any protocol).
    public let port: Int?
    /// Only meaningful with a port.
    public let transport: Transport
    /// Where the entry came from, for messages: `--allow`, `preset github, line 3`.
    public let source: String

    public init(host: Host, port: Int? = nil, transport: Transport = .both, source: String) {
        self.host = host
        self.port = port
        self.transport = port == nil ? .both : transport
        self.source = source
    }

    /// The entry in canonical form, parseable again: `pypi.org:443/tcp`.
    public var description: String {
        var text: String
        switch host {
        case .name(let name): text = name
        case .domainSuffix(let base): text = "*." + base
        case .network(let network):
            text = network.description
            if port != nil, network.family == .v6 { text = "[\(text)]" }
        }
        if let port { text += ":\(port)" }
        if transport != .both { text += "/" + transport.rawValue }
        return text
    }

    /// What the entry allows, without where it came from: equal keys are duplicates.
    public var key: String { description }

    public var name: String? {
        if case .name(let name) = host { return name }
        return nil
    }

    public var network: IPNetwork? {
        if case .network(let network) = host { return network }
        return nil
    }

    /// Whether the entry is a host name or a `*.` pattern (resolved by the sandbox resolver).
    public var isNamed: Bool { network == nil }

    /// Whether the entry opens TCP port 22 explicitly.
    public var namesSSH: Bool { port == 22 && transport != .udp }
}

/// A file of allow-list entries, one a line, `#` comments; `preset NAME` lines switch
/// a preset on (used by a repository's allow file, not inside presets themselves).
public struct AllowFile: Sendable, Equatable {
    public var entries: [AllowEntry]
    public var presets: [String]
}

/// Parses allow-list entries. Every error names the entry and its source.
public enum AllowList {
    public static func parse(_ entries: [String], source: String) throws -> [AllowEntry] {
        try entries.map { try parseEntry($0, source: source) }
    }

    /// Parses a file's text. Each entry's source becomes `SOURCE, line N`.
    public static func parseFile(_ text: String, source: String, allowPresets: Bool = true) throws -> AllowFile {
        var file = AllowFile(entries: [], presets: [])
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard !words.isEmpty else { continue }
            let where_ = "\(source), line \(index + 1)"
            if words[0] == "preset" {
                guard allowPresets else {
                    throw FirewallError.invalidEntry(entry: String(line.trimmed), source: where_, reason: "a preset cannot switch on another preset")
                }
                guard words.count == 2 else {
                    throw FirewallError.invalidEntry(entry: String(line.trimmed), source: where_, reason: "write one preset a line: preset NAME")
                }
                file.presets.append(String(words[1]))
                continue
            }
            guard words.count == 1 else {
                throw FirewallError.invalidEntry(entry: String(line.trimmed), source: where_, reason: "one entry a line")
            }
            file.entries.append(try parseEntry(String(words[0]), source: where_))
        }
        return file
    }

    public static func parseEntry(_ raw: String, source: String) throws -> AllowEntry {
        func fail(_ reason: String) -> FirewallError {
            .invalidEntry(entry: raw, source: source, reason: reason)
        }
        var text = Substring(raw.trimmed)
        guard !text.isEmpty else { throw fail("empty entry") }
        guard !text.contains(where: { $0.isWhitespace }) else { throw fail("contains spaces") }
        if let scheme = text.range(of: "://") {
            let rest = text[scheme.upperBound...]
            let hostPort = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            let schemeName = text[..<scheme.lowerBound].lowercased()
            let defaultPort = schemeName == "https" ? ":443" : schemeName == "http" ? ":80" : ""
            let hint = hostPort.contains(":") || hostPort.isEmpty ? String(hostPort) : hostPort + defaultPort
            throw fail("a URL, not a host; write HOST[:PORT]" + (hint.isEmpty ? "" : ", e.g. \(hint)"))
        }

        var transport = AllowEntry.Transport.both
        let lowered = text.lowercased()
        if lowered.hasSuffix("/tcp") || lowered.hasSuffix("/udp") {
            transport = lowered.hasSuffix("/tcp") ? .tcp : .udp
            text = text.dropLast(4)
        }

        var hostText: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("'[' without a closing ']'") }
            hostText = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw fail("expected ':PORT' after ']'") }
                portText = rest.dropFirst()
            }
            guard case .success = IPNetwork.parse(String(hostText)), hostText.contains(":") else {
                throw fail("brackets hold an IPv6 address, \"\(hostText)\" is not one")
            }
        } else {
            let colons = text.filter { $0 == ":" }.count
            if colons == 1, let colon = text.firstIndex(of: ":") {
                hostText = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else if colons > 1 {
                let address = text.prefix { $0 != "/" }
                guard IPNetwork.parseV6(String(address)) != nil else {
                    throw fail("too many ':' (an IPv6 address with a port goes in brackets: [2001:db8::1]:443)")
                }
                hostText = text
            } else {
                hostText = text
            }
        }

        var port: Int?
        if let portText {
            guard !portText.isEmpty else { throw fail("missing port after ':'") }
            guard portText.allSatisfy(\.isASCIIDigit), portText.count <= 5, let value = Int(portText) else {
                throw fail("port \"\(portText)\" is not a number")
            }
            guard (1...65535).contains(value) else { throw fail("port \(value) is out of range 1-65535") }
            guard value != 53 else {
                throw fail("port 53 (DNS) cannot be allowed: the sandbox resolver answers every lookup, and DNS to any other server is blocked")
            }
            port = value
        }
        if transport != .both, port == nil { throw fail("/\(transport.rawValue) needs a port, e.g. HOST:443/\(transport.rawValue)") }

        let host = try parseHost(String(hostText), fail: fail)
        return AllowEntry(host: host, port: port, transport: transport, source: source)
    }

    static func parseHost(_ text: String, fail: (String) -> FirewallError) throws -> AllowEntry.Host {
        guard !text.isEmpty else { throw fail("missing host") }
        let looksLikeAddress = text.contains(":") || text.contains("/")
            || text.allSatisfy { $0.isASCIIDigit || $0 == "." }
        if looksLikeAddress {
            if let slash = text.firstIndex(of: "/"), case .failure = IPNetwork.parse(String(text[..<slash])) {
                throw fail("'/' is only for CIDR blocks (10.0.0.0/8) and a closing /tcp or /udp")
            }
            switch IPNetwork.parse(text) {
            case .failure(let reason):
                throw fail(reason.description)
            case .success(let network):
                if network.prefix == 0 {
                    throw fail("/0 would allow every address; use --no-firewall to run without a firewall")
                }
                if network.isIPv4Mapped {
                    throw fail("an IPv4-mapped IPv6 address; write the IPv4 address instead")
                }
                return .network(network)
            }
        }
        var name = text.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        var isSuffix = false
        if name.hasPrefix("*.") {
            isSuffix = true
            name.removeFirst(2)
        }
        if name == "*" || (name.isEmpty && isSuffix) || text == "*" {
            throw fail("'*' alone would allow every name; use --no-firewall to run without a firewall")
        }
        if name.contains("*") { throw fail("'*' may only start a pattern, as in *.example.com") }
        guard name.allSatisfy(\.isASCII) else {
            throw fail("not an ASCII host name (write internationalised names in their xn-- form)")
        }
        guard name.count <= 253 else { throw fail("host name longer than 253 characters") }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty else { throw fail("empty label in host name (\"..\" or a leading '.')") }
            guard label.count <= 63 else { throw fail("label \"\(label)\" is longer than 63 characters") }
            guard label.allSatisfy({ $0.isLetter || $0.isASCIIDigit || $0 == "-" || $0 == "_" }) else {
                throw fail("\"\(label)\" holds a character not allowed in a host name")
            }
            guard !label.hasPrefix("-"), !label.hasSuffix("-") else {
                throw fail("label \"\(label)\" starts or ends with '-'")
            }
        }
        guard labels.count >= 2 else {
            throw fail(isSuffix
                ? "*.\(name) would allow a whole top-level domain; name the domain, e.g. *.example.\(name)"
                : "\"\(name)\" is not a fully qualified name (the sandbox resolver answers only names with a dot)")
        }
        if labels.last!.allSatisfy(\.isASCIIDigit) { throw fail("\"\(name)\" is not a valid IPv4 address or host name") }
        return isSuffix ? .domainSuffix(name) : .name(name)
    }
}

extension StringProtocol {
    var trimmed: String {
        String(drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
