import Foundation
import PatinaSandbox
import PatinaTemplates
import Testing

/// The package's own data, found from this file's path.
enum SeccompTestData {
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url = url.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("package root not found above \(#filePath)")
    }()

    static func templates(overrides: URL? = nil) -> TemplateSet {
        TemplateSet(dataDirectory: packageRoot, overrideDirectory: overrides)
    }

    static func defaultProfile(_ overrides: SeccompOverrides = .none) throws -> SeccompProfile {
        try SeccompProfile.agentDefault(templates: templates(), overrides: overrides)
    }

    /// A fresh directory standing in for a repository's `.patina/`.
    static func overrideDirectory(files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patina-seccomp-test-\(UUID().uuidString)")
        for (path, text) in files {
            let url = dir.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        return dir
    }
}

@Suite("Seccomp profile rendering")
struct SeccompProfileTests {
    @Test func rendersDockerJSON() throws {
        let json = try SeccompTestData.defaultProfile().dockerJSON()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["defaultAction"] as? String == "SCMP_ACT_ERRNO")
        #expect(object["defaultErrnoRet"] as? Int == 1)
        #expect(object["architectures"] == nil, "Docker refuses archMap and architectures together")
        let archMap = try #require(object["archMap"] as? [[String: Any]])
        let arches = archMap.map { ($0["architecture"] as? String ?? "", $0["subArchitectures"] as? [String] ?? []) }
        #expect(arches.map(\.0) == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"])
        #expect(arches.map(\.1) == [["SCMP_ARCH_X86", "SCMP_ARCH_X32"], ["SCMP_ARCH_ARM"]])
        let syscalls = try #require(object["syscalls"] as? [[String: Any]])
        #expect(syscalls.count > 5)
        #expect(syscalls.allSatisfy { ($0["names"] as? [String])?.isEmpty == false && $0["action"] is String })
    }

    @Test func renderingIsDeterministicAndRoundTrips() throws {
        let first = try SeccompTestData.defaultProfile().dockerJSON()
        let second = try SeccompTestData.defaultProfile().dockerJSON()
        #expect(first == second)
        let reparsed = try SeccompProfile(json: first, source: "rendered")
        #expect(reparsed.dockerJSON() == first)
    }

    @Test func deniedNamesAreNotAllowed() throws {
        let profile = try SeccompTestData.defaultProfile()
        let denied = try SeccompProfile.deniedSyscalls(templates: SeccompTestData.templates())
        #expect(denied.count > 50)
        for name in denied {
            #expect(!profile.permits(name), "\(name) is denied but an allow rule names it")
        }
    }

    /// What issue 4 names, plus what Docker's default profile denies a container
    /// without capabilities: ours must deny all of it.
    @Test(arguments: [
        "ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter",
        "io_uring_register", "userfaultfd", "keyctl", "add_key", "request_key", "bpf",
        "perf_event_open", "unshare", "setns", "mount", "umount", "umount2", "pivot_root",
        "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "stime",
        "sethostname", "setdomainname", "syslog", "chroot", "vhangup", "quotactl", "quotactl_fd",
        "lookup_dcookie", "open_by_handle_at", "name_to_handle_at", "kcmp", "pidfd_getfd",
        "process_madvise", "iopl", "ioperm", "fanotify_init", "get_mempolicy", "mbind",
        "set_mempolicy", "set_mempolicy_home_node", "nfsservctl", "uselib", "ustat", "_sysctl",
        "vm86", "vm86old", "modify_ldt", "create_module", "get_kernel_syms", "query_module",
    ])
    func atLeastAsStrictAsDocker(_ name: String) throws {
        let profile = try SeccompTestData.defaultProfile()
        #expect(!profile.permits(name))
    }

    @Test func cloneIsAllowedOnlyWithoutNamespaceFlags() throws {
        let profile = try SeccompTestData.defaultProfile()
        #expect(!profile.permitsUnconditionally("clone"))
        let clone = try #require(profile.syscalls.first { $0.names == ["clone"] })
        #expect(clone.action == "SCMP_ACT_ALLOW")
        let arg = try #require(clone.args?.first)
        #expect(clone.args?.count == 1)
        #expect(arg.index == 0 && arg.op == "SCMP_CMP_MASKED_EQ" && (arg.valueTwo ?? 0) == 0)
        // CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
        #expect(arg.value == 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000)

        let clone3 = try #require(profile.syscalls.first { $0.names.contains("clone3") })
        #expect(clone3.action == "SCMP_ACT_ERRNO" && clone3.errnoRet == 38)
    }

    @Test func modesAreSetWithoutSetuidOrSetgid() throws {
        let profile = try SeccompTestData.defaultProfile()
        // Where the mode is: (call, argument index). open and openat also pass when they
        // create nothing (no O_CREAT, no O_TMPFILE): their mode is then unused.
        let modes: [(String, UInt)] = [("chmod", 1), ("fchmod", 1), ("fchmodat", 2), ("fchmodat2", 2), ("creat", 1),
                                       ("mknod", 1), ("mknodat", 2), ("open", 2), ("openat", 3)]
        for (name, index) in modes {
            #expect(!profile.permitsUnconditionally(name), "\(name)")
            let rules = profile.syscalls.filter { $0.names.contains(name) }
            #expect(rules.allSatisfy { $0.action == "SCMP_ACT_ALLOW" && $0.args?.count == 1 }, "\(name)")
            #expect(rules.contains { rule in
                rule.args?.first.map { $0.index == index && $0.op == "SCMP_CMP_MASKED_EQ" && $0.value == 0o6000 && ($0.valueTwo ?? 0) == 0 } ?? false
            }, "\(name)")
        }
        for (name, index) in [("open", UInt(1)), ("openat", UInt(2))] {
            let rules = profile.syscalls.filter { $0.names.contains(name) }
            #expect(rules.count == 2)
            #expect(rules.contains { $0.args?.first.map { $0.index == index && $0.value == 0o100 | 0o20000000 } ?? false }, "\(name)")
        }
        let openat2 = try #require(profile.syscalls.first { $0.names.contains("openat2") })
        #expect(openat2.action == "SCMP_ACT_ERRNO" && openat2.errnoRet == 38)
    }

    @Test func socketAndPersonalityAllowOnlyExactValues() throws {
        let profile = try SeccompTestData.defaultProfile()
        let socket = profile.syscalls.filter { $0.names.contains("socket") }
        #expect(Set(socket.compactMap { $0.args?.first?.value }) == [1, 2, 10, 16])  // unix, inet, inet6, netlink
        #expect(!socket.contains { $0.args?.contains { $0.value == 17 } ?? true }, "AF_PACKET")
        let personality = profile.syscalls.filter { $0.names.contains("personality") }
        #expect(Set(personality.compactMap { $0.args?.first?.value }) == [0, 8, 0x20000, 0x20008, 0xffff_ffff])
        // The kernel truncates int arguments to 32 bits: a "not equal" allow rule
        // can be passed with junk in the upper half, so none may exist.
        for rule in profile.syscalls where rule.permits {
            #expect(!(rule.args ?? []).contains { $0.op == "SCMP_CMP_NE" || $0.op == "SCMP_CMP_GT" || $0.op == "SCMP_CMP_GE" }, "\(rule.names)")
        }
    }

    @Test func normalWorkloadCallsAreAllowed() throws {
        let profile = try SeccompTestData.defaultProfile()
        for name in ["read", "write", "execve", "mmap", "futex", "epoll_wait", "epoll_pwait",
                     "connect", "accept4", "socketpair", "pipe2", "wait4", "rseq", "set_robust_list",
                     "getrandom", "statx", "rename", "unlinkat", "fork", "vfork", "prctl", "seccomp"] {
            #expect(profile.permitsUnconditionally(name), "\(name)")
        }
    }

    @Test func templateOverrideCannotQuietlyAllowADeniedCall() throws {
        let shipped = try String(contentsOf: SeccompTestData.packageRoot.appendingPathComponent(SeccompProfile.allowedListPath), encoding: .utf8)
        let dir = try SeccompTestData.overrideDirectory(files: [SeccompProfile.allowedListPath: shipped + "\nptrace\n"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let templates = SeccompTestData.templates(overrides: dir)
        #expect(throws: SeccompError.allowsDenied(syscall: "ptrace")) {
            try SeccompProfile.agentDefault(templates: templates)
        }
        let relaxed = try SeccompProfile.agentDefault(templates: templates, overrides: SeccompOverrides(relaxed: ["ptrace"]))
        #expect(relaxed.relaxations == ["ptrace"])
    }
}

