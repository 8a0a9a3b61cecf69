import Foundation
import PatinaSandbox
import PatinaTestSupport
import Testing
@testable import PatinaCore

@Suite("Host CA, proxies and the user's Claude Code")
struct HostTrustTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("trust-\(UUID().uuidString.prefix(8))")

    init() throws {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    @Test func certificatesAreTheCertificateBlocksOnly() {
        let text = """
            # a comment
            -----BEGIN CERTIFICATE-----\r
            QUJD\r
            REVG
            -----END CERTIFICATE-----
            -----BEGIN PRIVATE KEY-----
            c2VjcmV0
            -----END PRIVATE KEY-----
            -----BEGIN CERTIFICATE-----
            not base64 at all!
            -----END CERTIFICATE-----
            """
        #expect(HostTrust.certificates(in: text) == ["-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----"])
    }

    @Test func proxiesArePassedByNameAndAllowed() throws {
        var notes: [String] = []
        let proxies = try HostTrust.proxies(environment: [
            "HTTPS_PROXY": "http://user:secret@proxy.corp.example:3128", "https_proxy": "http://proxy.corp.example:3128",
            "HTTP_PROXY": "10.1.2.3:8080", "http_proxy": "http://127.0.0.1:3128",
        ], notes: &notes)
        #expect(proxies.map(\.endpoint) == ["10.1.2.3:8080", "proxy.corp.example:3128"])
        #expect(proxies[1].variables == ["HTTPS_PROXY", "https_proxy"])
        #expect(notes.count == 1 && notes[0].contains("http_proxy points at this machine's loopback"))
        let trust = HostTrust(proxies: proxies)
        #expect(try trust.proxyAllowEntries().map(\.description) == ["10.1.2.3:8080/tcp", "proxy.corp.example:3128/tcp"])
        // By name only: a proxy URL may hold a password.
        #expect(!trust.passedVariables.contains { $0.contains("secret") })
        #expect(throws: PlanError.self) { try HostTrust.proxies(environment: ["HTTPS_PROXY": "http://"], notes: &notes) }
    }

    @Test func noProxyGoesAlongWithAProxy() throws {
        let none = try HostTrust.load(configured: nil, hostCA: false, repositoryRoot: root, environment: ["NO_PROXY": "x"])
        #expect(none.passedVariables.isEmpty)
        let one = try HostTrust.load(configured: nil, hostCA: false, repositoryRoot: root,
                                     environment: ["HTTPS_PROXY": "http://p:1", "NO_PROXY": "localhost"])
        #expect(one.passedVariables == ["HTTPS_PROXY", "NO_PROXY"])
    }

    /// A file that starts like an ELF executable for `machine`.
    func elf(_ name: String, machine: UInt16) throws -> URL {
        var header: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0] + Array(repeating: 0, count: 10)
        header += [UInt8(machine & 0xFF), UInt8(machine >> 8)] + Array(repeating: 0, count: 40)
        let url = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(header).write(to: url)
        chmod(url.path, 0o755)
        return url
    }

    @Test func claudeOnPathIsUsedWhenItIsABinaryForThisMachine() async throws {
        let bin = root.appendingPathComponent("bin")
        let real = try elf("versions/2.1.29", machine: ClaudeCodeLocator.hostMachine)
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: bin.appendingPathComponent("claude"), withDestinationURL: real)
        let found = try await ClaudeCodeLocator.choose(flag: nil, config: nil, repositoryRoot: root,
                                                       environment: ["PATH": bin.path, "HOME": root.path])
        #expect(found.source == .host)
        #expect(found.binary == real.resolvingSymlinksInPath())
        #expect(found.foundAt == bin.path + "/claude (on PATH)")
        #expect(found.description.contains("installed on this machine"))
    }

    @Test func scriptsAndOtherArchitecturesArePassedOverForNpm() async throws {
        let bin = root.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try Data("#!/usr/bin/env node\n".utf8).write(to: bin.appendingPathComponent("claude"))
        _ = try elf(".local/bin/claude", machine: ClaudeCodeLocator.hostMachine == 62 ? 183 : 62)
        let found = try await ClaudeCodeLocator.choose(flag: nil, config: nil, repositoryRoot: root,
                                                       environment: ["PATH": bin.path, "HOME": root.path])
        #expect(found.source == .npm && found.binary == nil && found.version == RunPlan.pinnedClaudeVersion)
        let warning = try #require(found.npmWarning)
        #expect(warning.contains("a script (the npm package's launcher)"))
        #expect(warning.contains("another architecture"))
        #expect(warning.contains("fails offline"))
        #expect(!warning.contains("\n"))
    }

    @Test func flagBeatsConfigBeatsInstalled() async throws {
        let flag = try elf("flag/claude", machine: ClaudeCodeLocator.hostMachine)
        let config = try elf("config/claude", machine: ClaudeCodeLocator.hostMachine)
        let env = ["PATH": "", "HOME": root.path]
        #expect(try await ClaudeCodeLocator.choose(flag: flag.path, config: "config/claude", repositoryRoot: root, environment: env).binary == flag)
        let fromConfig = try await ClaudeCodeLocator.choose(flag: nil, config: "config/claude", repositoryRoot: root, environment: env)
        #expect(fromConfig.source == .config && fromConfig.binary == config)
        await #expect(throws: PlanError.self) {
            try await ClaudeCodeLocator.choose(flag: nil, config: "nope/claude", repositoryRoot: root, environment: env)
        }
    }

    @Test func theRealClaudeCodeReportsItsVersion() async throws {
        let binary = TestEnvironment.claudeBinary
        guard FileManager.default.fileExists(atPath: binary.path) else { return }
        let version = await ClaudeCodeLocator.version(of: binary)
        #expect(version?.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+"#, options: .regularExpression) != nil)
    }
}
