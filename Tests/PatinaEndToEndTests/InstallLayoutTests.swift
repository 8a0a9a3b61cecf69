import Foundation
import PatinaTestSupport
import Testing

/// The installed binary finds its templates from any directory, without the
/// source tree: `<prefix>/bin/patina` + `<prefix>/share/patina/{templates,firewall}`.
@Suite struct InstallLayoutTests {
    @Test func installedBinaryFindsItsDataFromAnyDirectory() throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("patina-prefix-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: prefix) }
        let bin = prefix.appendingPathComponent("bin")
        let share = prefix.appendingPathComponent("share/patina")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: share, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestEnvironment.patinaBinary, to: bin.appendingPathComponent("patina"))
        for folder in ["templates", "firewall"] {
            try FileManager.default.copyItem(at: TestEnvironment.packageRoot.appendingPathComponent(folder), to: share.appendingPathComponent(folder))
        }
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "PATINA_DATA_DIR")
        let out = try ProcessRunner.run([bin.appendingPathComponent("patina").path, "seccomp", "show"],
                                        in: URL(fileURLWithPath: "/"), environment: environment)
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.contains("SCMP_ACT_ERRNO"))

        // Without its data next to it, the binary says where it looked and what to set.
        try FileManager.default.removeItem(at: share)
        let missing = try ProcessRunner.run([bin.appendingPathComponent("patina").path, "seccomp", "show"],
                                            in: URL(fileURLWithPath: "/"), environment: environment)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("PATINA_DATA_DIR"))
    }
}