@Suite("Seccomp overrides")
struct SeccompOverrideTests {
    @Test func relaxingPtraceAllowsItAndIsReported() throws {
        let profile = try SeccompTestData.defaultProfile(SeccompOverrides(relaxed: ["ptrace"]))
        #expect(profile.permitsUnconditionally("ptrace"))
        #expect(profile.relaxations == ["ptrace"])
        let rule = try #require(profile.syscalls.first { $0.names.contains("ptrace") })
        #expect(rule.comment?.contains("relaxed") == true)
        #expect(try profile.compile().sets.count == 2)
        // The relaxation is visible to Docker, and the default profile records none.
        #expect(profile.dockerJSON().contains("\"ptrace\""))
        #expect(try SeccompTestData.defaultProfile().relaxations.isEmpty)
    }

    @Test func relaxingClone3ReplacesItsENOSYSRule() throws {
        let profile = try SeccompTestData.defaultProfile(SeccompOverrides(relaxed: ["clone3"]))
        #expect(profile.permitsUnconditionally("clone3"))
        #expect(!profile.syscalls.contains { $0.names.contains("clone3") && !$0.permits })
    }

    @Test func extraDenialsRemoveAllowRulesOnly() throws {
        let profile = try SeccompTestData.defaultProfile(SeccompOverrides(extraDenied: ["io_setup", "socket", "clone3"]))
        #expect(!profile.permits("io_setup"))
        #expect(!profile.permits("socket"))
        #expect(profile.extraDenials == ["clone3", "io_setup", "socket"])
        // clone3 stays ENOSYS (EPERM would stop libc from falling back to clone).
        #expect(profile.syscalls.contains { $0.names == ["clone3"] && $0.errnoRet == 38 })
        #expect(profile.relaxations.isEmpty)
    }

