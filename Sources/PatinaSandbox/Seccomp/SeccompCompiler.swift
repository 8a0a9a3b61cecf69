import CPatinaShim
import CSeccomp
import Foundation

/// What compiling a profile with libseccomp produced, per architecture set.
public struct SeccompCompileReport: Codable, Sendable, Equatable, CustomStringConvertible {
    public struct ArchitectureSet: Codable, Sendable, Equatable {
        /// Short names, main architecture first: `["x86_64", "x86", "x32"]`.
        public let architectures: [String]
        /// Length of the BPF program (8 bytes per instruction).
        public let instructions: Int
        /// Syscall rules handed to libseccomp, summed over the architectures.
        public let rules: Int
        /// Per architecture, the names that do not exist there and were skipped.
        public let skipped: [String: [String]]

        public var label: String { architectures.joined(separator: "+") }
    }

    public let sets: [ArchitectureSet]

    /// The set that includes `architecture` (short name), e.g. the machine's own.
    public func set(containing architecture: String) -> ArchitectureSet? {
        sets.first { $0.architectures.contains(architecture) }
    }

    public var description: String {
        sets.map { "\($0.label): \($0.instructions) BPF instructions" }.joined(separator: ", ")
    }
}

extension SeccompProfile {
    /// Validates every name and compiles the profile to BPF for each architecture
    /// set, the way Docker's runtime would for a container with `capabilities`
    /// (Docker's names, e.g. `CAP_SYS_ADMIN`; patina's agent has none).
    public func compile(capabilities: Set<String> = []) throws -> SeccompCompileReport {
        try validateNames()
        var reports: [SeccompCompileReport.ArchitectureSet] = []
        for set in try architectureSets() {
            let (filter, report) = try build(set, capabilities: capabilities)
            let bpf = try filter.exportBPF()
            reports.append(SeccompCompileReport.ArchitectureSet(
                architectures: set.map(\.description), instructions: bpf.count / 8,
                rules: report.rules, skipped: report.skipped))
        }
        return SeccompCompileReport(sets: reports)
    }

    /// The names of `denied` that the compiled filter lets through on some target
    /// architecture ("name (arch)"), whatever the profile's default action and rules
    /// say: each architecture set is compiled with libseccomp and its BPF evaluated for
    /// every name, with no arguments and with every argument bit set.
    public func leaks(of denied: [String], capabilities: Set<String> = []) throws -> [String] {
        var leaks: [String] = []
        for set in try architectureSets() {
            let (filter, _) = try build(set, capabilities: capabilities)
            leaks += try Self.leaks(in: try filter.exportBPF(), set: set, of: denied)
        }
        return leaks
    }

    /// `compile(capabilities:)` and `leaks(of:)` (with no capabilities) from one
    /// compilation per architecture set when `capabilities` is empty (the agent's case):
    /// what a run needs, compiled once instead of twice.
    public func compileCheckingLeaks(of denied: [String], capabilities: Set<String> = []) throws -> (report: SeccompCompileReport, leaks: [String]) {
        try validateNames()
        var reports: [SeccompCompileReport.ArchitectureSet] = []
        var leaks: [String] = []
        for set in try architectureSets() {
            let (filter, built) = try build(set, capabilities: [])
            let program = try filter.exportBPF()
            leaks += try Self.leaks(in: program, set: set, of: denied)
            let (bpf, report) = capabilities.isEmpty ? (program, built) : try {
                let (filter, report) = try build(set, capabilities: capabilities)
                return (try filter.exportBPF(), report)
            }()
            reports.append(SeccompCompileReport.ArchitectureSet(
                architectures: set.map(\.description), instructions: bpf.count / 8, rules: report.rules, skipped: report.skipped))
        }
        return (SeccompCompileReport(sets: reports), leaks)
    }

