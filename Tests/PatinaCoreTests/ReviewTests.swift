import Foundation
@testable import PatinaCore
import Testing

@Suite struct SensitivePathsTests {
    @Test(arguments: [
        ".patina/allow.txt", ".patina/templates/Dockerfile.mustache", ".devcontainer/devcontainer.json", ".devcontainer.json",
        ".github/workflows/ci.yml", ".gitlab-ci.yml", "sub/.gitattributes", ".gitmodules", ".husky/pre-commit",
        "tools/hooks/post-checkout", "Makefile", "src/build.rs", "Package.swift", "package.json", "pyproject.toml",
        "cmake/flags.cmake", "build.gradle.kts", ".vscode/tasks.json",
    ])
    func marked(_ path: String) {
        #expect(SensitivePaths.match(path) != nil, "\(path) should be marked")
    }

    @Test(arguments: ["README.md", "src/main.swift", "docs/hooks.md", "tests/test_api.py", "Sources/patina/Entrypoint.swift", "github/notes.txt"])
    func notMarked(_ path: String) {
        #expect(SensitivePaths.match(path) == nil, "\(path) should not be marked")
    }

    @Test func markedPathsComeFirst() {
        let (marked, rest) = SensitivePaths.ordered(["a.txt", ".github/x.yml", "b.txt", "Makefile"])
        #expect(marked.map(\.path) == [".github/x.yml", "Makefile"])
        #expect(rest == ["a.txt", "b.txt"])
    }
}

@Suite struct ResumeOptionsTests {
    @Test func flagsOverrideAndAddButNeverSwitchTheFirewallBackOn() {
        var earlier = YoloOptions(task: "first")
        earlier.model = "claude-a"
        earlier.maxTurns = 5
        earlier.allow = ["pypi.org"]
        earlier.noFirewall = true
        earlier.check = "make test"
        var flags = YoloOptions(task: "follow-up")
        flags.maxTurns = 9
        flags.allow = ["github.com", "pypi.org"]
        let merged = earlier.overridden(by: flags)
        #expect(merged.task == "follow-up")
        #expect(merged.model == "claude-a")
        #expect(merged.maxTurns == 9)
        #expect(merged.allow == ["pypi.org", "github.com"])
        #expect(merged.noFirewall)
        #expect(merged.check == "make test")
    }
}

@Suite struct ComparisonTests {
    func record(_ id: String, files: [String]) -> RunRecord {
        var r = BatchReportTests.run(id)
        r.filesChanged = files.map { FileChangeRecord(path: $0, additions: 1, deletions: 0, status: "added") }
        return r
    }

    @Test func overlapIsVisibleAndAgentTextIsEscapedInHTML() {
        let c = Comparison([record("r1", files: ["a.txt", "<script>x.txt"]), record("r2", files: ["a.txt", "b.txt"])])
        #expect(c.rows.count == 2)
        #expect(c.touches.first { $0.path == "a.txt" }?.overlap == true)
        #expect(c.touches.first { $0.path == "b.txt" }?.overlap == false)
        let html = c.html(title: "Runs")
        #expect(!html.contains("<script>x.txt"))
        #expect(html.contains("&lt;script&gt;x.txt"))
        #expect(!html.contains("http://") && !html.contains("https://"))
    }
}

/// Whether a run's patina is still alive decides whether recovery may collect its run.
@Suite struct PatinaAliveTests {
    /// A patina killed but not yet reaped by its parent (a zombie) is gone: its run is
    /// collected, not left as in flight.
    @Test func aKilledPatinaNotYetReapedIsGone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alive-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // A process whose name is patina's (the kernel's comm is the executable's name).
        let executable = directory.appendingPathComponent("patina")
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: executable.path)
        // Spawned directly (Foundation's Process reaps its children itself).
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(executable.path), strdup("60"), nil]
        defer { for arg in argv { free(arg) } }
        #expect(posix_spawn(&pid, executable.path, nil, nil, argv, environ) == 0)
        #expect(RunLiveness.patinaAlive(pid: pid))
        kill(pid, SIGKILL)
        // Not reaped: wait until the kernel shows it as a zombie.
        var zombie = false
        for _ in 0..<200 where !zombie {
            zombie = ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "").contains(") Z ")
            if !zombie { usleep(10_000) }
        }
        #expect(zombie, "the process did not become a zombie")
        #expect(!RunLiveness.patinaAlive(pid: pid))
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
