import Foundation
import Testing
@testable import PatinaCore

/// The wait for late arrivals at the canary is counted from the self-test's end, which
/// the probe reports; never longer than the grace, the whole grace when the end is unknown.
@Suite struct CanaryGraceTests {
    @Test func graceCountsFromTheSelfTestsEnd() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(NetworkHolder.canaryGrace(selfTestEnded: nil, now: now) == 20_000_000)
        let rest = NetworkHolder.canaryGrace(selfTestEnded: now.addingTimeInterval(-0.012), now: now)
        #expect(rest > 7_999_000 && rest < 8_001_000)
        #expect(NetworkHolder.canaryGrace(selfTestEnded: now.addingTimeInterval(-0.5), now: now) == 0)
        // An end in the future is not believed.
        #expect(NetworkHolder.canaryGrace(selfTestEnded: now.addingTimeInterval(5), now: now) == 20_000_000)
    }

    @Test func theProbeReportsTheSelfTestsEnd() {
        let report = "PASS seccomp mode 2 (filter)\nDONE pass=3 fail=0 skip=0 ms=12\nINFO self-test ended at 1800000000123456\nINFO probes took 20 ms\n"
        #expect(NetworkHolder.selfTestEnd(report) == Date(timeIntervalSince1970: 1_800_000_000.123456))
        #expect(NetworkHolder.selfTestEnd("INFO self-test ended at 0\n") == nil)
        #expect(NetworkHolder.selfTestEnd("PASS x\n") == nil)
    }
}
