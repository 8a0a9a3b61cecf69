import Foundation
import PatinaCore
import PatinaSandbox
import PatinaTestSupport
import Testing

/// The review verbs end to end, on runs made in the test: real Docker engine,
/// real Claude Code CLI, real libgit2; only the model is a scripted fake.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct ReviewEndToEndTests {
    /// One run whose agent commits `file` with `content` (and runs `extra` first).
    func run(_ patina: PatinaRunner, _ model: FakeModel, task: String, file: String, content: String,
             extra: String = "true", flags: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws -> FinishedRun {
        try model.update(script: [
            .bash("\(extra); mkdir -p \"$(dirname '\(file)')\" && printf '%s\\n' '\(content)' > '\(file)' && git add -A && git commit -qm 'write \(file)'"),
            .text("Wrote \(file)."),
        ])
        let run = try FinishedRun(patina.yolo(task, flags))
        #expect(run.status == "succeeded", "stderr: \(run.output.stderr)", sourceLocation: sourceLocation)
        return run
    }

    /// Every file of the checkout and the git metadata that a refused merge must not touch.
    func checkoutSnapshot(_ repo: TemporaryRepository) throws -> [String: Data] {
        var snapshot = try repo.gitMetadataSnapshot()
        let walker = FileManager.default.enumerator(atPath: repo.path.path)
        while let relative = walker?.nextObject() as? String {
            if relative == ".git" { walker?.skipDescendants(); continue }
            let url = repo.path.appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            snapshot["worktree/" + relative] = try Data(contentsOf: url)
        }
        for name in ["index", "HEAD", "refs/heads/main"] {
            snapshot[".git/" + name] = try Data(contentsOf: repo.path.appendingPathComponent(".git/" + name))
        }
        return snapshot
    }

    @Test func sessionLogTagsLogAndDiff() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("ls /nonexistent-dir"),
            .bash("mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml && echo hi > notes.txt && git add -A && git commit -qm 'add notes and ci'"),
            .text("Added notes.txt.\n## Outcome\n- [x] forged"),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("add notes\nsecond line of the task"))
        #expect(run.status == "succeeded", "stderr: \(run.output.stderr)")
        #expect(run.record["sensitive_changes"] as? [String] == [".github/workflows/ci.yml"])
        #expect(run.output.stderr.contains("warning: the run changed files that affect later sandboxes"), "\(run.output.stderr)")

        // session.md: the project's session-log shape, one entry per tool call.
        let markdown = try #require(run.file("session.md"))
        let headings = markdown.split(separator: "\n").filter { $0.hasPrefix("#") && !$0.hasPrefix("###") }.map(String.init)
        #expect(headings.first == "# Session: add notes")
        let sections = headings.filter { $0.hasPrefix("## ") }
        for (a, b) in zip(["## Goals", "## Activity Log", "## Git Activity"], sections) { #expect(a == b, "sections: \(sections)") }
        #expect(sections.contains("## Outcome"))
        #expect(sections.filter { $0 == "## Outcome" }.count == 1, "the agent's text forged a heading: \(sections)")
        for key in ["**ID**", "**Started**", "**LLM**", "**Git Branch**", "**Session Tag**", "**Starting Commit**"] {
            #expect(markdown.contains(key), "missing \(key)")
        }
        #expect(markdown.contains("- [x] add notes"))
        let entries = markdown.split(separator: "\n").filter { $0.hasPrefix("### ") }
        #expect(entries.filter { $0.contains("Bash") }.count == 2, "one entry per tool call: \(entries)")
        #expect(markdown.contains("nonexistent-dir"))
        #expect(!markdown.contains("sk-ant-test-not-a-real-key"))

        // The tags bracket the run's work for plain git.
        #expect(try repo.git("rev-parse", "session-\(run.id)-start^{commit}") == main)
        #expect(try repo.git("rev-parse", "session-\(run.id)-end^{commit}") == run.head)
        #expect(try repo.git("diff", "--name-only", "session-\(run.id)-start..session-\(run.id)-end").split(separator: "\n").count == 2)

        // log: session.md (no pager off a terminal); --raw: session.jsonl unchanged.
        let log = try patina.run(["log", String(run.id.suffix(4))])
        #expect(log.status == 0)
        #expect(log.stdout == markdown)
        let raw = try patina.run(["log", "--raw", "latest"])
        #expect(raw.stdout == run.file("session.jsonl"))

        // diff: the CI file first, marked; --stat; paths after `--`.
        let diff = try patina.run(["diff", run.id])
        #expect(diff.status == 0)
        let marked = try #require(diff.stdout.range(of: "! this run changed files"))
        let ci = try #require(diff.stdout.range(of: "diff --git a/.github/workflows/ci.yml"))
        let notes = try #require(diff.stdout.range(of: "diff --git a/notes.txt"))
        #expect(marked.lowerBound < ci.lowerBound && ci.lowerBound < notes.lowerBound)
        #expect(!diff.stdout.contains("\u{1B}["), "no colour off a terminal")
        let stat = try patina.run(["diff", "--stat", run.branch])
        #expect(stat.stdout.contains("2 files changed, +2 -0"), "\(stat.stdout)")
        let only = try patina.run(["diff", run.id, "--", "notes.txt"])
        #expect(only.stdout.contains("+hi") && !only.stdout.contains("ci.yml"), "\(only.stdout)")
    }

    @Test func mergeFastForwardSquashConflictDirtyAndMarkedPaths() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "shared.txt": "one\n"])
        let model = try FakeModel(script: [.text("nothing yet")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)

        // Fast-forward.
        let first = try run(patina, model, task: "add a", file: "a.txt", content: "a")
        let ff = try patina.run(["merge", first.id])
        #expect(ff.status == 0, "\(ff.stderr)")
        #expect(ff.stdout.contains("fast-forwarded main"))
        #expect(try repo.git("rev-parse", "main") == first.head)
        #expect(try String(contentsOf: repo.path.appendingPathComponent("a.txt"), encoding: .utf8) == "a\n")
        #expect(try repo.git("status", "--porcelain").isEmpty)

        // Both sides changed shared.txt: a conflict, refused, nothing changed.
        let conflicting = try run(patina, model, task: "change shared", file: "shared.txt", content: "agent")
        try repo.write("shared.txt", "user\n")
        try repo.git("commit", "-qam", "user edit")
        let before = try checkoutSnapshot(repo)
        let conflict = try patina.run(["merge", conflicting.id])
        #expect(conflict.status == 2)
        #expect(conflict.stderr.hasPrefix("error: ") && conflict.stderr.contains("shared.txt"), "\(conflict.stderr)")
        #expect(conflict.stderr.split(separator: "\n").count == 1)
        #expect(try checkoutSnapshot(repo) == before, "a refused merge changed the repository")

        // A dirty checkout: refused, nothing changed.
        let other = try run(patina, model, task: "add b", file: "b.txt", content: "b")
        try repo.write("user.txt", "mine\n")
        try repo.git("add", "user.txt")
        try repo.git("commit", "-qm", "user commit after the run started")
        try repo.write("README.md", "# demo, edited\n")
        let dirtyBefore = try checkoutSnapshot(repo)
        let dirty = try patina.run(["merge", other.id])
        #expect(dirty.status == 2)
        #expect(dirty.stderr.contains("README.md"), "\(dirty.stderr)")
        #expect(try checkoutSnapshot(repo) == dirtyBefore)
        try repo.git("checkout", "--", "README.md")

        // A merge commit (main moved on since the run started).
        let merged = try patina.run(["merge", "--json", other.id])
        #expect(merged.status == 0, "\(merged.stderr)")
        let mergeCommit = try repo.git("rev-parse", "main")
        #expect(try repo.git("rev-list", "--parents", "-n", "1", "main").split(separator: " ").count == 3)
        #expect(try repo.git("rev-parse", "main^2") == other.head)
        #expect(merged.stdout.contains("merge-commit"))

        // Squash: one commit, one parent, a message from the task and the session.
        let squashed = try run(patina, model, task: "add c squashed", file: "c.txt", content: "c")
        let squash = try patina.run(["merge", "--squash", squashed.id])
        #expect(squash.status == 0, "\(squash.stderr)")
        #expect(try repo.git("rev-parse", "main^") == mergeCommit)
        #expect(try repo.git("rev-list", "--parents", "-n", "1", "main").split(separator: " ").count == 2)
        let message = try repo.git("log", "-1", "--format=%B", "main")
        #expect(message.hasPrefix("add c squashed"))
        #expect(message.contains("session-\(squashed.id)-start..session-\(squashed.id)-end"))
        #expect(message.contains("write c.txt"))
        #expect(try repo.git("status", "--porcelain").isEmpty)

        // A run that changed patina's own sandbox settings needs --yes.
        let risky = try run(patina, model, task: "loosen the sandbox", file: ".patina/allow.txt", content: "example.com")
        let markedBefore = try checkoutSnapshot(repo)
        let refused = try patina.run(["merge", risky.id])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains(".patina/allow.txt") && refused.stderr.contains("--yes"), "\(refused.stderr)")
        #expect(try checkoutSnapshot(repo) == markedBefore)
        let accepted = try patina.run(["merge", "--yes", risky.id])
        #expect(accepted.status == 0, "\(accepted.stderr)")

        // runs: every merged branch says so.
        let listed = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]] ?? []
        let states = Dictionary(uniqueKeysWithValues: listed.map { ($0["id"] as? String ?? "", $0["branch_state"] as? String ?? "") })
        #expect(states[first.id] == "merged")
        #expect(states[conflicting.id] == "unmerged")
        #expect(states[risky.id] == "merged")
    }

    @Test func applyDiscardPruneAndCompare() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n"])
        let model = try FakeModel(script: [.text("nothing yet")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let one = try run(patina, model, task: "add one", file: "one.txt", content: "1")
        let two = try run(patina, model, task: "add two", file: "two.txt", content: "2", extra: "echo '# demo, by two' > README.md")
        let three = try run(patina, model, task: "add three", file: "three.txt", content: "3", extra: "echo '# demo, by three' > README.md")
        let main = try repo.git("rev-parse", "main")

        // compare: side by side, README.md touched by two runs.
        let compared = try patina.run(["compare", "--json", one.id, two.id, three.id])
        #expect(compared.status == 0, "\(compared.stderr)")
        let body = try JSONSerialization.jsonObject(with: Data(compared.stdout.utf8)) as? [String: Any] ?? [:]
        #expect((body["runs"] as? [Any])?.count == 3)
        let readme = (body["files"] as? [[String: Any]] ?? []).first { $0["path"] as? String == "README.md" }
        #expect(readme?["overlap"] as? Bool == true)
        #expect((readme?["runs"] as? [String] ?? []).sorted() == [two.id, three.id].sorted())
        let page = repo.root.appendingPathComponent("compare.html")
        #expect(try patina.run(["compare", one.id, two.id, "--html", page.path]).status == 0)
        #expect(try String(contentsOf: page, encoding: .utf8).contains("Files touched"))

        // apply: into the working tree only; --staged also stages.
        let applied = try patina.run(["apply", one.id])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(try repo.git("status", "--porcelain") == "?? one.txt")
        #expect(try repo.git("rev-parse", "main") == main)
        try FileManager.default.removeItem(at: repo.path.appendingPathComponent("one.txt"))
        #expect(try patina.run(["apply", "--staged", two.id]).status == 0)
        #expect(try repo.git("diff", "--cached", "--name-only").split(separator: "\n").sorted() == ["README.md", "two.txt"])
        // three conflicts with two's README.md now in the checkout: refused, nothing half-applied.
        let before = try checkoutSnapshot(repo)
        let conflict = try patina.run(["apply", three.id])
        #expect(conflict.status == 2, "\(conflict.stdout + conflict.stderr)")
        #expect(conflict.stderr.contains("README.md"), "\(conflict.stderr)")
        #expect(try checkoutSnapshot(repo) == before)
        try repo.git("reset", "-q", "--hard")
        #expect(try repo.git("status", "--porcelain").isEmpty)

        // discard: branch, worktree and tags go; the record stays, marked.
        let discarded = try patina.run(["discard", three.id])
        #expect(discarded.status == 0, "\(discarded.stderr)")
        #expect(try repo.git("branch", "--list", three.branch).isEmpty)
        #expect(try repo.git("tag", "--list", "session-\(three.id)-*").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: three.worktree.path))
        let record = try PatinaRunner.record(try patina.run(["show", "--json", three.id]))
        #expect(record["discarded"] != nil)
        #expect(FileManager.default.fileExists(atPath: three.runDir.appendingPathComponent("session.md").path))
        #expect(try patina.run(["merge", three.id]).status == 2)

        // prune: unmerged work is kept unless --force; --dry-run changes nothing.
        #expect(try patina.run(["merge", one.id]).status == 0)
        let dry = try patina.run(["prune", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("would remove run \(one.id)"), "\(dry.stdout)")
        #expect(dry.stdout.contains("kept run \(two.id): unmerged"), "\(dry.stdout)")
        #expect(FileManager.default.fileExists(atPath: one.runDir.path))
        #expect(try !repo.git("branch", "--list", one.branch).isEmpty)
        let pruned = try patina.run(["prune"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: one.runDir.path))
        #expect(!FileManager.default.fileExists(atPath: three.runDir.path))
        #expect(try repo.git("branch", "--list", one.branch).isEmpty)
        #expect(try repo.git("tag", "--list", "session-\(one.id)-*").isEmpty)
        #expect(try !repo.git("branch", "--list", two.branch).isEmpty, "unmerged work was pruned")
        #expect(FileManager.default.fileExists(atPath: two.worktree.path))
        #expect(try patina.run(["prune", "--force"]).status == 0)
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty)
        #expect(try repo.git("worktree", "list").split(separator: "\n").count == 1)
        #expect(try repo.git("rev-parse", "main") == one.head)
    }

    @Test func resumeContinuesTheConversationOnTheSameBranch() throws {
        let repo = try TemporaryRepository()
        // Turns are picked by how many assistant messages the request holds: the resumed
        // conversation starts where the first one ended.
        let model = try FakeModel(script: [
            .bash("echo first > first.txt && git add first.txt && git commit -qm first && echo FIRST-RESULT-MARKER"),
            .text("First part done."),
            .bash("echo second > second.txt && git add second.txt && git commit -qm second"),
            .text("Second part done."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let first = try FinishedRun(patina.yolo("do the first part"))
        #expect(first.status == "succeeded", "\(first.output.stderr)")
        let requestsBefore = model.requests().count

        let resumed = try FinishedRun(patina.run(["resume", "--json", first.id, "now the second part"]))
        #expect(resumed.output.status == 0, "\(resumed.output.stderr)")
        #expect(resumed.status == "succeeded")
        #expect(resumed.record["resumed_from"] as? String == first.id)
        #expect(resumed.branch == first.branch)
        #expect(resumed.base == first.head)
        #expect(resumed.id != first.id)

        // The model saw the earlier conversation in the resumed run's first request.
        let main = model.requests().dropFirst(requestsBefore).filter { $0["kind"] as? String == "main" }
        let opening = try #require(main.first)
        let earlier = (opening["tool_results"] as? [[String: Any]] ?? []).map { "\($0["content"] ?? "")" }.joined()
        #expect(earlier.contains("FIRST-RESULT-MARKER"), "first request: \(opening)")
        #expect((opening["last_user_text"] as? String ?? "").contains("now the second part"))
        // Its session log opens with what came before.
        let session = resumed.file("session.md") ?? ""
        #expect(session.contains("## Previous Session Context\n\n- continues run `\(first.id)`"), "\(session)")
        #expect(session.contains("- it ended succeeded at \(first.head.prefix(12)), 1 commit"), "\(session)")

        // The follow-up's commit is on the same branch, on top of the first run's head.
        #expect(try repo.git("log", "-1", "--format=%s", first.branch) == "second")
        #expect(try repo.git("rev-parse", "\(first.branch)^") == first.head)
        #expect(try repo.git("rev-parse", first.branch) == resumed.head)
        #expect(try repo.git("rev-parse", "session-\(resumed.id)-start^{commit}") == first.head)
        // The first run's views show its branch as it is now, and say who moved it.
        let diff = try patina.run(["diff", "--stat", first.id])
        #expect(diff.stdout.contains("moved after the run ended: 1 more commit (resumed by run \(resumed.id))"), "\(diff.stdout)")
        #expect(diff.stdout.contains("2 files changed"), "\(diff.stdout)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func shellRunsACommandInTheSandbox() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.text("nothing yet")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let made = try run(patina, model, task: "add shell file", file: "seen.txt", content: "from the agent")

        let cat = try patina.run(["shell", made.id, "--", "cat", "seen.txt"])
        #expect(cat.status == 0, "\(cat.stderr)")
        #expect(cat.stdout.contains("from the agent"))
        // A command that cannot run: a shell's words, no internal script path.
        let missing = try patina.run(["shell", made.id, "--", "nosuchcommand", "x"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("nosuchcommand: command not found") && !missing.stderr.contains("/patina/"), "\(missing.stderr)")
        let code = try patina.run(["shell", made.id, "--", "sh", "-c", "id -u; exit 7"])
        #expect(code.status == 7, "\(code.stderr)")
        #expect(code.stdout.trimmingCharacters(in: .whitespacesAndNewlines) != "0", "the shell runs as the agent's user, not root")

        // A server of our own on the bridge gateway: blocked for the shell like for the agent.
        let gateway = FakeModel.bridgeGateway()
        let canary = try Canary(address: gateway)
        defer { canary.stop() }
        let blocked = try patina.run(["shell", made.id, "--", "bash", "-c", "exec 3<>/dev/tcp/\(gateway)/\(canary.tcpPort) && echo CONNECTED"])
        #expect(blocked.status != 0)
        #expect(!blocked.stdout.contains("CONNECTED"))
        #expect(canary.received.isEmpty, "the shell reached a blocked address: \(canary.received)")
        let env = try patina.run(["shell", made.id, "--", "env"])
        #expect(!env.stdout.contains("sk-ant-test-not-a-real-key"), "a credential entered the shell")

        // Commits made in the shell land on the branch; no run record is left.
        let commit = try patina.run(["shell", made.id, "--", "sh", "-c", "echo x > shell.txt && git add shell.txt && git commit -qm 'from the shell'"])
        #expect(commit.status == 0, "\(commit.stderr)")
        #expect(try repo.git("log", "-1", "--format=%s", made.branch) == "from the shell")
        // diff shows the branch as merge would take it, the shell's commit included, and says so.
        let diff = try patina.run(["diff", "--stat", made.id])
        #expect(diff.stdout.contains("moved after the run ended: 1 more commit (by `patina shell` or by hand)"), "\(diff.stdout)")
        #expect(diff.stdout.contains("shell.txt"), "\(diff.stdout)")
        // The worktree's index moved with the branch: what the shell committed is not a change.
        #expect(try repo.git("-C", made.worktree.path, "status", "--porcelain").isEmpty)
        let listed = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]] ?? []
        #expect(listed.count == 1)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    /// A `patina shell` whose patina is SIGKILLed keeps no record: the next command still
    /// removes its containers, detaches its view of the worktree, brings the commits made
    /// in it onto the run's branch and removes its scratch directory; with or without a
    /// firewall (without one, no network holder marks it pending).
    @Test(arguments: [false, true]) func aShellWhosePatinaWasKilledIsCleanedUpAndItsCommitsKept(noFirewall: Bool) throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.text("nothing yet")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let made = try run(patina, model, task: "add shell file", file: "seen.txt", content: "from the agent",
                           flags: noFirewall ? ["--no-firewall"] : [])
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        let shells = store.root.appendingPathComponent("shells")
        let process = try patina.start(["shell", made.id, "--", "sh", "-c",
                                        "echo y > killed.txt && git add killed.txt && git commit -qm 'before the kill' && touch /tmp/committed && tail -f /dev/null"])
        // The commit is made once the shell's command runs: wait for the mark it leaves in the
        // container's /tmp (read through docker, from outside the sandbox).
        let committed = awaitContainer(of: repo, endingIn: "-shell", whereSucceeds: ["test", "-e", "/tmp/committed"]) != nil
        #expect(committed, "the shell's command did not commit")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(try !PatinaRunner.leftoverContainers(repository: repo).isEmpty, "the killed patina left its containers")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: shells.path))?.count == 1)

        let listed = try patina.run(["runs"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stderr.contains("note: a patina shell in run \(made.id) was left by a patina that is gone; cleaned up; its commits moved \(made.branch) to "),
                "\(listed.stderr)")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty, "the shell's containers are still there")
        #expect(try repo.git("log", "-1", "--format=%s", made.branch) == "before the kill")
        #expect(try repo.git("show", "\(made.branch):killed.txt") == "y")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: shells.path)) ?? [] == [], "the shell's scratch directory is left")
        #expect(store.pending().isEmpty)
        let views = MountTable.points(under: store.root.appendingPathComponent("views"))
        #expect(views.isEmpty, "a view of the worktree is still mounted: \(views)")
        #expect(try repo.git("-C", made.worktree.path, "status", "--porcelain").isEmpty)
    }

    /// The run's branch moves while a shell runs (here: a person points it elsewhere): the
    /// shell's commits cannot move it on, and are kept at a tag that the warning names.
    @Test func aShellsCommitsAreKeptWhenTheBranchMovedMeanwhile() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [.text("nothing yet")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let made = try run(patina, model, task: "add shell file", file: "seen.txt", content: "from the agent")
        let runID = made.id
        let finished = BackgroundRun {
            try patina.run(["shell", runID, "--", "sh", "-c",
                "echo z > moved.txt && git add moved.txt && git commit -qm 'in the shell' && touch /tmp/committed && "
                + "while [ ! -e /tmp/go-on ]; do sleep 0.1; done"])
        }
        let shell = awaitContainer(of: repo, endingIn: "-shell", whereSucceeds: ["test", "-e", "/tmp/committed"])
        let name = try #require(shell, "the shell's command did not commit")
        // Meanwhile the branch is pointed at the run's base.
        try repo.git("update-ref", "refs/heads/\(made.branch)", made.base)
        _ = try ProcessRunner.check(["docker", "exec", name, "touch", "/tmp/go-on"])
        let output = try #require(finished.wait())
        #expect(output.stderr.contains("the shell's commits are kept at tag shell-"), "\(output.stderr)")
        let tag = try #require(try repo.git("tag", "--list", "shell-*").split(separator: "\n").first.map(String.init))
        #expect(try repo.git("log", "-1", "--format=%s", tag) == "in the shell")
        #expect(try repo.git("rev-parse", made.branch) == made.base, "the branch was moved over the person's change")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func verbsRefuseARunInFlight() throws {
        let repo = try TemporaryRepository()
        // The model answers late, as on a loaded machine: the Bash call comes well after the run is recorded.
        let model = try FakeModel(script: [.delayed(.bash("tail -f /dev/null"), seconds: 6)])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = try StartedPatina(patina, ["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                                                 "--base-image", TestEnvironment.baseImage, "hang for a while"])
        let process = started.process
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var id = ""
        for _ in 0..<600 where id.isEmpty {
            let listed = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]] ?? []
            if let running = listed.first(where: { $0["status"] as? String == "running" }) { id = running["id"] as? String ?? "" }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(!id.isEmpty)
        let branchBefore = try repo.git("rev-parse", "patina/\(id)")
        for arguments in [["merge", id], ["discard", id], ["resume", id, "more"], ["apply", id], ["shell", id, "--", "true"]] {
            let output = try patina.run(arguments)
            #expect(output.status == 2, "\(arguments): \(output.stderr)")
            #expect(output.stderr.contains("still running"), "\(arguments): \(output.stderr)")
        }
        #expect(try repo.git("rev-parse", "patina/\(id)") == branchBefore)
        let dry = try patina.run(["prune", "--dry-run"])
        #expect(dry.stdout.contains("kept run \(id): still running"), "\(dry.stdout)")

        // log --follow prints the activity as it happens and ends with the run.
        let follow = Process()
        follow.executableURL = TestEnvironment.patinaBinary
        follow.arguments = ["log", "--follow", id]
        follow.currentDirectoryURL = repo.path
        follow.environment = patina.environment
        let pipe = Pipe()
        follow.standardOutput = pipe
        try follow.run()
        defer { if follow.isRunning { follow.terminate() } }
        Thread.sleep(forTimeInterval: 1)
        #expect(follow.isRunning, "log --follow ended while the run was in flight")
        // Stopped once the agent's Bash call is under way (its stream shows the call), not before.
        started.wait(until: {
            let stream = (try? patina.run(["log", "--raw", id]))?.stdout ?? ""
            return stream.contains("\"tool_use\"") && stream.contains("tail -f /dev/null")
        }, seconds: 120, settle: 0.5)
        started.interrupt()
        for _ in 0..<100 where follow.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        #expect(!follow.isRunning, "log --follow did not end with the run")
        let followed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(followed.contains("agent started"), "\(followed)")
        #expect(followed.contains("Bash: tail -f /dev/null"), "\(followed)")
        #expect(followed.contains("run \(id) ended: interrupted"), "\(followed)")

        // After the run: runs filters.
        func ids(_ arguments: [String]) throws -> [String] {
            let out = try patina.run(["runs", "--json"] + arguments)
            return (try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        }
        #expect(try ids(["--status", "interrupted"]) == [id])
        #expect(try ids(["--status", "succeeded"]).isEmpty)
        #expect(try ids(["--since", "1h", "--limit", "1"]) == [id])
        #expect(try ids(["--since", "2999-01-01"]).isEmpty)
    }

    @Test func escapeSequencesFromTheAgentArePrintedInert() throws {
        let repo = try TemporaryRepository()
        let nasty = "\u{1B}]0;pwned\u{07}\u{1B}[2J\u{1B}]52;c;cGF3bmVk\u{07}\u{9B}31m"
        let model = try FakeModel(script: [
            .bash(#"f=$(printf 'evil\033]0;title\007\033[31m.txt'); echo x > "$f" && git add -A && git commit -qm "$(printf 'subject \033[2J')" && printf 'done \033]8;;http://x\033\\link\n'"#),
            .text("Finished \(nasty) here."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("write an odd file"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        #expect(run.files.count == 1)
        func expectInert(_ output: ProcessRunner.Output, _ what: String) {
            for (name, text) in [("stdout", output.stdout), ("stderr", output.stderr)] {
                let bad = text.unicodeScalars.filter { [0x1B, 0x07, 0x9B, 0x9D].contains($0.value) }
                #expect(bad.isEmpty, "\(what) \(name) holds raw control characters: \(text.debugDescription)")
            }
        }
        expectInert(run.output, "yolo --json")
        let plain = try patina.run(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                                    "--base-image", TestEnvironment.baseImage, "write an odd file again"])
        expectInert(plain, "yolo")
        #expect(plain.stderr.contains("\\x1b"), "\(plain.stderr)")
        for arguments in [["show", run.id], ["runs"], ["diff", run.id], ["diff", "--stat", run.id], ["log", run.id],
                          ["log", "--raw", run.id], ["compare", run.id, "latest"]] {
            let output = try patina.run(arguments)
            #expect(output.status == 0, "\(arguments): \(output.stderr)")
            expectInert(output, arguments.joined(separator: " "))
        }
    }

    @Test func aRunWhosePatinaWasKilledIsCollectedByTheNextCommand() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [
            .bash("echo saved > saved.txt && git add saved.txt && git commit -qm 'saved before the kill' && echo left > left.txt"),
            .bash("tail -f /dev/null"),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let process = try patina.start(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                                        "--base-image", TestEnvironment.baseImage, "work then hang"])
        // Wait for the second tool call (the hang): the first one's commit exists by then.
        for _ in 0..<600 where model.requests().filter({ $0["kind"] as? String == "main" }).count < 2 {
            Thread.sleep(forTimeInterval: 0.1)
        }
        Thread.sleep(forTimeInterval: 0.5)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        #expect(store.list().first?.status == .running, "the killed patina left its run as running")
        #expect(try !PatinaRunner.leftoverContainers(repository: repo).isEmpty, "the killed patina left its containers")

        // The next command, whatever it is, collects the run first.
        let listed = try patina.run(["runs", "--json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stderr.contains("was left running by a patina that is gone; collected it"), "\(listed.stderr)")
        let runs = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        let run = try #require(runs.first)
        #expect(run["status"] as? String == "interrupted")
        #expect((run["reason"] as? String ?? "").contains("stopped before it collected the run"))
        let branch = run["branch"] as? String ?? ""
        #expect(try repo.git("show", "\(branch):saved.txt") == "saved")
        #expect(try repo.git("show", "\(branch):left.txt") == "left", "the leftovers were committed too")
        #expect(try repo.git("rev-parse", "session-\(run["id"] as? String ?? "")-end^{commit}") == run["head_commit"] as? String)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        let runDir = URL(fileURLWithPath: run["run_dir"] as? String ?? "/nonexistent")
        #expect(FileManager.default.fileExists(atPath: runDir.appendingPathComponent("session.md").path))
        // A second command finds nothing more to do.
        #expect(try !patina.run(["runs"]).stderr.contains("left running"))
    }
}

