import Foundation
import PatinaTestSupport
import Testing

/// `prune` in its own lane: this repository's runs and the images only they use; a
/// squash-merged run counts as merged; a discarded run says so.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct PruneEndToEndTests {
    @Test func pruneInASecondRepositoryLeavesTheFirstOnesRunsAndImages() throws {
        let first = try TemporaryRepository(files: ["README.md": "# first\n"])
        let second = try TemporaryRepository(files: ["README.md": "# second\n"])
        let model = try FakeModel(script: [
            .bash("echo a > a.txt && git add a.txt && git commit -qm 'add a'"),
            .text("Done."),
        ])
        let patinaFirst = PatinaRunner(repository: first, baseURL: model.baseURL)
        // One patina home for both repositories, as a user has.
        var patinaSecond = PatinaRunner(repository: second, baseURL: model.baseURL)
        patinaSecond.extraEnvironment["PATINA_HOME"] = first.home.path
        let kept = try FinishedRun(patinaFirst.yolo("add a"))
        #expect(kept.status == "succeeded", "\(kept.output.stderr)")
        let image = try #require(kept.record["image"] as? String)

        // No runs here: nothing of the first repository's, no image.
        let empty = try patinaSecond.run(["prune", "--dry-run"])
        #expect(empty.status == 0, "\(empty.stderr)")
        #expect(!empty.stdout.contains("image") && !empty.stdout.contains(kept.id), "\(empty.stdout)")
        let none = try patinaSecond.run(["prune", "--dry-run", "--older-than", "1h"])
        #expect(!none.stdout.contains("image"), "\(none.stdout)")

        // A run of its own, pruned with --force: the image the first repository's run used stays.
        try model.update(script: [.bash("echo b > b.txt && git add b.txt && git commit -qm 'add b'"), .text("Done.")])
        let own = try FinishedRun(patinaSecond.yolo("add b"))
        #expect(own.status == "succeeded", "\(own.output.stderr)")
        let pruned = try patinaSecond.run(["prune", "--force"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(pruned.stdout.contains("removed run \(own.id)"), "\(pruned.stdout)")
        #expect(!pruned.stdout.contains(kept.id) && !pruned.stdout.contains("image \(image)"), "\(pruned.stdout)")
        #expect(try ProcessRunner.run(["docker", "image", "inspect", image]).status == 0, "the first repository's image was removed")
        #expect(FileManager.default.fileExists(atPath: kept.runDir.path))
        #expect(try !first.git("branch", "--list", kept.branch).isEmpty)
    }

    @Test func aSquashMergedRunIsMergedAndADiscardedRunSaysSo() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n"])
        let model = try FakeModel(script: [
            .bash("echo s > s.txt && git add s.txt && git commit -qm 'add s'"),
            .text("Done."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let squashed = try FinishedRun(patina.yolo("add s"))
        #expect(squashed.status == "succeeded", "\(squashed.output.stderr)")
        try model.update(script: [.bash("echo d > d.txt && git add d.txt && git commit -qm 'add d'"), .text("Done.")])
        // --quiet still prints the run id and its branch, for scripts.
        let quiet = try patina.run(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                                    "--base-image", TestEnvironment.baseImage, "--quiet", "add d"])
        #expect(quiet.status == 0, "\(quiet.stderr)")
        let discarded = try FinishedRun(patina.run(["show", "--json", "latest"]))
        #expect(discarded.status == "succeeded")
        #expect(quiet.stdout == "\(discarded.id) \(discarded.branch)\n", "\(quiet.stdout)")

        // main moves on, then the run is squash-merged: its commits are on no other branch,
        // its changes are on main.
        try repo.write("user.txt", "mine\n")
        try repo.git("add", "user.txt")
        try repo.git("commit", "-qm", "user work")
        #expect(try patina.run(["merge", "--squash", squashed.id]).status == 0)
        let listed = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]] ?? []
        let states = Dictionary(uniqueKeysWithValues: listed.map { ($0["id"] as? String ?? "", $0["branch_state"] as? String ?? "") })
        #expect(states[squashed.id] == "merged")
        #expect(states[discarded.id] == "unmerged")

        // discard: show and runs say so; --status discarded finds it.
        #expect(try patina.run(["discard", discarded.id]).status == 0)
        let show = try patina.run(["show", discarded.id])
        #expect(show.stdout.hasPrefix("SUCCEEDED, DISCARDED"), "\(show.stdout)")
        #expect(show.stdout.contains("branch:    none (discarded") && !show.stdout.contains("worktree:"), "\(show.stdout)")
        let onlyDiscarded = try patina.run(["runs", "--status", "discarded"])
        #expect(onlyDiscarded.status == 0, "\(onlyDiscarded.stderr)")
        #expect(onlyDiscarded.stdout.contains(discarded.id) && !onlyDiscarded.stdout.contains(squashed.id), "\(onlyDiscarded.stdout)")

        // prune without --force takes the squash-merged run.
        let pruned = try patina.run(["prune"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(pruned.stdout.contains("removed run \(squashed.id)"), "\(pruned.stdout)")
        #expect(try repo.git("branch", "--list", squashed.branch).isEmpty)
    }

    /// Claude Code volumes of binaries no longer used go; the current binary's stays, and so
    /// does one a container uses (said so). Dry run first: it changes nothing.
    @Test func claudeVolumesOfOtherBinariesGoUnlessCurrentOrInUse() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# volumes\n",
                                                   ".patina/config.json": "{\"agent_binary\": \"\(TestEnvironment.claudeBinary.path)\"}\n"])
        let patina = PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9")
        let digest = String(try ProcessRunner.check(["sha256sum", TestEnvironment.claudeBinary.resolvingSymlinksInPath().path]).prefix(16))
        let current = "patina-claude-\(digest)"
        func random() -> String { "patina-claude-" + String(format: "%016llx", UInt64.random(in: .min ... .max)) }
        let stale = random(), used = random(), user = "patina-test-volume-user-\(UUID().uuidString.prefix(8))"
        defer {
            _ = try? ProcessRunner.run(["docker", "rm", "--force", user])
            _ = try? ProcessRunner.run(["docker", "volume", "rm", stale, used])
        }
        let existed = try ProcessRunner.run(["docker", "volume", "inspect", current]).status == 0
        defer { if !existed { _ = try? ProcessRunner.run(["docker", "volume", "rm", current]) } }
        // A volume left by an older binary (1 MB in it), one a (stopped) container still uses,
        // and the current binary's (an empty one when no run made it yet: the next run fills it).
        for name in [stale, used] + (existed ? [] : [current]) {
            try ProcessRunner.check(["docker", "volume", "create", "--label", "patina.claude=0.0.1", name])
        }
        try ProcessRunner.check(["docker", "run", "--rm", "--network", "none", "-v", "\(stale):/d", TestEnvironment.baseImage,
                                 "sh", "-c", "head -c 1048576 /dev/urandom > /d/claude"])
        try ProcessRunner.check(["docker", "create", "--name", user, "--network", "none", "-v", "\(used):/d", TestEnvironment.baseImage, "true"])

        let dry = try patina.run(["prune", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        let going = (plan["claude_volumes"] as? [[String: Any]] ?? [])
        #expect(going.contains { $0["name"] as? String == stale && ($0["bytes"] as? Int ?? 0) >= 1 << 20 && $0["version"] as? String == "Claude Code 0.0.1" }, "\(going)")
        #expect(!going.contains { [used, current].contains($0["name"] as? String ?? "") }, "\(going)")
        let kept = Dictionary((plan["kept_claude_volumes"] as? [[String: String]] ?? []).map { ($0["name"] ?? "", $0["reason"] ?? "") }) { a, _ in a }
        #expect(kept[used] == "in use by container \(user)", "\(kept)")
        // The current binary's: kept as such, or (on a machine running other runs) as in use.
        #expect(kept[current].map { $0.contains("current Claude Code") || $0.hasPrefix("in use by container") } == true, "\(kept)")
        #expect((plan["claude_volume_bytes"] as? Int ?? 0) >= 1 << 20)
        #expect(try ProcessRunner.run(["docker", "volume", "inspect", stale]).status == 0, "a dry run removed a volume")

        let pruned = try patina.run(["prune"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(pruned.stdout.contains("removed Claude Code volume \(stale) (Claude Code 0.0.1, "), "\(pruned.stdout)")
        #expect(pruned.stdout.contains("kept Claude Code volume \(used): in use by container \(user)"), "\(pruned.stdout)")
        #expect(pruned.stdout.contains("gave back "), "\(pruned.stdout)")
        #expect(try ProcessRunner.run(["docker", "volume", "inspect", stale]).status != 0, "the stale volume is still there")
        #expect(try ProcessRunner.run(["docker", "volume", "inspect", used]).status == 0)
        #expect(try ProcessRunner.run(["docker", "volume", "inspect", current]).status == 0)
    }

    /// A store whose patina home was deleted is an orphan: prune (from any repository) lists it
    /// with its size, then removes it; a store whose home is there stays.
    @Test func aStoreWhoseHomeWasDeletedIsRemovedWithWhatItTook() throws {
        let gone = try TemporaryRepository(files: ["README.md": "# gone\n"])
        let here = try TemporaryRepository(files: ["README.md": "# here\n"])
        let model = try FakeModel(script: [.bash("echo g > g.txt && git add g.txt && git commit -qm g"), .text("Done.")])
        let run = try FinishedRun(PatinaRunner(repository: gone, baseURL: model.baseURL).yolo("add g"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        try model.update(script: [.text("Done.")])
        let patina = PatinaRunner(repository: here, baseURL: model.baseURL)
        let own = try FinishedRun(patina.yolo("nothing"))
        #expect(own.status == "succeeded", "\(own.output.stderr)")
        let folder = gone.store.path, ownFolder = here.store.path
        #expect(folder.hasPrefix("/var/lib/patina/stores/") && ownFolder.hasPrefix("/var/lib/patina/stores/"))
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The user deletes the first repository's patina home: its store is left behind.
        try FileManager.default.removeItem(at: gone.home)
        #expect(FileManager.default.fileExists(atPath: folder))

        let dry = try patina.run(["prune", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        let stores = plan["stores"] as? [[String: Any]] ?? []
        let listed = try #require(stores.first { $0["path"] as? String == folder }, "\(stores)")
        #expect((listed["bytes"] as? Int ?? 0) > 0 && (listed["links"] as? String ?? "").hasPrefix(gone.home.path), "\(listed)")
        #expect(!stores.contains { $0["path"] as? String == ownFolder }, "\(stores)")
        #expect(FileManager.default.fileExists(atPath: folder), "a dry run removed the store")

        let pruned = try patina.run(["prune", "--older-than", "1h"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(pruned.stdout.contains("removed orphaned store \(folder) ("), "\(pruned.stdout)")
        #expect(!FileManager.default.fileExists(atPath: folder))
        #expect(FileManager.default.fileExists(atPath: URL(fileURLWithPath: ownFolder).appendingPathComponent("runs/\(own.id)/run.json").path))
    }
}