    /// The names of `denied` that `program`, compiled for `set`, lets through.
    private static func leaks(in program: [UInt8], set: [SeccompArchitecture], of denied: [String]) throws -> [String] {
        var leaks: [String] = []
        for arch in set {
            // x32 calls reach the filter as x86_64 calls with the x32 bit in their number.
            let auditArch = arch.description == "x32" ? try SeccompArchitecture("x86_64").token : arch.token
            for name in denied {
                guard let nr = arch.number(of: name), nr >= 0 else { continue }
                for args in [[UInt64](repeating: 0, count: 6), [UInt64](repeating: .max, count: 6)] {
                    let action = try SeccompEvaluator.evaluate(program, .init(nr: UInt32(nr), arch: auditArch, args: args))
                    if !action.denies {
                        leaks.append("\(name) (\(arch))")
                        break
                    }
                }
            }
        }
        return leaks
    }

    /// `name:number` for each name that exists on this machine's architecture, for the
    /// probe that calls them inside the sandbox.
    public static func nativeNumbers(of names: [String]) throws -> [String] {
        let native = try SeccompArchitecture.native()
        return names.compactMap { name in native.number(of: name).flatMap { $0 >= 0 ? "\(name):\($0)" : nil } }
    }

    /// Compiles the set holding this machine's architecture and loads it into the
    /// calling process, all threads included. Irreversible: meant for a probe child.
    /// Returns the loaded set's architectures and instruction count.
    func loadIntoThisProcess(capabilities: Set<String> = []) throws -> (architectures: [String], instructions: Int) {
        try validateNames()
        let native = try SeccompArchitecture.native()
        guard let set = try architectureSets().first(where: { $0.contains(native) }) else {
            throw SeccompError.nativeArchitectureMissing(native.description)
        }
        let (filter, _) = try build(set, capabilities: capabilities)
        let instructions = try filter.exportBPF().count / 8
        // Without TSYNC only the calling thread would be filtered; the Swift
        // runtime has other threads already.
        try filter.setAttribute(SCMP_FLTATR_CTL_TSYNC, 1, "SCMP_FLTATR_CTL_TSYNC")
        try filter.load()
        return (set.map(\.description), instructions)
    }

    /// One filter per architecture, merged: libseccomp wants every rule of a
    /// multi-architecture filter to exist on all its architectures, so names are
    /// resolved and skipped per architecture, then the filters are merged.
    private func build(_ set: [SeccompArchitecture], capabilities: Set<String>) throws -> (SeccompFilter, (rules: Int, skipped: [String: [String]])) {
        let defaultValue = try Self.actionValue(defaultAction, errnoRet: defaultErrnoRet, syscall: nil)
        let caps = Set(capabilities.map(Self.capabilityName))
        let kernel = KernelVersion.running()
        let rules = try syscalls
            .filter { $0.applies(on: set[0], capabilities: caps, kernel: kernel) }
            .map { rule in
                (rule, try Self.actionValue(rule.action, errnoRet: rule.errnoRet, syscall: rule.names.first), try rule.comparisons())
            }
        var merged: SeccompFilter?
        var added = 0
        var skipped: [String: [String]] = [:]
        for arch in set {
            let filter = try SeccompFilter(defaultAction: defaultValue, architecture: arch)
            for (rule, action, comparisons) in rules {
                // libseccomp refuses rules that repeat the default action; they change nothing.
                if action == defaultValue { continue }
                for name in rule.names {
                    guard arch.number(of: name) != nil else {
                        skipped[arch.description, default: []].append(name)
                        continue
                    }
                    // Rules take native numbers; libseccomp maps them by name to `arch`.
                    let native = seccomp_syscall_resolve_name(name)
                    try filter.addRule(action: action, syscall: native, comparisons: comparisons, name: name, architecture: arch.description)
                    added += 1
                }
            }
            if let merged { try merged.merge(filter) } else { merged = filter }
        }
        for key in skipped.keys { skipped[key] = Array(Set(skipped[key]!)).sorted() }
        // An architecture set is never empty: archMap entries always name one.
        return (merged!, (added, skipped))
    }

