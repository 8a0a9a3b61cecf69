import CPatinaShim
import CSeccomp
import Foundation

/// What a probe process saw after loading a seccomp profile into itself.
public struct SeccompProbeReport: Codable, Sendable, Equatable {
    public struct Check: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable {
            /// A call the profile must refuse.
            case denied
            /// Part of a normal workload that must keep working.
            case workload
        }

        public let name: String
        public let kind: Kind
        public let expected: String
        public let got: String
        public let ok: Bool
    }

    /// The architectures of the loaded filter, this machine's first.
    public let architectures: [String]
    public let instructions: Int
    public let checks: [Check]

    public var passed: Bool { !checks.isEmpty && checks.allSatisfy(\.ok) }
    public var failures: [Check] { checks.filter { !$0.ok } }
}

/// Loads a profile into the current process and shows what it does: denied calls
/// fail with the profile's errno, a normal workload still runs. The filter cannot
/// be removed again, so this runs in a child process (`patina seccomp check`).
public enum SeccompProbe {
    public static func run(profile: SeccompProfile) throws -> SeccompProbeReport {
        let loaded = try profile.loadIntoThisProcess()
        // Each denied call runs in a forked child: one the filter wrongly lets
        // through (ptrace TRACEME, unshare) must not change this process.
        let checks = workload.map(runWorkload) + deniedCalls.map(runDenied)
        return SeccompProbeReport(architectures: loaded.architectures, instructions: loaded.instructions, checks: checks)
    }

    // MARK: denied calls

    /// A syscall the agent's profile must refuse, with arguments that do nothing
    /// harmful on the host if it were let through (bad pointers, bad flags,
    /// missing paths); it runs in a throwaway child either way.
    struct DeniedCall {
        let name: String
        let syscall: String
        let args: [Int]
        var expected: Int32 = EPERM
    }

    static let missingPath = Int(bitPattern: UnsafeRawPointer(strdup("/nonexistent/patina-seccomp-probe")))
    static let CLONE_NEWUSER = 0x1000_0000
    static let CLONE_NEWNET = 0x4000_0000
    static let CLONE_FS = 0x200

