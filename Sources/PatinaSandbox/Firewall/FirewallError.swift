/// Why a firewall could not be planned, rendered or checked. One line each,
/// naming the thing at fault and where it came from.
public enum FirewallError: Error, CustomStringConvertible, Equatable, Sendable {
    /// An allow-list entry that does not parse.
    case invalidEntry(entry: String, source: String, reason: String)
    /// A preset name that names no file in `firewall/presets/`.
    case unknownPreset(name: String, known: [String])
    /// A setting of the plan itself (resolver, host address, gateway) that is unusable.
    case invalidSetting(name: String, value: String, reason: String)
    /// The sandbox would need a resolver but has none.
    /// `looked`: the files the host's servers were looked for in.
    case noUpstreamDNS(names: [String], looked: [String])

    public var description: String {
        switch self {
        case .invalidEntry(let entry, let source, let reason):
            return "invalid allow-list entry \"\(entry)\" (from \(source)): \(reason)"
        case .unknownPreset(let name, let known):
            let list = known.isEmpty ? "none are installed" : "known presets: \(known.joined(separator: ", "))"
            return "unknown firewall preset \"\(name)\" (\(list))"
        case .invalidSetting(let name, let value, let reason):
            return "invalid firewall \(name) \"\(value)\": \(reason)"
        case .noUpstreamDNS(let names, let looked):
            let shown = names.prefix(3).joined(separator: ", ") + (names.count > 3 ? ", …" : "")
            let whereLooked = looked.isEmpty ? "" : " (none a container can reach in \(looked.joined(separator: " or ")))"
            return "the allow-list names hosts (\(shown)) but the sandbox resolver has no upstream DNS server\(whereLooked); set \"dns\": [\"IP\"] in .patina/config.json"
        }
    }
}
