import Foundation
import Testing
@testable import PatinaSandbox

@Suite("Firewall report")
struct FirewallReportTests {
    let applyOutput = """
        == iptables -S
        -P INPUT DROP
        -P FORWARD DROP
        -P OUTPUT DROP
        -A OUTPUT -o lo -j ACCEPT
        -A OUTPUT -m comment --comment "closed: not allow-listed" -j PATINA_REJECT
        == ip6tables -S
        -P INPUT DROP
        -P FORWARD DROP
        -P OUTPUT DROP
        -A OUTPUT -o lo -j ACCEPT
        == ipset list -t
        Name: patina4_any
        Type: hash:ip
        Number of entries: 0

        Name: patina6_any
        Type: hash:ip
        APPLIED ms=28
        """

    let passingSelfTest = """
        PASS blocked-tcp 172.17.0.1:18080 refused in 1 ms (Connection refused)
        PASS blocked-udp 172.17.0.1:18081 rejected before leaving (Operation not permitted)
        PASS resolve pypi.org 151.101.0.223 in 4 ms
        SKIP allowed 10.0.0.0/8 a block, not one host
        DONE pass=3 fail=0 skip=1 ms=22
        """

    func plan() throws -> FirewallPlan {
        try FirewallPlan(entries: AllowList.parse(["pypi.org", "10.0.0.0/8"], source: "--allow"),
                         agentEndpoints: [try ClaudeEndpoints.modelProxy(url: "http://172.17.0.1:4321")],
                         upstreamDNS: ["10.255.255.53"], hostAddresses: [], gateway: "172.17.0.1")
    }

    @Test func parsesAPassingRun() throws {
        let report = FirewallReport(plan: try plan(), applyOutput: applyOutput, selfTestOutput: passingSelfTest)
        #expect(report.rulesV4.count == 5)
        #expect(report.rulesV6.count == 4)
        #expect(report.ipsets == ["patina4_any", "patina6_any"])
        #expect(report.applyMilliseconds == 28)
        #expect(report.selfTestMilliseconds == 22)
        #expect(report.checks.count == 4)
        #expect(report.checks[0] == FirewallReport.Check(line: "PASS blocked-tcp 172.17.0.1:18080 refused in 1 ms (Connection refused)"))
        #expect(report.checks[0].detail == "refused in 1 ms (Connection refused)")
        #expect(report.passed)
        #expect(report.failureReason == nil)
        #expect(report.entries == ["172.17.0.1:4321/tcp (patina model proxy)", "pypi.org (--allow)", "10.0.0.0/8 (--allow)"])
        #expect(report.summary.hasPrefix("firewall: 3 allow-list entries, 2 IPv4 + 1 IPv6 rules, 2 ipsets, applied in 28 ms\nself-test: passed 3/3 checks (1 entry not probed) in 22 ms"))
        #expect(report.text.contains("== iptables -S\n-P INPUT DROP"))
    }

    @Test func failedChecksStopTheRun() throws {
        let output = passingSelfTest.replacingOccurrences(of: "PASS blocked-tcp 172.17.0.1:18080 refused in 1 ms (Connection refused)",
                                                          with: "FAIL blocked-tcp 172.17.0.1:18080 connected: not blocked")
            .replacingOccurrences(of: "fail=0", with: "fail=1")
        let report = FirewallReport(plan: nil, applyOutput: applyOutput, selfTestOutput: output)
        #expect(!report.passed)
        #expect(report.failures.map(\.name) == ["blocked-tcp"])
        #expect(report.failureReason == "firewall self-test failed (1 of 3 checks): blocked-tcp 172.17.0.1:18080: connected: not blocked")
        #expect(report.summary.contains("self-test: FAILED 2/3 checks"))
        #expect(report.summary.contains("  FAIL blocked-tcp 172.17.0.1:18080 connected: not blocked"))
    }

    @Test func unfinishedOrMissingOutputIsAFailure() {
        let cut = FirewallReport(plan: nil, applyOutput: applyOutput, selfTestOutput: "PASS blocked-tcp x y\nbash: timeout: command not found")
        #expect(!cut.passed)
        #expect(cut.failureReason == "firewall self-test did not finish: bash: timeout: command not found")
        let unapplied = FirewallReport(plan: nil, applyOutput: "iptables-restore: line 3 failed", selfTestOutput: passingSelfTest)
        #expect(!unapplied.passed)
        #expect(unapplied.failureReason?.contains("not applied") == true)
        let empty = FirewallReport(plan: nil, applyOutput: applyOutput, selfTestOutput: "DONE pass=0 fail=0 skip=0 ms=1")
        #expect(!empty.passed)
    }

    @Test func roundTripsThroughJSON() throws {
        let report = FirewallReport(plan: try plan(), applyOutput: applyOutput, selfTestOutput: passingSelfTest)
        let data = try JSONEncoder().encode(report)
        #expect(try JSONDecoder().decode(FirewallReport.self, from: data) == report)
    }
}