    static var deniedCalls: [DeniedCall] {
        [
            DeniedCall(name: "unshare(CLONE_NEWUSER)", syscall: "unshare", args: [CLONE_NEWUSER]),
            DeniedCall(name: "unshare(CLONE_NEWNET)", syscall: "unshare", args: [CLONE_NEWNET]),
            DeniedCall(name: "setns", syscall: "setns", args: [-1, 0]),
            // CLONE_FS with CLONE_NEWUSER is invalid, so the kernel would refuse it
            // with EINVAL if the filter let it through: no stray child.
            DeniedCall(name: "clone(CLONE_NEWUSER)", syscall: "clone", args: [CLONE_NEWUSER | CLONE_FS | Int(SIGCHLD), 0, 0, 0, 0]),
            DeniedCall(name: "clone3", syscall: "clone3", args: [0, 0], expected: ENOSYS),
            DeniedCall(name: "process_vm_readv", syscall: "process_vm_readv", args: [Int(getpid()), 0, 0, 0, 0, 0]),
            DeniedCall(name: "keyctl", syscall: "keyctl", args: [0, -3, 0]),
            DeniedCall(name: "add_key", syscall: "add_key", args: [0, 0, 0, 0, -2]),
            DeniedCall(name: "request_key", syscall: "request_key", args: [0, 0, 0, 0]),
            DeniedCall(name: "bpf", syscall: "bpf", args: [0, 0, 0]),
            DeniedCall(name: "perf_event_open", syscall: "perf_event_open", args: [0, 0, -1, -1, 0]),
            DeniedCall(name: "userfaultfd", syscall: "userfaultfd", args: [Int(O_CLOEXEC)]),
            DeniedCall(name: "io_uring_setup", syscall: "io_uring_setup", args: [1, 0]),
            DeniedCall(name: "io_uring_enter", syscall: "io_uring_enter", args: [-1, 0, 0, 0, 0, 0]),
            DeniedCall(name: "mount", syscall: "mount", args: [0, missingPath, 0, 0, 0]),
            DeniedCall(name: "umount2", syscall: "umount2", args: [missingPath, 0]),
            DeniedCall(name: "pivot_root", syscall: "pivot_root", args: [missingPath, missingPath]),
            DeniedCall(name: "chroot", syscall: "chroot", args: [missingPath]),
            DeniedCall(name: "fsopen", syscall: "fsopen", args: [0, 0]),
            DeniedCall(name: "open_tree", syscall: "open_tree", args: [-1, 0, 0]),
            DeniedCall(name: "socket(AF_PACKET)", syscall: "socket", args: [17, 3, 0]),
            DeniedCall(name: "socket(AF_VSOCK)", syscall: "socket", args: [40, 1, 0]),
            // The kernel reads the family as a 32-bit int; junk in the upper half
            // must not smuggle AF_PACKET past the rule (it would pass "family != 17").
            DeniedCall(name: "socket(AF_PACKET | 1<<32)", syscall: "socket", args: [(1 << 32) | 17, 3, 0]),
            DeniedCall(name: "personality(ADDR_NO_RANDOMIZE)", syscall: "personality", args: [0x0040000]),
            DeniedCall(name: "kexec_load", syscall: "kexec_load", args: [0, 0, 0, 0x7ead_0000]),
            DeniedCall(name: "init_module", syscall: "init_module", args: [0, 0, 0]),
            DeniedCall(name: "finit_module", syscall: "finit_module", args: [-1, 0, 0]),
            DeniedCall(name: "delete_module", syscall: "delete_module", args: [0, 0]),
            DeniedCall(name: "reboot", syscall: "reboot", args: [0, 0, 0, 0]),
            DeniedCall(name: "swapon", syscall: "swapon", args: [missingPath, 0]),
            DeniedCall(name: "acct", syscall: "acct", args: [missingPath]),
            DeniedCall(name: "settimeofday", syscall: "settimeofday", args: [0, 0]),
            DeniedCall(name: "open_by_handle_at", syscall: "open_by_handle_at", args: [-1, 0, 0]),
            DeniedCall(name: "modify_ldt", syscall: "modify_ldt", args: [0, 0, 0]),
            DeniedCall(name: "ptrace(PTRACE_TRACEME)", syscall: "ptrace", args: [0, 0, 0, 0]),
            // Setuid and setgid modes, on a missing path: let through, the kernel says ENOENT.
            DeniedCall(name: "chmod(04755)", syscall: "chmod", args: [missingPath, 0o4755]),
            DeniedCall(name: "fchmodat(02755)", syscall: "fchmodat", args: [Int(AT_FDCWD), missingPath, 0o2755]),
            DeniedCall(name: "openat(O_CREAT, 04755)", syscall: "openat", args: [Int(AT_FDCWD), missingPath, Int(O_CREAT | O_WRONLY), 0o4755]),
            DeniedCall(name: "openat(O_CREAT, 1<<32 | 04755)", syscall: "openat", args: [Int(AT_FDCWD), missingPath, Int(O_CREAT | O_WRONLY), (1 << 32) | 0o4755]),
            DeniedCall(name: "creat(06755)", syscall: "creat", args: [missingPath, 0o6755]),
            DeniedCall(name: "mknodat(S_IFREG | 04755)", syscall: "mknodat", args: [Int(AT_FDCWD), missingPath, Int(S_IFREG) | 0o4755, 0]),
            DeniedCall(name: "openat2", syscall: "openat2", args: [Int(AT_FDCWD), missingPath, 0, 0], expected: ENOSYS),
        ]
    }

