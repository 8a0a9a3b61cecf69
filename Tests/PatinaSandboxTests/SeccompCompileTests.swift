import Foundation
import PatinaSandbox
import Testing

@Suite("Seccomp names and BPF compilation")
struct SeccompCompileTests {
    static let bothArchSets = [
        SeccompProfile.ArchMapEntry(architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        SeccompProfile.ArchMapEntry(architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"]),
    ]

    static func profile(allowing names: [String], args: [SeccompProfile.Argument]? = nil) -> SeccompProfile {
        SeccompProfile(
            defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1, archMap: bothArchSets,
            syscalls: [SeccompProfile.Rule(names: names, action: "SCMP_ACT_ALLOW", args: args)])
    }

    @Test func unknownNameIsAnErrorNamingIt() throws {
        let profile = Self.profile(allowing: ["read", "frobnicate"])
        let error = #expect(throws: SeccompError.self) { try profile.compile() }
        #expect(error == .unknownSyscall("frobnicate"))
        #expect(error?.description == "unknown syscall \"frobnicate\" in seccomp profile")
        #expect(throws: SeccompError.unknownSyscall("frobnicate")) { try profile.validateNames() }
    }

    @Test func nameOnOnlySomeArchitecturesIsSkippedThere() throws {
        // vm86: 32-bit x86 only; arch_prctl: x86 family only; cacheflush: 32-bit ARM only.
        let report = try Self.profile(allowing: ["read", "vm86", "arch_prctl", "cacheflush"]).compile()
        let x86 = try #require(report.set(containing: "x86_64"))
        let arm = try #require(report.set(containing: "aarch64"))
        #expect(x86.architectures == ["x86_64", "x86", "x32"])
        #expect(arm.architectures == ["aarch64", "arm"])
        #expect(x86.skipped["x86_64"] == ["cacheflush", "vm86"])
        #expect(x86.skipped["x86"] == ["cacheflush"])
        #expect(arm.skipped["aarch64"] == ["arch_prctl", "cacheflush", "vm86"])
        #expect(arm.skipped["arm"] == ["arch_prctl", "vm86"])
    }

    @Test func nameOnlyOnOtherArchitecturesIsUnknown() throws {
        // s390 exists in libseccomp, but not among this profile's architectures.
        #expect(throws: SeccompError.unknownSyscall("s390_runtime_instr")) {
            try Self.profile(allowing: ["read", "s390_runtime_instr"]).compile()
        }
    }

    @Test func defaultProfileCompilesDeterministically() throws {
        let profile = try SeccompTestData.defaultProfile()
        let first = try profile.compile()
        let second = try profile.compile()
        #expect(first == second)
        #expect(first.sets.count == 2)
        for set in first.sets {
            #expect(set.instructions > 100, "\(set.label)")
            #expect(set.rules > 100, "\(set.label)")
        }
        #expect(first.description.contains("x86_64+x86+x32: \(first.sets[0].instructions) BPF instructions"))
        // More rules, more instructions.
        let relaxed = try SeccompTestData.defaultProfile(SeccompOverrides(relaxed: ["ptrace", "bpf"])).compile()
        #expect(relaxed.sets[0].instructions > first.sets[0].instructions)
    }

    @Test func argumentComparedTwiceIsRefused() throws {
        let profile = Self.profile(allowing: ["socket"], args: [
            .init(index: 0, value: 17, op: "SCMP_CMP_NE"), .init(index: 0, value: 40, op: "SCMP_CMP_NE"),
        ])
        let error = #expect(throws: SeccompError.self) { try profile.compile() }
        #expect(error?.description.hasPrefix("invalid seccomp rule for \"socket\": argument 0 is compared twice") == true)
    }

    @Test func unsupportedActionAndOperatorAreNamed() throws {
        var profile = Self.profile(allowing: ["read"])
        profile.syscalls[0].action = "SCMP_ACT_NOTIFY"
        #expect(throws: SeccompError.unsupportedAction("SCMP_ACT_NOTIFY")) { try profile.compile() }
        let bad = Self.profile(allowing: ["personality"], args: [.init(index: 0, value: 1, op: "SCMP_CMP_ROUGHLY")])
        #expect(throws: SeccompError.unsupportedOperator(syscall: "personality", op: "SCMP_CMP_ROUGHLY")) { try bad.compile() }
    }

    @Test func dockerIncludesAndExcludesAreHonoured() throws {
        var profile = Self.profile(allowing: ["read"])
        var ptrace = SeccompProfile.Rule(names: ["ptrace"], action: "SCMP_ACT_ALLOW")
        ptrace.includes = .init(caps: ["CAP_SYS_PTRACE"])
        var modifyLDT = SeccompProfile.Rule(names: ["modify_ldt"], action: "SCMP_ACT_ALLOW")
        modifyLDT.includes = .init(arches: ["amd64"])
        profile.syscalls += [ptrace, modifyLDT]
        let none = try profile.compile()
        let withPtrace = try profile.compile(capabilities: ["SYS_PTRACE"])
        #expect(withPtrace.sets[0].rules == none.sets[0].rules + 3)  // ptrace on x86_64, x86, x32
        #expect(none.sets[0].rules == 3 + 3)  // read + modify_ldt (amd64 host) on three arches
        #expect(none.sets[1].rules == 2)  // read on aarch64 and arm; modify_ldt is amd64-only
    }

    @Test func invalidJSONNamesTheFileAndProblem() throws {
        #expect(throws: SeccompError.invalidProfile(path: "p.json", reason: "missing \"syscalls\"")) {
            try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ERRNO"}"#, source: "p.json")
        }
        #expect(throws: SeccompError.invalidProfile(path: "p.json", reason: "wrong type for \"syscalls[0].names\"")) {
            try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}"#, source: "p.json")
        }
        #expect(throws: SeccompError.unknownArchitecture("SCMP_ARCH_VAX")) {
            try SeccompProfile(defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_VAX"], syscalls: []).compile()
        }
    }
}
