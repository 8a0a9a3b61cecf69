import Foundation
import Testing

/// Paths and switches for tests that drive the real parts: the patina binary,
/// the Docker engine, the real Claude Code CLI, the debootstrap base image.
public enum TestEnvironment {
    public static let environment = ProcessInfo.processInfo.environment

    /// The package root, found from this file's path.
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url = url.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("package root not found above \(#filePath)")
    }()

    public static var fixtures: URL { packageRoot.appendingPathComponent("Tests/Fixtures") }

    /// The built `patina` executable (`PATINA_BIN`, else `.build/debug/patina`).
    public static var patinaBinary: URL {
        if let explicit = environment["PATINA_BIN"] { return URL(fileURLWithPath: explicit) }
        return packageRoot.appendingPathComponent(".build/debug/patina")
    }

    /// The real Claude Code CLI (`PATINA_TEST_CLAUDE`, else `.cache/claude/claude`
    /// as fetched by scripts/setup-test-env).
    public static var claudeBinary: URL {
        if let explicit = environment["PATINA_TEST_CLAUDE"] { return URL(fileURLWithPath: explicit) }
        return packageRoot.appendingPathComponent(".cache/claude/claude")
    }

    /// The base image built with debootstrap + docker import.
    public static var baseImage: String { environment["PATINA_TEST_BASE_IMAGE"] ?? "patina-test/bookworm:minbase" }

    /// In CI the end-to-end tests are required: a missing daemon fails them
    /// instead of skipping them.
    public static var endToEndRequired: Bool { environment["PATINA_E2E_REQUIRED"] == "1" || environment["CI"] != nil }

    public static let dockerAnswers: Bool = {
        (try? ProcessRunner.run(["docker", "version", "--format", "{{.Server.Version}}"]).status == 0) ?? false
    }()
}

extension Trait where Self == ConditionTrait {
    /// Needs a Docker daemon (and root for iptables). Skipped only on a developer
    /// machine without one; in CI (`PATINA_E2E_REQUIRED=1`) it always runs.
    public static var requiresDocker: Self {
        .enabled(if: TestEnvironment.dockerAnswers || TestEnvironment.endToEndRequired,
                 "needs a Docker daemon (run scripts/setup-test-env)")
    }
}