    static func runDenied(_ call: DeniedCall) -> SeccompProbeReport.Check {
        let expected = errnoName(call.expected)
        let nr = seccomp_syscall_resolve_name(call.syscall)
        guard nr >= 0 else {
            // Nothing to call on this architecture, so nothing to refuse.
            return .init(name: call.name, kind: .denied, expected: expected, got: "absent here", ok: true)
        }
        let a = call.args + Array(repeating: 0, count: 6 - call.args.count)
        let outcome = patina_syscall_in_child(Int(nr), a[0], a[1], a[2], a[3], a[4], a[5])
        let got: String
        switch outcome {
        case -1: got = "fork failed: \(errnoName(errno))"
        case 0: got = "succeeded"
        case 1000...: got = "killed by signal \(outcome - 1000)"
        default: got = errnoName(outcome)
        }
        return .init(name: call.name, kind: .denied, expected: expected, got: got, ok: outcome == call.expected)
    }

    // MARK: workload

    struct WorkloadStep: Sendable {
        let name: String
        /// nil when the step worked, else what failed.
        let run: @Sendable () -> String?
    }

    static let workload: [WorkloadStep] = [
        WorkloadStep(name: "exec /bin/true (posix_spawn)", run: spawnTrue),
        WorkloadStep(name: "file write, rename, chmod, read, unlink", run: fileRoundTrip),
        WorkloadStep(name: "4 threads started and joined", run: threads),
        WorkloadStep(name: "TCP on 127.0.0.1", run: tcpLoopback),
        WorkloadStep(name: "AF_UNIX socketpair", run: unixSocketPair),
        WorkloadStep(name: "epoll on a pipe", run: epollPipe),
        WorkloadStep(name: "personality query", run: personalityQuery),
    ]

    static func runWorkload(_ step: WorkloadStep) -> SeccompProbeReport.Check {
        let failure = step.run()
        return .init(name: step.name, kind: .workload, expected: "works", got: failure ?? "works", ok: failure == nil)
    }

    static func failed(_ call: String) -> String { "\(call): \(errnoName(errno))" }

    static func spawnTrue() -> String? {
        var pid: pid_t = 0
        guard let path = strdup("/bin/true") else { return "strdup: out of memory" }
        defer { free(path) }
        let argv: [UnsafeMutablePointer<CChar>?] = [path, nil]
        let envp: [UnsafeMutablePointer<CChar>?] = [nil]
        let rc = posix_spawn(&pid, path, nil, nil, argv, envp)
        guard rc == 0 else { return "posix_spawn: \(errnoName(rc))" }
        var status: Int32 = 0
        guard waitpid(pid, &status, 0) == pid else { return failed("waitpid") }
        // WIFEXITED && WEXITSTATUS == 0, spelled out: the macros do not import.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else { return "/bin/true ended with status \(status)" }
        return nil
    }

    static func fileRoundTrip() -> String? {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/patina-seccomp-probe-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { return failed("mkdtemp") }
        let dir = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { rmdir(dir) }
        let first = dir + "/a", second = dir + "/b"
        let text = Array("patina seccomp probe\n".utf8)
        let out = open(first, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o600)
        guard out >= 0 else { return failed("open for writing") }
        let written = text.withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
        let synced = fsync(out)
        close(out)
        guard written == text.count, synced == 0 else { return failed("write") }
        guard rename(first, second) == 0 else { unlink(first); return failed("rename") }
        defer { unlink(second) }
        guard chmod(second, 0o755) == 0 else { return failed("chmod 0755") }
        let input = open(second, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return failed("open for reading") }
        var buffer = [UInt8](repeating: 0, count: 64)
        let got = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
        close(input)
        guard got == text.count, Array(buffer.prefix(got)) == text else { return failed("read") }
        guard unlink(second) == 0 else { return failed("unlink") }
        return nil
    }

