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
}
