import Foundation
import PatinaTestSupport
import Testing

/// `patina yolo` end to end: real Docker engine, real Claude Code CLI, real
/// libgit2 collection. Only the model is a scripted fake.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct YoloEndToEndTests {
    @Test func agentCommitLandsOnTheBranchAndNothingElseChanges() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("echo hello > hello.txt && git status --short && git add hello.txt && git commit -q -m 'add hello' && git log --oneline | head -3"),
            .text("Added hello.txt and committed it."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("add a hello file"))
        #expect(run.output.status == 0, "stderr: \(run.output.stderr)")
        #expect(run.status == "succeeded")
        #expect(run.branch == "patina/\(run.id)")
        #expect(run.base == main)

        // The branch holds the agent's own commit, on top of main.
        #expect(try repo.git("log", "-1", "--format=%s", run.branch) == "add hello")
        #expect(try repo.git("rev-parse", "\(run.branch)^") == main)
        #expect(try repo.git("rev-parse", run.branch) == run.head)
        #expect(try repo.git("show", "\(run.branch):hello.txt") == "hello")
        #expect(try repo.git("fsck", "--no-progress").isEmpty)
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
        #expect(!FileManager.default.fileExists(atPath: repo.path.appendingPathComponent("hello.txt").path))

        // The agent really ran git: its tool results came back to the model.
        let results = model.toolResults().joined(separator: "\n")
        #expect(results.contains("add hello"), "tool results: \(results)")

        // The record and the logs.
        #expect(run.hasInitAndResult)
        #expect(run.record["num_turns"] as? Int ?? 0 >= 1)
        #expect((run.record["cost_usd"] as? Double ?? 0) > 0)
        #expect(((run.record["tokens"] as? [String: Any])?["input"] as? Int ?? 0) > 0)
        #expect(run.files.count == 1)
        #expect(run.files.first?["path"] as? String == "hello.txt")
        #expect(run.files.first?["additions"] as? Int == 1)
        #expect(run.record["duration_s"] as? Double ?? 0 > 0)
        #expect(run.file("transcript.jsonl")?.contains("add hello") == true, "Claude Code's own transcript was not collected")
        #expect(run.file("steps.log")?.contains("agent") == true)
        for rendered in ["config/Dockerfile", "config/.devcontainer/devcontainer.json", "config/claude-settings.json", "config/seccomp.json"] {
            #expect(run.file(rendered) != nil, "missing \(rendered)")
        }
        // The fake key is a secret: it is in no rendered file and no log.
        let everything = try allText(under: run.runDir)
        #expect(!everything.contains("sk-ant-test-not-a-real-key"))

        // Review basics.
        let runs = try patina.run(["runs", "--json"])
        let listed = try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]]
        #expect(listed?.first?["id"] as? String == run.id)
        let shown = try PatinaRunner.record(try patina.run(["show", run.id, "--json"]))
        #expect(shown["head_commit"] as? String == run.head)
        let text = try patina.run(["show", String(run.id.suffix(4))])
        #expect(text.stdout.contains("hello.txt"))

        // A second run reuses the image: nothing is built.
        let again = try FinishedRun(patina.yolo("add a hello file again"))
        #expect(again.record["image"] as? String == run.record["image"] as? String)
        #expect(!again.output.stderr.contains("building"), "\(again.output.stderr)")
    }

    @Test func changesLeftUncommittedAreCommittedByPatina() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "old.txt": "remove me\n"])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("echo new > left.txt && echo more >> README.md && rm old.txt && mkdir -p deep/er && echo x > deep/er/f.txt"),
            .text("I changed some files but did not commit."),
        ])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("change files"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        #expect(run.record["leftovers_committed"] as? Bool == true)
        #expect(try repo.git("log", "-1", "--format=%s", run.branch).contains("uncommitted"))
        let changed = Set(try repo.git("diff", "--name-status", main, run.branch).split(separator: "\n").map(String.init))
        #expect(changed == ["M\tREADME.md", "A\tdeep/er/f.txt", "A\tleft.txt", "D\told.txt"])
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    /// A repository of a few thousand files (executables, links, eol and ident filters):
    /// patina's own checkout and its stat-based collection give the branch git gives for the
    /// same work, and leave the worktree clean and root's.
    @Test func fewThousandFilesGiveTheBranchGitGives() throws {
        var files = [".gitattributes": "*.crlf text eol=crlf\n*.id ident\n", "kept.id": "$Id$\n", "note.crlf": "a\nb\n"]
        for i in 0..<3_000 { files["src/d\(i % 13)/f\(i).txt"] = "file \(i)\n" }
        let repo = try TemporaryRepository(files: files)
        _ = try ProcessRunner.check(["sh", "-c", "cd \(repo.path.path) && printf '#!/bin/sh\\n' > tool.sh && chmod +x tool.sh && ln -s src/d1/f1.txt link && git add -A && git -c user.name=t -c user.email=t@x.invalid commit -qm tools"])
        let main = try repo.git("rev-parse", "main")
        let work = "echo changed >> src/d2/f2.txt && git commit -qam one && rm src/d3/f3.txt && echo new > src/d4/new.txt && chmod +x src/d5/f5.txt && chmod -x tool.sh && ln -sf src/d6/f6.txt link && printf 'c\\n' >> note.crlf"
        let model = try FakeModel(script: [.bash(work), .text("Done.")])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("change a few files"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")

        // git's answer: the same work in a worktree git checked out, then `git add -A`.
        let reference = repo.path.deletingLastPathComponent().appendingPathComponent("reference-\(UUID().uuidString)")
        defer { _ = try? ProcessRunner.check(["git", "-C", repo.path.path, "worktree", "remove", "--force", reference.path]) }
        _ = try repo.git("worktree", "add", "-q", "--detach", reference.path, main)
        _ = try ProcessRunner.check(["sh", "-c", "cd \(reference.path) && git config user.name t && git config user.email t@x.invalid && \(work) && git add -A"])
        let expected = try ProcessRunner.check(["git", "-C", reference.path, "write-tree"]).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try repo.git("rev-parse", "\(run.branch)^{tree}") == expected)
        #expect(try repo.git("show", "\(run.branch):kept.id") == "$Id$")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
        if getuid() == 0 {
            let notRoot = try ProcessRunner.check(["find", run.worktree.path, "!", "-user", "0"])
            #expect(notRoot.isEmpty, "left to the agent's uid: \(notRoot)")
        }
    }

    /// Where the worktree's filesystem has no idmapped mounts (ramfs here), patina running as
    /// root lends the worktree the old way: every file handed to the agent's uid, then back.
    @Test(.enabled(if: getuid() == 0, "only root lends the worktree to another uid"))
    func withoutIdmappedMountsTheWorktreeIsHandedOverAndBack() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# demo\n", "src/a.txt": "a\n"])
        _ = try ProcessRunner.check(["mount", "-t", "ramfs", "patina-test", repo.home.path])
        defer { _ = try? ProcessRunner.check(["umount", "-l", repo.home.path]) }
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("echo \"OWNER-SEEN:$(stat -c %u README.md)\"; echo more >> src/a.txt && mkdir -p new/dir && echo n > new/dir/f && git add -A && git commit -qm work && echo x > left.txt"),
            .text("Done."),
        ])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("change files"))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        #expect(run.file("steps.log")?.contains("no idmapped view of the worktree") == true, "\(run.file("steps.log") ?? "")")
        #expect(model.requests().contains { ($0["tool_results"] as? [Any] ?? []).description.contains("OWNER-SEEN:1000") })
        let changed = Set(try repo.git("diff", "--name-status", main, run.branch).split(separator: "\n").map(String.init))
        #expect(changed == ["M\tsrc/a.txt", "A\tnew/dir/f", "A\tleft.txt"])
        let notRoot = try ProcessRunner.check(["find", run.worktree.path, "(", "!", "-user", "0", "-o", "!", "-group", "0", ")", "-print"])
        #expect(notRoot.isEmpty, "left to the agent's uid: \(notRoot)")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    /// `--sparse src`: the agent's worktree holds src/ and the top level's files only; its
    /// work lands on the branch, and everything left out stays there as it was.
    @Test func aSparseRunChecksOutOnlyItsDirectories() throws {
        var files = ["README.md": "# demo\n", "src/app.txt": "app\n"]
        for i in 0..<300 { files["vendor/lib\(i % 5)/f\(i).txt"] = "vendored \(i)\n" }
        let repo = try TemporaryRepository(files: files)
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("echo \"SEEN:$(ls | tr '\\n' ' ')\"; echo more >> src/app.txt && echo new > src/new.txt && git add -A && git commit -qm work && echo \"STATUS:$(git status --porcelain | wc -l)\""),
            .text("Done."),
        ])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("work in src", ["--sparse", "src"]))
        #expect(run.status == "succeeded", "\(run.output.stderr)")
        let results = model.requests().flatMap { ($0["tool_results"] as? [[String: Any]]) ?? [] }.compactMap { $0["content"] as? String }.joined()
        #expect(results.contains("SEEN:README.md src "), "\(results)")
        #expect(results.contains("STATUS:0"), "\(results)")
        #expect(!FileManager.default.fileExists(atPath: run.worktree.appendingPathComponent("vendor").path))
        let changed = Set(try repo.git("diff", "--name-status", main, run.branch).split(separator: "\n").map(String.init))
        #expect(changed == ["M\tsrc/app.txt", "A\tsrc/new.txt"])
        #expect((run.record["options"] as? [String: Any])?["sparse"] as? [String] == ["src"])
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    @Test func failingAgentIsCollected() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        // One turn allowed, but the script keeps calling tools: Claude Code ends with error_max_turns.
        let model = try FakeModel(script: [
            .bash("echo partial > partial.txt && exit 3"),
            .bash("echo never"),
            .text("unreachable"),
        ])
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("fail please", ["--max-turns", "1"]))
        #expect(run.output.status != 0)
        #expect(run.status == "failed")
        #expect((run.record["reason"] as? String ?? "").contains("max_turns"), "\(run.record)")
        #expect(try repo.git("show", "\(run.branch):partial.txt") == "partial")
        #expect(run.hasInitAndResult)
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    @Test func hangingAgentTimesOutAndIsCollected() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("echo before > before.txt && git add before.txt && git commit -q -m before && sleep 600"),
            .text("unreachable"),
        ])
        let started = Date()
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("hang", ["--timeout", "12s"]))
        #expect(Date().timeIntervalSince(started) < 90)
        #expect(run.output.status != 0)
        #expect(run.status == "timed_out")
        #expect(try repo.git("log", "-1", "--format=%s", run.branch) == "before")
        #expect(run.sessionLines.contains { $0["subtype"] as? String == "init" })
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }

    @Test func ctrlCStopsTheAgentCollectsAndLeavesNothingRunning() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash("echo work > work.txt && sleep 600"),
            .text("unreachable"),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = try StartedPatina(patina, ["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                                                  "--base-image", TestEnvironment.baseImage, "--quiet", "interrupt me"])
        // Wait until the agent's command is running (the model saw the request), then Ctrl-C.
        started.wait(until: { !model.requests().isEmpty }, seconds: 120)
        started.interrupt()
        let runs = try JSONSerialization.jsonObject(with: Data(try patina.run(["runs", "--json"]).stdout.utf8)) as? [[String: Any]]
        let record = try #require(runs?.first)
        #expect(record["status"] as? String == "interrupted")
        #expect((record["reason"] as? String ?? "").contains("interrupted"))
        let branch = record["branch"] as? String ?? ""
        #expect(try repo.git("show", "\(branch):work.txt") == "work")
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
    }
}

func allText(under directory: URL) throws -> String {
    var text = ""
    let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
    while let url = walker?.nextObject() as? URL {
        if (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
           let data = try? Data(contentsOf: url) {
            text += String(decoding: data, as: UTF8.self)
        }
    }
    return text
}
