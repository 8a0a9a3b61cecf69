/// What the firewall of one run looked like and how its self-test went: read from the
/// holder's apply.sh output (the applied rules) and the self-test's, saved with the run (it is
/// Codable) and summarised by `patina show`.
public struct FirewallReport: Codable, Sendable, Equatable {
    public struct Check: Codable, Sendable, Equatable, CustomStringConvertible {
        public enum Status: String, Codable, Sendable { case pass = "PASS", fail = "FAIL", skip = "SKIP" }
        public let status: Status
        /// `blocked-tcp`, `blocked-udp`, `foreign-dns-udp`, `foreign-dns-tcp`, `blocked-name`,
        /// `resolver-nxdomain`, `reach-tcp`, `resolve`, `allowed` (skipped entries).
        public let name: String
        public let target: String
        public let detail: String

        public var description: String { "\(status.rawValue) \(name) \(target) \(detail)" }

        /// Parses `STATUS NAME TARGET DETAIL…`.
        public init?(line: some StringProtocol) {
            let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard words.count >= 3, let status = Status(rawValue: String(words[0])) else { return nil }
            self.status = status
            name = String(words[1])
            target = String(words[2])
            detail = words.count > 3 ? String(words[3]) : ""
        }
    }

    /// Each allow-list entry with its source: `pypi.org:443/tcp (preset pypi, line 2)`.
    public var entries: [String]
    public var rulesV4: [String]
    public var rulesV6: [String]
    /// The ipsets the resolver fills, by name.
    public var ipsets: [String]
    public var applyMilliseconds: Int?
    public var checks: [Check]
    public var selfTestMilliseconds: Int?
    /// Whether the self-test ran to its end (printed its DONE line).
    public var selfTestCompleted: Bool
    /// Self-test output that is not a check: error messages of a broken script.
    public var otherOutput: [String]

    public init(plan: FirewallPlan?, applyOutput: String, selfTestOutput: String) {
        entries = plan?.allEntries.map { "\($0) (\($0.source))" } ?? []
        rulesV4 = []
        rulesV6 = []
        ipsets = []
        checks = []
        selfTestCompleted = false
        otherOutput = []
        var section = ""
        for line in applyOutput.split(separator: "\n") {
            if line.hasPrefix("== ") { section = String(line.dropFirst(3)); continue }
            if line.hasPrefix("APPLIED ") { applyMilliseconds = Self.value("ms", in: line); continue }
            switch section {
            case "iptables -S": rulesV4.append(String(line))
            case "ip6tables -S": rulesV6.append(String(line))
            case "ipset list -t": if line.hasPrefix("Name: ") { ipsets.append(String(line.dropFirst(6))) }
            default: break
            }
        }
        for line in selfTestOutput.split(separator: "\n") {
            if let check = Check(line: line) {
                checks.append(check)
            } else if line.hasPrefix("DONE ") {
                selfTestCompleted = true
                selfTestMilliseconds = Self.value("ms", in: line)
            } else if !line.allSatisfy(\.isWhitespace) {
                otherOutput.append(String(line))
            }
        }
    }

    public var failures: [Check] { checks.filter { $0.status == .fail } }

    /// The firewall applied and every check passed.
    public var passed: Bool {
        !rulesV4.isEmpty && !rulesV6.isEmpty && selfTestCompleted && failures.isEmpty
            && checks.contains { $0.status == .pass }
    }

    /// One line saying why the run must stop, or nil when it may go on.
    public var failureReason: String? {
        if rulesV4.isEmpty || rulesV6.isEmpty { return "the firewall was not applied (no rules listed by apply.sh)" }
        if !failures.isEmpty {
            let shown = failures.prefix(3).map { "\($0.name) \($0.target): \($0.detail)" }.joined(separator: "; ")
            let checked = checks.filter { $0.status != .skip }.count
            return "firewall self-test failed (\(failures.count) of \(checked) checks): " + shown
                + (failures.count > 3 ? "; …" : "")
        }
        if !selfTestCompleted {
            return "firewall self-test did not finish" + (otherOutput.last.map { ": \($0)" } ?? "")
        }
        if !checks.contains(where: { $0.status == .pass }) { return "firewall self-test checked nothing" }
        return nil
    }

    /// A few lines for `patina show`.
    public var summary: String {
        let appended = { (rules: [String]) in rules.filter { $0.hasPrefix("-A ") }.count }
        var lines: [String] = []
        var head = "firewall: \(counted(entries.count, "allow-list entry", "allow-list entries")), \(appended(rulesV4)) IPv4 + \(appended(rulesV6)) IPv6 rules, \(counted(ipsets.count, "ipset"))"
        if let applyMilliseconds { head += ", applied in \(applyMilliseconds) ms" }
        lines.append(head)
        let passedCount = checks.filter { $0.status == .pass }.count
        let skipped = checks.filter { $0.status == .skip }.count
        var test = "self-test: " + (passed ? "passed" : "FAILED")
        test += " \(passedCount)/\(checks.count - skipped) checks"
        if skipped > 0 { test += " (\(counted(skipped, "entry", "entries")) not probed)" }
        if let selfTestMilliseconds { test += " in \(selfTestMilliseconds) ms" }
        lines.append(test)
        for failure in failures { lines.append("  \(failure)") }
        if !selfTestCompleted, let last = otherOutput.last { lines.append("  \(last)") }
        for entry in entries.prefix(20) { lines.append("  allow \(entry)") }
        if entries.count > 20 { lines.append("  … and \(entries.count - 20) more") }
        return lines.joined(separator: "\n")
    }

    /// Everything, for the run directory's firewall.txt.
    public var text: String {
        var out = [summary, "", "== allow-list"]
        out += entries
        out += ["", "== self-test"] + checks.map(\.description) + otherOutput
        out += ["", "== iptables -S"] + rulesV4
        out += ["", "== ip6tables -S"] + rulesV6
        out += ["", "== ipsets"] + ipsets
        return out.joined(separator: "\n") + "\n"
    }

    static func value(_ key: String, in line: some StringProtocol) -> Int? {
        for word in line.split(separator: " ") where word.hasPrefix(key + "=") {
            return Int(word.dropFirst(key.count + 1))
        }
        return nil
    }
}
