import CPatinaShim
import CSeccomp
import Foundation

/// Owner of one libseccomp filter context.
///
/// Every libseccomp return code passes through `check`, the only place raw codes
/// become errors.
final class SeccompFilter {
    /// nil once `merge(_:)` has handed the context to another filter (libseccomp
    /// frees the source of a merge).
    private var ctx: scmp_filter_ctx?

    /// A filter for exactly one architecture, with `defaultAction` for every
    /// syscall no rule matches.
    init(defaultAction: UInt32, architecture: SeccompArchitecture) throws {
        guard let ctx = seccomp_init(defaultAction) else {
            throw SeccompError.library(operation: "seccomp_init", syscall: nil, architecture: nil, code: -ENOMEM)
        }
        self.ctx = ctx
        // seccomp_init adds the native architecture; keep only the one asked for.
        if architecture.token != seccomp_arch_native() {
            try check(seccomp_arch_add(ctx, architecture.token), "seccomp_arch_add", architecture: architecture.name)
            try check(seccomp_arch_remove(ctx, patina_scmp_arch_native()), "seccomp_arch_remove", architecture: architecture.name)
        }
    }

    deinit {
        if let ctx { seccomp_release(ctx) }
    }

    private func context() throws -> scmp_filter_ctx {
        guard let ctx else {
            throw SeccompError.library(operation: "use of a merged filter", syscall: nil, architecture: nil, code: -EINVAL)
        }
        return ctx
    }

    /// Adds a rule. `syscall` is the *native* number (possibly a negative pseudo
    /// number): libseccomp translates it by name for the filter's architecture.
    func addRule(action: UInt32, syscall: Int32, comparisons: [scmp_arg_cmp], name: String, architecture: String) throws {
        let ctx = try context()
        let rc = comparisons.withUnsafeBufferPointer { buffer in
            seccomp_rule_add_array(ctx, action, syscall, UInt32(buffer.count), buffer.baseAddress)
        }
        try check(rc, "seccomp_rule_add_array", syscall: name, architecture: architecture)
    }

    func setAttribute(_ attribute: scmp_filter_attr, _ value: UInt32, _ name: String) throws {
        try check(seccomp_attr_set(try context(), attribute, value), "seccomp_attr_set(\(name))")
    }

    /// Moves `other`'s architectures and rules into this filter; `other` is empty afterwards.
    func merge(_ other: SeccompFilter) throws {
        let source = try other.context()
        try check(seccomp_merge(try context(), source), "seccomp_merge")
        other.ctx = nil
    }

    /// The compiled BPF program, as the kernel would receive it.
    func exportBPF() throws -> [UInt8] {
        let ctx = try context()
        let fd = patina_memfd_create("patina-seccomp-bpf")
        guard fd >= 0 else {
            throw SeccompError.library(operation: "memfd_create", syscall: nil, architecture: nil, code: -errno)
        }
        defer { close(fd) }
        try check(seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0, lseek(fd, 0, SEEK_SET) == 0 else {
            throw SeccompError.library(operation: "reading the exported BPF", syscall: nil, architecture: nil, code: -errno)
        }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else {
                throw SeccompError.library(operation: "reading the exported BPF", syscall: nil, architecture: nil, code: n == 0 ? -EIO : -errno)
            }
            done += n
        }
        return bytes
    }

    /// Loads the filter into the calling process. libseccomp sets NO_NEW_PRIVS
    /// first (SCMP_FLTATR_CTL_NNP is on by default).
    func load() throws {
        try check(seccomp_load(try context()), "seccomp_load")
    }

    @discardableResult
    private func check(_ rc: Int32, _ operation: String, syscall: String? = nil, architecture: String? = nil) throws -> Int32 {
        guard rc >= 0 else {
            throw SeccompError.library(operation: operation, syscall: syscall, architecture: architecture, code: rc)
        }
        return rc
    }
}

/// One libseccomp architecture, named as in Docker profiles (`SCMP_ARCH_X86_64`).
public struct SeccompArchitecture: Hashable, Sendable, CustomStringConvertible {
    /// Docker's spelling, e.g. `SCMP_ARCH_AARCH64`.
    public let name: String
    let token: UInt32

    public init(_ name: String) throws {
        // libseccomp's own names are Docker's without the prefix, in lower case.
        let short = name.hasPrefix("SCMP_ARCH_") ? String(name.dropFirst("SCMP_ARCH_".count)).lowercased() : name.lowercased()
        let token = seccomp_arch_resolve_name(short)
        guard token != 0 else { throw SeccompError.unknownArchitecture(name) }
        self.name = "SCMP_ARCH_" + short.uppercased()
        self.token = token
    }

    /// The machine's own architecture.
    public static func native() throws -> SeccompArchitecture {
        let token = seccomp_arch_native()
        for name in known where seccomp_arch_resolve_name(name) == token {
            return try SeccompArchitecture(name)
        }
        throw SeccompError.unknownArchitecture("native token \(token)")
    }

    /// libseccomp 2.5's architecture names (it has no token-to-name lookup).
    static let known = [
        "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mipsel", "mips64", "mipsel64",
        "mips64n32", "mipsel64n32", "parisc", "parisc64", "ppc", "ppc64", "ppc64le",
        "s390", "s390x", "riscv64",
    ]

    /// Short name for reports: `x86_64`, `aarch64`.
    public var description: String { String(name.dropFirst("SCMP_ARCH_".count)).lowercased() }

    /// The syscall's number on this architecture, or nil when it does not exist here.
    /// Negative numbers are libseccomp's pseudo numbers: -1 (unknown), -10000 and
    /// below (absent on this architecture), and -100…-299 for calls multiplexed
    /// through socketcall/ipc, which libseccomp rewrites itself.
    func number(of syscall: String) -> Int32? {
        let nr = seccomp_syscall_resolve_name_arch(token, syscall)
        if nr >= 0 { return nr }
        if nr > -10000 && nr < -1 { return nr }
        return nil
    }

    /// Docker's name for the architecture in `includes.arches` (Go's GOARCH).
    var dockerName: String {
        switch description {
        case "x86_64": return "amd64"
        case "x86": return "386"
        case "aarch64": return "arm64"
        case "mipsel64": return "mips64le"
        case "mipsel": return "mipsle"
        default: return description
        }
    }
}
