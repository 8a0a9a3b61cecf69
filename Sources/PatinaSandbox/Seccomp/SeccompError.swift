import Foundation

/// Why a seccomp profile could not be rendered, compiled, loaded or checked.
/// Each case prints one line naming the syscall or architecture involved.
public enum SeccompError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A name that libseccomp resolves on none of the profile's architectures.
    case unknownSyscall(String)
    /// A name in the repository's seccomp overrides that resolves nowhere.
    case unknownOverride(String)
    case unknownArchitecture(String)
    case conflictingArchitectures
    case unsupportedAction(String)
    case unsupportedOperator(syscall: String, op: String)
    case invalidArgument(syscall: String, reason: String)
    /// An allow rule names a syscall patina denies, without the repository relaxing it.
    case allowsDenied(syscall: String)
    /// The compiled filter lets through names patina denies ("name (arch)").
    case compiledFilterAllows([String])
    /// A relaxation for a syscall the profile already allows with any arguments.
    case notDenied(syscall: String)
    case conflictingOverride(syscall: String)
    case invalidProfile(path: String, reason: String)
    /// No architecture set of the profile contains the machine's own architecture.
    case nativeArchitectureMissing(String)
    /// A libseccomp call failed: the operation, the syscall and architecture it was
    /// about (when it was about one), and libseccomp's negative errno.
    case library(operation: String, syscall: String?, architecture: String?, code: Int32)
    case probeFailed(reason: String)

    public var description: String {
        switch self {
        case .unknownSyscall(let name):
            return "unknown syscall \"\(name)\" in seccomp profile"
        case .unknownOverride(let name):
            return "unknown syscall \"\(name)\" in the seccomp settings of .patina/config.json"
        case .unknownArchitecture(let name):
            return "unknown architecture \"\(name)\" in seccomp profile"
        case .conflictingArchitectures:
            return "the seccomp profile gives both \"architectures\" and \"archMap\"; Docker accepts only one"
        case .unsupportedAction(let action):
            return "unsupported seccomp action \"\(action)\" (patina handles ALLOW, ERRNO, KILL, KILL_THREAD, KILL_PROCESS, TRAP, LOG)"
        case .unsupportedOperator(let syscall, let op):
            return "unsupported comparison \"\(op)\" in the seccomp rule for \"\(syscall)\""
        case .invalidArgument(let syscall, let reason):
            return "invalid seccomp rule for \"\(syscall)\": \(reason)"
        case .allowsDenied(let syscall):
            return "the seccomp profile allows \"\(syscall)\", which patina denies; relax it in .patina/config.json instead (\"seccomp\": {\"relax\": [\"\(syscall)\"]})"
        case .compiledFilterAllows(let leaks):
            var unique: [String] = []
            for leak in leaks {
                let name = String(leak.split(separator: " ").first ?? "")
                if !unique.contains(name) { unique.append(name) }
            }
            let names = unique.prefix(10).joined(separator: ", ") + (unique.count > 10 ? " and \(unique.count - 10) more" : "")
            return "the compiled seccomp filter allows \(names), which patina denies; fix the profile override, or relax a call in .patina/config.json (\"seccomp\": {\"relax\": [...]})"
        case .notDenied(let syscall):
            return "cannot relax \"\(syscall)\": the seccomp profile already allows it"
        case .conflictingOverride(let syscall):
            return "syscall \"\(syscall)\" is both denied and relaxed in the seccomp configuration"
        case .invalidProfile(let path, let reason):
            return "invalid seccomp profile \(path): \(reason)"
        case .nativeArchitectureMissing(let arch):
            return "the seccomp profile has no architecture set for this machine (\(arch))"
        case .library(let operation, let syscall, let architecture, let code):
            var what = "libseccomp: \(operation)"
            if let syscall { what += " for \"\(syscall)\"" }
            if let architecture { what += " on \(architecture)" }
            return what + " failed: \(String(cString: strerror(-code))) (\(code))"
        case .probeFailed(let reason):
            return "seccomp probe failed: \(reason)"
        }
    }
}
