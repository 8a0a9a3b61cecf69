import Foundation
import PatinaSandbox
import Testing

/// `patina seccomp check` end to end, on the host: no Docker needed.
@Suite("patina seccomp check")
struct SeccompCheckTests {
    /// `PATINA_BIN`, else the patina built next to this test binary, else the
    /// default build path, else the scratch path used while developing.
    static func patinaBinary() throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["PATINA_BIN"], !explicit.isEmpty { return explicit }
        let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        let candidates = [
            URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("patina").path,
            SeccompTestData.packageRoot.appendingPathComponent(".build/debug/patina").path,
            SeccompTestData.packageRoot.appendingPathComponent(".build-seccomp/debug/patina").path,
        ]
        return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) },
                            "patina binary not found (build it, or set PATINA_BIN); looked at \(candidates)")
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try patinaBinary())
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["PATINA_DATA_DIR"] = SeccompTestData.packageRoot.path
        process.environment = env
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("patina-seccomp-stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: errFile)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self),
                (try? String(contentsOf: errFile, encoding: .utf8)) ?? "")
    }

    @Test func defaultProfileDeniesAndKeepsTheWorkloadRunning() throws {
        let (status, stdout, stderr) = try Self.run(["seccomp", "check", "--json"])
        #expect(status == 0, "stderr: \(stderr)")
        let result = try JSONDecoder().decode(SeccompCheckResult.self, from: Data(stdout.utf8))
        #expect(result.passed)
        #expect(result.profile == "default")
        let checks = Dictionary(result.probe.checks.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for name in ["ptrace(PTRACE_TRACEME)", "unshare(CLONE_NEWUSER)", "unshare(CLONE_NEWNET)", "keyctl", "add_key",
                     "bpf", "userfaultfd", "io_uring_setup", "perf_event_open", "mount", "socket(AF_PACKET)",
                     "personality(ADDR_NO_RANDOMIZE)", "kexec_load", "init_module"] {
            #expect(checks[name]?.got == "EPERM", "\(name): \(checks[name]?.got ?? "missing")")
        }
        #expect(checks["clone3"]?.got == "ENOSYS")
        let workload = result.probe.checks.filter { $0.kind == .workload }
        #expect(workload.count >= 5)
        #expect(workload.allSatisfy { $0.got == "works" })
        // The child loaded the set for this machine, compiled as the parent reported.
        let loaded = try #require(result.compile.set(containing: result.probe.architectures[0]))
        #expect(loaded.instructions == result.probe.instructions)
        #expect(loaded.instructions > 0)
    }

    /// The negative control: with a filter that allows everything, the same
    /// checks fail, so the EPERMs above come from the profile, not the kernel.
    @Test func permissiveProfileFailsTheCheck() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("patina-allow-all-\(UUID().uuidString).json")
        try Data(#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, stdout, stderr) = try Self.run(["seccomp", "check", "--json", "--profile", file.path])
        #expect(status != 0)
        let result = try JSONDecoder().decode(SeccompCheckResult.self, from: Data(stdout.utf8))
        #expect(!result.passed, "stderr: \(stderr)")
        let failures = Set(result.probe.failures.map(\.name))
        #expect(failures.isSuperset(of: ["unshare(CLONE_NEWUSER)", "ptrace(PTRACE_TRACEME)", "clone3", "personality(ADDR_NO_RANDOMIZE)"]))
        let workloadOK = result.probe.checks.filter { $0.kind == .workload }.allSatisfy { $0.ok }
        #expect(workloadOK)
    }

    @Test func tableOutputAndUnknownSyscallError() throws {
        let (status, stdout, _) = try Self.run(["seccomp", "check"])
        #expect(status == 0)
        #expect(stdout.contains("CHECK"))
        #expect(stdout.contains("ptrace(PTRACE_TRACEME)"))
        #expect(stdout.contains("checks passed"))

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("patina-bad-\(UUID().uuidString).json")
        try Data(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "foo"], "action": "SCMP_ACT_ALLOW"}]}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let bad = try Self.run(["seccomp", "check", "--profile", file.path])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("unknown syscall \"foo\" in seccomp profile"), "stderr: \(bad.stderr)")
    }
}
