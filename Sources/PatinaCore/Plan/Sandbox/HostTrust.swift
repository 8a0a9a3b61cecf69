import Foundation
import PatinaSandbox

/// What the sandbox borrows from this machine's network setup, so it works on
/// networks that inspect TLS or go through a proxy: the CA certificates the host
/// trusts (copied into the image; verification is never switched off), and the
/// proxy variables (passed by name, the proxy's host added to the allow-list).
public struct HostTrust: Sendable, Equatable {
    /// The files the certificates were read from.
    public var caFiles: [String] = []
    /// Their certificates, one PEM block each, duplicates removed.
    public var certificates: [String] = []
    public var proxies: [Proxy] = []
    /// Things worth a line in the step log (a proxy the sandbox cannot reach).
    public var notes: [String] = []

    public var pem: String { certificates.joined(separator: "\n") + (certificates.isEmpty ? "" : "\n") }

    public struct Proxy: Sendable, Equatable {
        /// The variables that name it (HTTPS_PROXY, https_proxy, …).
        public var variables: [String]
        public var host: String
        public var port: Int
        public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public static let proxyVariables = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"]

    /// Where systems keep the bundle of CAs they trust, most specific first.
    static let systemBundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]

    /// The variables passed into the sandbox (by name: a proxy URL may hold a password).
    public var passedVariables: [String] { proxies.flatMap(\.variables) }

    public static func load(
        configured: [String]?, hostCA: Bool, repositoryRoot: URL, environment: [String: String]
    ) throws -> HostTrust {
        var trust = HostTrust()
        if hostCA {
            var files: [String] = []
            if let configured {
                for path in configured {
                    var expanded = path
                    if expanded.hasPrefix("~/"), let home = environment["HOME"] { expanded = home + expanded.dropFirst() }
                    let url = expanded.hasPrefix("/") ? URL(fileURLWithPath: expanded) : repositoryRoot.appendingPathComponent(expanded)
                    files.append(url.standardizedFileURL.path)
                }
            } else if let bundle = ([environment["SSL_CERT_FILE"]].compactMap { $0 } + systemBundles)
                        .first(where: { FileManager.default.isReadableFile(atPath: $0) }) {
                files = [bundle]
            } else {
                trust.notes.append("no system CA bundle on this machine (looked at \(systemBundles.joined(separator: ", "))): the image trusts only its own CAs")
            }
            for file in files {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw PlanError("ca_certificates in .patina/config.json: \(file) is not a readable file")
                }
                let blocks = certificates(in: text)
                guard !blocks.isEmpty else {
                    throw PlanError("ca_certificates in .patina/config.json: \(file) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
                }
                trust.caFiles.append(file)
                var seen = Set(trust.certificates)
                for block in blocks where seen.insert(block).inserted { trust.certificates.append(block) }
            }
        }
        trust.proxies = try proxies(environment: environment, notes: &trust.notes)
        // NO_PROXY goes along with the first proxy: it only means something with one.
        if !trust.proxies.isEmpty {
            trust.proxies[0].variables += ["NO_PROXY", "no_proxy"].filter { !(environment[$0] ?? "").isEmpty }
        }
        return trust
    }

    /// The PEM CERTIFICATE blocks of a bundle, normalised (other blocks and text dropped).
    /// Read as bytes: a system bundle has ~150 certificates and is read on every run.
    static func certificates(in text: String) -> [String] {
        let begin = Array("-----BEGIN CERTIFICATE-----".utf8), end = Array("-----END CERTIFICATE-----".utf8)
        func isBase64(_ byte: UInt8) -> Bool {
            (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2B || byte == 0x2F || byte == 0x3D
        }
        var blocks: [String] = []
        var current: [ArraySlice<UInt8>]?
        let bytes = Array(text.utf8)
        for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            // Carriage returns anywhere and surrounding blanks do not count.
            var line = rawLine.contains(0x0D) ? ArraySlice(rawLine.filter { $0 != 0x0D }) : rawLine
            while let first = line.first, first == 0x20 || first == 0x09 { line = line.dropFirst() }
            while let last = line.last, last == 0x20 || last == 0x09 { line = line.dropLast() }
            if line.elementsEqual(begin) {
                current = [line]
            } else if line.elementsEqual(end), var lines = current {
                lines.append(line)
                if lines.count > 2 { blocks.append(String(decoding: Array(lines.joined(separator: [0x0A])), as: UTF8.self)) }
                current = nil
            } else if current != nil {
                guard line.allSatisfy(isBase64) else {
                    current = nil  // not base64: not a certificate
                    continue
                }
                if !line.isEmpty { current?.append(line) }
            }
        }
        return blocks
    }

    /// HTTP(S)_PROXY as the sandbox can use them. A proxy on this machine's loopback is
    /// out of the sandbox's reach: said, and not passed.
    static func proxies(environment: [String: String], notes: inout [String]) throws -> [Proxy] {
        var out: [Proxy] = []
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { continue }
            let text = raw.contains("://") ? raw : "http://" + raw
            guard let url = URL(string: text), let host = url.host, !host.isEmpty else {
                throw PlanError("\(name)=\(raw) is not a proxy URL (expected http://HOST:PORT)")
            }
            let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host.lowercased()
            let port = url.port ?? (url.scheme == "https" ? 443 : 80)
            if bare == "localhost" || bare.hasPrefix("127.") || bare == "::1" {
                notes.append("\(name) points at this machine's loopback (\(bare):\(port)), which the sandbox cannot reach: not passed")
                continue
            }
            if let index = out.firstIndex(where: { $0.host == bare && $0.port == port }) {
                out[index].variables.append(name)
            } else {
                out.append(Proxy(variables: [name], host: bare, port: port))
            }
        }
        return out
    }

    /// The allow-list entries that let the sandbox reach the proxies.
    public func proxyAllowEntries() throws -> [AllowEntry] {
        try proxies.map { try AllowList.parseEntry("\($0.endpoint)/tcp", source: $0.variables.first ?? "proxy") }
    }
}