    static func threads() -> String? {
        let count = 4
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: count)
        defer { slots.deallocate() }
        var ids = [pthread_t](repeating: 0, count: count)
        for i in 0..<count {
            slots[i] = i
            let rc = pthread_create(&ids[i], nil, { arg in
                let slot = arg!.assumingMemoryBound(to: Int.self)
                slot.pointee = slot.pointee * 10 + 7
                return nil
            }, slots + i)
            guard rc == 0 else { return "pthread_create: \(errnoName(rc))" }
        }
        for i in 0..<count {
            let rc = pthread_join(ids[i], nil)
            guard rc == 0 else { return "pthread_join: \(errnoName(rc))" }
        }
        for i in 0..<count where slots[i] != i * 10 + 7 { return "thread \(i) did not run" }
        return nil
    }

    static func tcpLoopback() -> String? {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard server >= 0 else { return failed("socket(AF_INET)") }
        defer { close(server) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, length) }
        }
        guard bound == 0 else { return failed("bind 127.0.0.1") }
        guard listen(server, 1) == 0 else { return failed("listen") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &length) }
        }
        guard named == 0 else { return failed("getsockname") }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard client >= 0 else { return failed("socket(AF_INET)") }
        defer { close(client) }
        // The listen backlog completes the handshake, so a blocking connect
        // returns before accept.
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) }
        }
        guard connected == 0 else { return failed("connect") }
        let peer = accept(server, nil, nil)
        guard peer >= 0 else { return failed("accept") }
        defer { close(peer) }
        return exchange(client, peer, "tcp")
    }

    static func unixSocketPair() -> String? {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            return failed("socketpair(AF_UNIX)")
        }
        defer { close(fds[0]); close(fds[1]) }
        return exchange(fds[0], fds[1], "unix")
    }

    /// Sends a message each way between two connected sockets.
    static func exchange(_ a: Int32, _ b: Int32, _ label: String) -> String? {
        for (from, to) in [(a, b), (b, a)] {
            let message = Array("patina \(label) \(from)->\(to)".utf8)
            let sent = message.withUnsafeBytes { send(from, $0.baseAddress, $0.count, 0) }
            guard sent == message.count else { return failed("send") }
            var buffer = [UInt8](repeating: 0, count: 64)
            let got = buffer.withUnsafeMutableBytes { recv(to, $0.baseAddress, $0.count, 0) }
            guard got == message.count, Array(buffer.prefix(got)) == message else { return failed("recv") }
        }
        return nil
    }

    static func epollPipe() -> String? {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return failed("pipe") }
        defer { close(fds[0]); close(fds[1]) }
        let byte: [UInt8] = [42]
        guard byte.withUnsafeBytes({ write(fds[1], $0.baseAddress, 1) }) == 1 else { return failed("write to pipe") }
        switch patina_epoll_wait_readable(fds[0], 5000) {
        case 1: return nil
        case 0: return "epoll_wait: timed out"
        default: return failed("epoll")
        }
    }

    static func personalityQuery() -> String? {
        let nr = seccomp_syscall_resolve_name("personality")
        guard nr >= 0 else { return nil }
        return patina_syscall6(Int(nr), 0xffff_ffff, 0, 0, 0, 0, 0) >= 0 ? nil : failed("personality(0xffffffff)")
    }

    static func errnoName(_ code: Int32) -> String {
        let names: [Int32: String] = [
            EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO",
            ENOEXEC: "ENOEXEC", EBADF: "EBADF", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES",
            EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENOTDIR: "ENOTDIR", EINVAL: "EINVAL",
            ENOTTY: "ENOTTY", ENOSPC: "ENOSPC", ENOSYS: "ENOSYS", EPROTONOSUPPORT: "EPROTONOSUPPORT",
            ESOCKTNOSUPPORT: "ESOCKTNOSUPPORT", EOPNOTSUPP: "EOPNOTSUPP", EAFNOSUPPORT: "EAFNOSUPPORT",
            EADDRINUSE: "EADDRINUSE", ECONNREFUSED: "ECONNREFUSED",
        ]
        return names[code] ?? "errno \(code)"
    }
}