    static func actionValue(_ action: String, errnoRet: UInt?, syscall: String?) throws -> UInt32 {
        switch action {
        case "SCMP_ACT_ALLOW": return patina_scmp_act_allow()
        case "SCMP_ACT_ERRNO":
            let errno = errnoRet ?? UInt(EPERM)
            guard errno <= UInt(UInt16.max) else {
                throw SeccompError.invalidArgument(syscall: syscall ?? "default action", reason: "errnoRet \(errno) is out of range")
            }
            return patina_scmp_act_errno(UInt16(errno))
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return patina_scmp_act_kill_thread()
        case "SCMP_ACT_KILL_PROCESS": return patina_scmp_act_kill_process()
        case "SCMP_ACT_TRAP": return patina_scmp_act_trap()
        case "SCMP_ACT_LOG": return patina_scmp_act_log()
        default: throw SeccompError.unsupportedAction(action)
        }
    }

    static func capabilityName(_ name: String) -> String {
        let upper = name.uppercased()
        return upper.hasPrefix("CAP_") ? upper : "CAP_" + upper
    }
}

extension SeccompProfile.Rule {
    /// Docker's `includes`/`excludes`, judged for a host of architecture `primary`
    /// (Docker compares against its own GOARCH) and a container with `capabilities`.
    func applies(on primary: SeccompArchitecture, capabilities: Set<String>, kernel: KernelVersion?) -> Bool {
        if let includes {
            if let arches = includes.arches, !arches.isEmpty, !arches.contains(primary.dockerName) { return false }
            if let caps = includes.caps, !caps.allSatisfy({ capabilities.contains(SeccompProfile.capabilityName($0)) }) { return false }
            if let min = includes.minKernel.flatMap(KernelVersion.init), let kernel, kernel < min { return false }
        }
        if let excludes {
            if let arches = excludes.arches, arches.contains(primary.dockerName) { return false }
            if let caps = excludes.caps, caps.contains(where: { capabilities.contains(SeccompProfile.capabilityName($0)) }) { return false }
            if let min = excludes.minKernel.flatMap(KernelVersion.init), let kernel, kernel >= min { return false }
        }
        return true
    }

    /// The rule's comparisons for libseccomp. An argument compared twice is
    /// refused: libseccomp cannot do it, and runc would silently OR the two.
    func comparisons() throws -> [scmp_arg_cmp] {
        let syscall = names.first ?? "?"
        var seen = Set<UInt>()
        return try (args ?? []).map { arg in
            guard arg.index < 6 else {
                throw SeccompError.invalidArgument(syscall: syscall, reason: "argument index \(arg.index) (syscalls have 6)")
            }
            guard seen.insert(arg.index).inserted else {
                throw SeccompError.invalidArgument(syscall: syscall, reason: "argument \(arg.index) is compared twice; Docker would OR the conditions, so write one entry per condition")
            }
            let op: scmp_compare
            switch arg.op {
            case "SCMP_CMP_NE": op = SCMP_CMP_NE
            case "SCMP_CMP_LT": op = SCMP_CMP_LT
            case "SCMP_CMP_LE": op = SCMP_CMP_LE
            case "SCMP_CMP_EQ": op = SCMP_CMP_EQ
            case "SCMP_CMP_GE": op = SCMP_CMP_GE
            case "SCMP_CMP_GT": op = SCMP_CMP_GT
            case "SCMP_CMP_MASKED_EQ": op = SCMP_CMP_MASKED_EQ
            default: throw SeccompError.unsupportedOperator(syscall: syscall, op: arg.op)
            }
            return scmp_arg_cmp(arg: UInt32(arg.index), op: op, datum_a: arg.value, datum_b: arg.valueTwo ?? 0)
        }
    }
}

/// A kernel version as Docker's `minKernel` compares it: major.minor.
struct KernelVersion: Comparable {
    let major: Int
    let minor: Int

    init?(_ text: String) {
        let parts = text.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return nil }
        major = parts[0]
        minor = parts[1]
    }

    static func running() -> KernelVersion? {
        (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)).flatMap(KernelVersion.init)
    }

    static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }
}
