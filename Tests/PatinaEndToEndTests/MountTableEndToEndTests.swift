import Foundation
import PatinaCore
import PatinaTestSupport
import Testing

/// The sandboxes' mount tables name nothing of the user: the real agent reads
/// /proc/self/mountinfo and /proc/1/mountinfo in its sandbox, the check does the same in
/// its own, and neither names the user's home, the repository's folder or patina's home.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct MountTableEndToEndTests {
    /// `patina detect` lists Claude Code's volume with the other mounts, read-only and by its
    /// name (the binary's content), in text and in --json, without making it.
    @Test func detectListsTheClaudeCodeVolumeWithTheOtherMounts() throws {
        let repo = try TemporaryRepository()
        let patina = PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9")
        let digest = String(try ProcessRunner.check(["sha256sum", TestEnvironment.claudeBinary.resolvingSymlinksInPath().path]).prefix(16))
        let mount = "type=volume,source=patina-claude-\(digest),target=/patina/claude,readonly,volume-nocopy"
        let text = try patina.run(["detect", "--agent-binary", TestEnvironment.claudeBinary.path])
        #expect(text.status == 0, "\(text.stderr)")
        let mountsLine = text.stdout.split(separator: "\n").first { $0.contains("\"mounts\":") }.map(String.init) ?? ""
        #expect(mountsLine.contains("\"\(mount)\""), "\(mountsLine)")
        let json = try patina.run(["detect", "--json", "--agent-binary", TestEnvironment.claudeBinary.path])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let devcontainer = try #require(try JSONSerialization.jsonObject(with: Data((object["devcontainer_json"] as? String ?? "").utf8)) as? [String: Any])
        let mounts = devcontainer["mounts"] as? [String] ?? []
        #expect(mounts.contains(mount), "\(mounts)")
        // Beside the run's own mounts, which are listed as before.
        #expect(mounts.contains { $0.hasSuffix("target=/home/agent") }, "\(mounts)")
        #expect(!FileManager.default.fileExists(atPath: repo.home.appendingPathComponent("repos").path))
    }

    @Test func neitherSandboxsMountTableNamesTheUsersPaths() throws {
        let name = "zqx-distinctive-repo-name"
        let repo = try TemporaryRepository(name: name)
        let main = try repo.git("rev-parse", "main")
        let read = "cat /proc/self/mountinfo; echo ====; cat /proc/1/mountinfo"
        let model = try FakeModel(script: [
            .bash("echo MOUNTINFO-BEGIN; \(read); echo MOUNTINFO-END"),
            // The Claude Code binary is shared by every run: it cannot be changed from here.
            .bash(#"""
            echo "CLAUDE-PATH:$(readlink -f "$(command -v claude)")"
            : >> "$(readlink -f "$(command -v claude)")" 2>/dev/null; echo "CLAUDE-WRITE:$?"
            touch /patina/claude/planted 2>/dev/null; echo "CLAUDE-DIR-WRITE:$?"
            """#),
            .text("Read the mount table."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("read the mount table", ["--check", read]))
        #expect(run.status == "succeeded", "\(run.record) / \(run.output.stderr.suffix(800))")

        let results = commandOutputs(model)
        let agentTable = try #require(results.first { $0.contains("MOUNTINFO-BEGIN") }, "\(results)")
        let checkTable = try #require(run.file("check.log"))
        #expect(agentTable.contains("/workspace") && checkTable.contains("/workspace"), "\(agentTable)\n\(checkTable)")
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        let forbidden = [name, repo.home.path, repo.root.lastPathComponent, home + "/"]
        for (which, table) in [("agent", agentTable), ("check", checkTable)] {
            for word in forbidden {
                #expect(!table.contains(word), "the \(which) sandbox's mount table names \(word):\n\(table)")
            }
            // The mounted folders are in patina's neutral store (or Docker's own folders).
            let mounted = table.split(separator: "\n").filter { $0.contains(" /workspace ") || $0.contains(" /home/agent ") }
            #expect(mounted.count >= 4, "\(which): \(table)")  // each in /proc/self and /proc/1
            for line in mounted {
                #expect(line.contains(StorePlacement.neutralRoot.path + "/"), "\(which): \(line)")
            }
        }
        // The store is a link into the neutral folder: records and review verbs reach it as before.
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: store.root.path)
        #expect(target.hasPrefix(StorePlacement.neutralRoot.path + "/") && !target.contains(name))
        #expect(try patina.run(["show", run.id]).status == 0)
        #expect(try patina.run(["diff", run.id]).status == 0)

        let out = markers(in: results)
        #expect(out["CLAUDE-PATH"] == "/patina/claude/claude", "\(results)")
        #expect(out["CLAUDE-WRITE"] != nil && out["CLAUDE-WRITE"] != "0", "\(results)")
        #expect(out["CLAUDE-DIR-WRITE"] != nil && out["CLAUDE-DIR-WRITE"] != "0", "\(results)")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    /// A store made before the neutral folder existed (a folder in patina's home, with a
    /// recorded run) is moved there by the next run, and its earlier run still reads.
    @Test func aStoreMadeBeforeMovesOnceAndItsRunsStillRead() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.bash("echo one > one.txt && git add one.txt && git commit -qm one"), .text("done")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let first = try FinishedRun(patina.yolo("first"))
        #expect(first.status == "succeeded", "\(first.output.stderr.suffix(800))")
        // Make it as an older patina left it: the store a folder in patina's home.
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let neutral = try FileManager.default.destinationOfSymbolicLink(atPath: store.root.path)
        try FileManager.default.removeItem(at: store.root)
        try ProcessRunner.check(["mv", neutral, store.root.path])
        #expect(try patina.run(["show", first.id]).status == 0)

        let second = try FinishedRun(patina.yolo("second"))
        #expect(second.status == "succeeded", "\(second.output.stderr.suffix(800))")
        let moved = try FileManager.default.destinationOfSymbolicLink(atPath: store.root.path)
        #expect(moved.hasPrefix(StorePlacement.neutralRoot.path + "/"))
        // The earlier run's record, worktree and branch are where its record says.
        let show = try patina.run(["show", first.id])
        #expect(show.status == 0, "\(show.stderr)")
        #expect(FileManager.default.fileExists(atPath: first.worktree.appendingPathComponent("one.txt").path))
        #expect(try patina.run(["diff", first.id]).stdout.contains("one.txt"))
    }
}
