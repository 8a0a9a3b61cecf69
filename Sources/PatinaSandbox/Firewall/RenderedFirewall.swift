import Foundation

/// The rendered firewall files of one run, by name. Mounted read-only at
/// `/patina/firewall/` in the network holder and in every sandbox container (whose
/// probes run `selftest.sh`).
public struct RenderedFirewall: Sendable, Equatable {
    /// File name -> template, rendered in this order.
    public static let templates: [(name: String, template: String)] = [
        ("rules.v4", "firewall/rules.v4.mustache"),
        ("rules.v6", "firewall/rules.v6.mustache"),
        ("ipsets", "firewall/ipsets.mustache"),
        ("dnsmasq.conf", "firewall/dnsmasq.conf.mustache"),
        ("holder.sh", "firewall/holder.sh.mustache"),
        ("apply.sh", "firewall/apply.sh.mustache"),
        ("selftest.sh", "firewall/selftest.sh.mustache"),
    ]
    public static var fileNames: [String] { templates.map(\.name) }
    /// Files that are patina's mechanism rather than the firewall's policy.
    public static let mechanism: Set<String> = ["holder.sh"]

    public let files: [String: String]

    public init(files: [String: String]) { self.files = files }

    public subscript(name: String) -> String? { files[name] }

    /// Writes every file into `directory` (created if needed); scripts executable.
    public func write(to directory: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in files.keys.sorted() {
            let url = directory.appendingPathComponent(name)
            try Data(files[name]!.utf8).write(to: url, options: .atomic)
            try fm.setAttributes([.posixPermissions: name.hasSuffix(".sh") ? 0o755 : 0o644], ofItemAtPath: url.path)
        }
    }
}