    @Test func invalidOverridesAreClearErrors() throws {
        #expect(throws: SeccompError.notDenied(syscall: "read")) {
            try SeccompTestData.defaultProfile(SeccompOverrides(relaxed: ["read"]))
        }
        #expect(throws: SeccompError.conflictingOverride(syscall: "ptrace")) {
            try SeccompTestData.defaultProfile(SeccompOverrides(extraDenied: ["ptrace"], relaxed: ["ptrace"]))
        }
        let error = #expect(throws: SeccompError.self) {
            try SeccompTestData.defaultProfile(SeccompOverrides(relaxed: ["ptarce"]))
        }
        #expect(error?.description == "unknown syscall \"ptarce\" in the seccomp settings of .patina/config.json")
    }
}

/// What libseccomp compiled, evaluated: the deny list holds whatever the profile says.
@Suite("Seccomp compiled-filter integrity")
struct SeccompIntegrityTests {
    static var denied: [String] { get throws { try SeccompProfile.deniedSyscalls(templates: SeccompTestData.templates()) } }

    @Test func theDefaultProfileDeniesTheWholeListOnEveryArchitecture() throws {
        let profile = try SeccompTestData.defaultProfile()
        #expect(try profile.leaks(of: Self.denied).isEmpty)
        // And the evaluator is not trivially "deny": ordinary calls are allowed.
        #expect(try profile.leaks(of: ["read", "write", "openat", "execve"]).count >= 4)
    }

    @Test func anAllowAllOverrideIsRefusedNamingTheCalls() throws {
        // A repository profile whose default action allows everything, with only unshare
        // still denied: the rules list looks clean, the compiled filter does not.
        let template = """
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
             "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}], "x": {{{allowedNames}}} }
            """
        let dir = try SeccompTestData.overrideDirectory(files: [SeccompProfile.templatePath: template])
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try SeccompProfile.agentDefault(templates: SeccompTestData.templates(overrides: dir))
            Issue.record("an allow-all profile was accepted")
        } catch let error as SeccompError {
            guard case .compiledFilterAllows(let leaks) = error else { Issue.record("\(error)"); return }
            #expect(leaks.contains("ptrace (x86_64)"))
            #expect(leaks.contains("io_uring_setup (x86)"))
            #expect(!leaks.contains { $0.hasPrefix("unshare ") })
            #expect("\(error)".hasPrefix("the compiled seccomp filter allows "))
            #expect(!"\(error)".contains("unshare"))
        }
    }

    @Test func relaxedCallsAreLeftOutOfTheCheck() throws {
        let profile = try SeccompTestData.defaultProfile(SeccompOverrides(relaxed: ["ptrace"]))
        #expect(try profile.leaks(of: ["ptrace"]).contains("ptrace (x86_64)"))
        #expect(try profile.leaks(of: Self.denied.filter { $0 != "ptrace" }).isEmpty)
    }

    @Test func evaluatorFollowsTheKernelsRules() throws {
        // ld [4] (arch); jeq #0xc000003e, 0, 3; ld [0] (nr); jeq #101, 0, 1; ret ERRNO(1); ret ALLOW; ret KILL
        func op(_ code: UInt16, _ jt: UInt8, _ jf: UInt8, _ k: UInt32) -> [UInt8] {
            [UInt8(code & 0xFF), UInt8(code >> 8), jt, jf, UInt8(k & 0xFF), UInt8(k >> 8 & 0xFF), UInt8(k >> 16 & 0xFF), UInt8(k >> 24)]
        }
        let program = op(0x20, 0, 0, 4) + op(0x15, 0, 4, 0xC000_003E) + op(0x20, 0, 0, 0) + op(0x15, 0, 1, 101)
            + op(0x06, 0, 0, 0x0005_0001) + op(0x06, 0, 0, 0x7FFF_0000) + op(0x06, 0, 0, 0x8000_0000)
        #expect(try SeccompEvaluator.evaluate(program, .init(nr: 101, arch: 0xC000_003E)) == .errno(1))
        #expect(try SeccompEvaluator.evaluate(program, .init(nr: 0, arch: 0xC000_003E)) == .allow)
        #expect(try SeccompEvaluator.evaluate(program, .init(nr: 101, arch: 0x4000_0003)) == .kill)
    }
}
