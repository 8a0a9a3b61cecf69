import Foundation

/// What the sandbox's network rules stopped during a run, read from resolver.log: the names
/// the sandbox resolver refused (dnsmasq's `config NAME is NXDOMAIN` lines) and the
/// addresses the firewall rejected (the `== rejected destinations LIST` sections: the
/// kernel's xt_recent lists of PATINA_REJECT, emptied after the self-test, so every entry
/// is the agent's).
/// The self-test's own names (`*.patina-selftest.invalid`) are left out.
public struct FirewallActivity: Sendable, Equatable {
    /// A name the resolver refused, and how many queries for it were answered NXDOMAIN.
    public struct DeniedName: Sendable, Equatable {
        public var name: String
        public var count: Int

        public init(name: String, count: Int) {
            self.name = name
            self.count = count
        }
    }

    /// An address the agent tried to reach and the firewall rejected.
    public struct Rejection: Sendable, Equatable {
        public enum Family: String, Sendable, Equatable {
            case ipv4 = "IPv4", ipv6 = "IPv6"
        }

        public var family: Family
        public var destination: String
        /// Rejected packets to it (the kernel keeps the last 20 per address).
        public var packets: Int

        public init(family: Family, destination: String, packets: Int) {
            self.family = family
            self.destination = destination
            self.packets = packets
        }
    }

    /// In the order the resolver first refused them.
    public var deniedNames: [DeniedName]
    /// Rejected addresses, in the order resolver.log lists them.
    public var rejected: [Rejection]
    /// Whether resolver.log had the firewall's lists at all (runs before they were
    /// recorded have none: what the firewall rejected is then unknown, not nothing).
    public var countersRecorded: Bool

    public init(deniedNames: [DeniedName] = [], rejected: [Rejection] = [], countersRecorded: Bool = false) {
        self.deniedNames = deniedNames
        self.rejected = rejected
        self.countersRecorded = countersRecorded
    }

    /// Nothing refused and nothing rejected (which says nothing about connections when the
    /// counters were not recorded).
    public var isEmpty: Bool { deniedNames.isEmpty && rejected.isEmpty }

    /// The domain of the names the sandbox's self-test looks up to prove they are refused.
    public static let selfTestDomain = "patina-selftest.invalid"

    /// Never fails: lines it does not understand are skipped.
    public static func parse(resolverLog: String) -> FirewallActivity {
        var activity = FirewallActivity()
        var names: [String: Int] = [:], order: [String] = []
        // nil: dnsmasq's own log (before any section); some(nil): a section that is not a listing.
        var section: Rejection.Family?? = nil
        for raw in resolverLog.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = String(raw)
            if line.hasPrefix("== ") {
                if line.hasPrefix(RejectedDestinations.header) {
                    section = .some(line.hasSuffix("6") ? .ipv6 : .ipv4)
                    activity.countersRecorded = true
                } else {
                    section = .some(nil)
                }
                continue
            }
            switch section {
            case .none:
                guard let name = deniedName(line), !isSelfTest(name) else { continue }
                if names[name] == nil { order.append(name) }
                names[name, default: 0] += 1
            case .some(.some(let family)):
                if let rejection = rejection(line, family: family) { activity.rejected.append(rejection) }
            case .some(.none):
                continue
            }
        }
        activity.deniedNames = order.map { DeniedName(name: $0, count: names[$0] ?? 0) }
        return activity
    }

    /// `dnsmasq[6]: config NAME is NXDOMAIN` -> NAME.
    static func deniedName(_ line: String) -> String? {
        let words = line.split(separator: " ")
        guard let i = words.firstIndex(of: "config"), i + 3 < words.count,
              words[i + 2] == "is", words[i + 3] == "NXDOMAIN"
        else { return nil }
        return String(words[i + 1])
    }

    static func isSelfTest(_ name: String) -> Bool {
        let lower = name.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        return lower == selfTestDomain || lower.hasSuffix("." + selfTestDomain)
    }

    /// One entry of an xt_recent list with `--rdest`:
    /// `src=ADDRESS ttl: 64 last_seen: J oldest_pkt: N J1, J2, ...` (one time per packet).
    static func rejection(_ line: String, family: Rejection.Family) -> Rejection? {
        guard line.hasPrefix("src="), let address = line.dropFirst(4).split(separator: " ").first, !address.isEmpty else { return nil }
        var packets = 1
        if let oldest = line.range(of: "oldest_pkt: ") {
            let times = line[oldest.upperBound...].split(separator: " ", maxSplits: 1).dropFirst().first ?? ""
            packets = max(1, times.split(separator: ",").count)
        }
        return Rejection(family: family, destination: String(address), packets: packets)
    }
}
