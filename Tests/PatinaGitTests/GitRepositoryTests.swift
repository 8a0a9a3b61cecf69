import Foundation
import PatinaGit
import Testing
import PatinaTestSupport

private func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

private func canonical(_ url: URL?) -> String? {
    url.map { $0.resolvingSymlinksInPath().standardizedFileURL.path }
}

@Suite("PatinaGit: repository, revisions, branches, tags, history")
struct GitRepositoryTests {
    @Test("discover finds the repository from a subdirectory")
    func discoverFromSubdirectory() throws {
        let fixture = try GitFixture()
        let nested = fixture.repo.appendingPathComponent("src/deeper", isDirectory: true)
        try FileManager.default.createDirectory(at: nested, withIntermediateDirectories: true)
        let repository = try Repository.discover(from: nested)
        #expect(canonical(repository.workingDirectory) == canonical(fixture.repo))
        #expect(canonical(repository.commonDirectory) == canonical(fixture.repo.appendingPathComponent(".git")))
        #expect(canonical(repository.objectsDirectory) == canonical(fixture.repo.appendingPathComponent(".git/objects")))
        #expect(canonical(try Repository.open(at: fixture.repo).workingDirectory) == canonical(fixture.repo))
    }

    @Test("outside any repository: one clear line naming the directory")
    func notARepository() throws {
        let fixture = try GitFixture()
        let outside = fixture.url("elsewhere")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        #expect(throws: GitError.notARepository(outside.path)) { try Repository.discover(from: outside) }
        #expect(GitError.notARepository("/x").description == "not a git repository (or any parent): /x")
        #expect(throws: GitError.notARepository(fixture.repo.appendingPathComponent("src").path)) {
            try Repository.open(at: fixture.repo.appendingPathComponent("src"))
        }
    }

    @Test("a repository owned by another user is refused, as git refuses it",
          .enabled(if: getuid() == 0, "needs root to give the repository away"))
    func ownedByAnotherUser() throws {
        let fixture = try GitFixture()
        _ = try fixture.run(["chown", "-R", "1000:1000", fixture.repo.path])
        #expect(throws: GitError.notOwnedByCurrentUser(fixture.repo.path)) {
            try Repository.discover(from: fixture.repo)
        }
        _ = try fixture.run(["chown", "-R", "0:0", fixture.repo.path])
    }

    @Test("a repository without commits reports noCommits")
    func noCommits() throws {
        let fixture = try GitFixture(commit: false)
        let repository = try Repository.discover(from: fixture.repo)
        #expect(throws: GitError.noCommits) { try repository.resolveCommit("HEAD") }
        #expect(throws: GitError.noCommits) { try repository.resolveCommit("main") }
        #expect(repository.headDescription() == "main")
        #expect(GitError.noCommits.description == "the repository has no commits yet; commit something first")
    }

    @Test("revisions resolve to commits; unknown ones are named in the error")
    func revisions() throws {
        let fixture = try GitFixture()
        try fixture.git("tag", "-a", "v1", "-m", "version one")
        let repository = try Repository.discover(from: fixture.repo)
        let head = try repository.resolveCommit("HEAD")
        #expect(head.hex == trimmed(try fixture.git("rev-parse", "HEAD")))
        #expect(try repository.resolveCommit("main") == head)
        #expect(try repository.resolveCommit("v1") == head)
        #expect(try repository.resolveCommit(head.hex) == head)
        #expect(try repository.resolveCommit(head.short) == head)
        #expect(repository.headDescription() == "main")
        #expect(throws: GitError.unknownRevision("no-such-branch")) { try repository.resolveCommit("no-such-branch") }
        #expect(throws: GitError.unknownRevision("a..b")) { try repository.resolveCommit("a..b") }
        #expect(throws: GitError.notACommit("HEAD:README.md")) { try repository.resolveCommit("HEAD:README.md") }

        try fixture.git("checkout", "-q", "--detach")
        #expect(try Repository.discover(from: fixture.repo).headDescription() == head.short)
    }

    @Test("branches: create, exists, move, tip, delete")
    func branches() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        let first = try repository.resolveCommit("HEAD")
        try fixture.write("more\n", to: "more.txt")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "second")
        let second = try repository.resolveCommit("HEAD")

        #expect(!repository.branchExists("patina/run"))
        #expect(try repository.branchTip("patina/run") == nil)
        try repository.createBranch("patina/run", at: first)
        #expect(repository.branchExists("patina/run"))
        #expect(try repository.branchTip("patina/run") == first)
        #expect(trimmed(try fixture.git("rev-parse", "patina/run")) == first.hex)
        #expect(throws: GitError.branchExists("patina/run")) { try repository.createBranch("patina/run", at: second) }
        #expect(throws: GitError.invalidName("bad..name")) { try repository.createBranch("bad..name", at: first) }

        try repository.setBranch("patina/run", to: second, message: "test: move")
        #expect(try repository.branchTip("patina/run") == second)
        try repository.setBranch("fresh", to: first, message: "test: create")
        #expect(try repository.branchTip("fresh") == first)

        try repository.deleteBranch("patina/run")
        #expect(!repository.branchExists("patina/run"))
        #expect(throws: GitError.branchNotFound("patina/run")) { try repository.deleteBranch("patina/run") }
        #expect(trimmed(try fixture.git("rev-parse", "--abbrev-ref", "HEAD")) == "main")
    }

    @Test("a worktree outside the repository checks out the branch and goes away cleanly")
    func worktrees() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        let base = try repository.resolveCommit("HEAD")
        try repository.createBranch("patina/wt", at: base)
        let worktree = fixture.url("outside/runs/wt")
        try repository.addWorktree(name: "patina-wt", path: worktree, branch: "patina/wt")

        #expect(try fixture.read("README.md", in: worktree) == "hello\n")
        #expect(trimmed(try fixture.git("rev-parse", "--abbrev-ref", "HEAD", in: worktree)) == "patina/wt")
        #expect(try fixture.git("status", "--porcelain", in: worktree).isEmpty)
        #expect(try fixture.git("status", "--porcelain").isEmpty)
        #expect(trimmed(try fixture.git("rev-parse", "--abbrev-ref", "HEAD")) == "main")
        #expect(try repository.worktreeNames() == ["patina-wt"])
        let fromWorktree = try Repository.discover(from: worktree)
        #expect(canonical(fromWorktree.commonDirectory) == canonical(repository.commonDirectory))
        #expect(canonical(fromWorktree.workingDirectory) == canonical(worktree))

        #expect(throws: GitError.worktreePathExists(worktree.path)) {
            try repository.addWorktree(name: "other", path: worktree, branch: "main")
        }

        // The agent leaves read-only directories behind.
        try fixture.write("x\n", to: "locked/inside.txt", in: worktree)
        _ = try fixture.run(["chmod", "0555", worktree.appendingPathComponent("locked").path])

        try repository.removeWorktree(name: "patina-wt", path: worktree)
        #expect(!fixture.exists(worktree))
        #expect(try repository.worktreeNames().isEmpty)
        #expect(!fixture.exists(repository.worktreeGitDirectory(name: "patina-wt")))
        #expect(!(try fixture.git("worktree", "list", "--porcelain")).contains("patina/wt"))
        try repository.deleteBranch("patina/wt")
        #expect(!repository.branchExists("patina/wt"))
    }

    @Test("removeWorktree refuses a path the worktree is not at")
    func removeWorktreeWrongPath() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        try repository.createBranch("b", at: try repository.resolveCommit("HEAD"))
        let worktree = fixture.url("wt")
        try repository.addWorktree(name: "wt", path: worktree, branch: "b")
        let elsewhere = fixture.url("precious")
        try fixture.write("keep\n", to: "file", in: elsewhere)
        #expect(throws: GitError.self) { try repository.removeWorktree(name: "wt", path: elsewhere) }
        #expect(fixture.exists(elsewhere.appendingPathComponent("file")))
    }

    @Test("tags: lightweight and annotated")
    func tags() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        let head = try repository.resolveCommit("HEAD")
        try repository.createTag("session-1-start", at: head, message: nil)
        try repository.createTag("session-1-end", at: head, message: "patina session 1")
        #expect(trimmed(try fixture.git("cat-file", "-t", "session-1-start")) == "commit")
        #expect(trimmed(try fixture.git("cat-file", "-t", "session-1-end")) == "tag")
        #expect(trimmed(try fixture.git("rev-parse", "session-1-end^{commit}")) == head.hex)
        #expect(try repository.tagTarget("session-1-end") == head)
        #expect(try repository.tagTarget("nope") == nil)
        #expect(throws: GitError.tagExists("session-1-start")) {
            try repository.createTag("session-1-start", at: head, message: nil)
        }
        try repository.deleteTag("session-1-start")
        #expect(try repository.tagTarget("session-1-start") == nil)
    }

    @Test("diffStat counts added and deleted lines per file, like git diff --numstat")
    func diffStat() throws {
        let fixture = try GitFixture()
        try fixture.write("bye\n", to: "old.txt")
        try fixture.write(String(repeating: "same line\n", count: 20), to: "moved-from.txt")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "more files")
        let repository = try Repository.discover(from: fixture.repo)
        let base = try repository.resolveCommit("HEAD")

        try fixture.write("one\nTWO\nthree\nfour\n", to: "src/numbers.txt")      // -1 +2
        try fixture.write("a\nb\nc\n", to: "docs/new.md")                        // +3
        try FileManager.default.removeItem(at: fixture.repo.appendingPathComponent("old.txt"))  // -1
        try fixture.git("mv", "moved-from.txt", "moved-to.txt")
        try Data([0, 1, 2, 3, 255]).write(to: fixture.repo.appendingPathComponent("blob.bin"))
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "changes")
        let head = try repository.resolveCommit("HEAD")

        let changes = try repository.diffStat(from: base, to: head)
        let byPath = Dictionary(uniqueKeysWithValues: changes.map { ($0.path, $0) })
        #expect(byPath["src/numbers.txt"] == FileChange(path: "src/numbers.txt", status: .modified, additions: 2, deletions: 1))
        #expect(byPath["docs/new.md"] == FileChange(path: "docs/new.md", status: .added, additions: 3, deletions: 0))
        #expect(byPath["old.txt"] == FileChange(path: "old.txt", status: .deleted, additions: 0, deletions: 1))
        #expect(byPath["moved-to.txt"] == FileChange(
            path: "moved-to.txt", oldPath: "moved-from.txt", status: .renamed, additions: 0, deletions: 0))
        #expect(byPath["blob.bin"]?.isBinary == true)
        #expect(byPath["blob.bin"]?.status == .added)
        #expect(changes.count == 5)

        // The same numbers git prints.
        for line in try fixture.git("diff", "--numstat", "-M", base.hex, head.hex).split(separator: "\n") {
            let fields = line.split(separator: "\t")
            guard fields[0] != "-" else { continue }
            let path = String(fields[2])
            guard let change = byPath[path] else { continue }
            #expect(change.additions == Int(fields[0]))
            #expect(change.deletions == Int(fields[1]))
        }
    }

    @Test("commits lists the run's commits newest first; diffPatch is the unified diff")
    func historyAndPatch() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        let base = try repository.resolveCommit("HEAD")
        for number in 1...3 {
            try fixture.write("line \(number)\n", to: "file\(number).txt")
            try fixture.git("add", "-A")
            try fixture.git("commit", "-q", "-m", "commit \(number)\n\nbody text")
        }
        let head = try repository.resolveCommit("HEAD")
        let commits = try repository.commits(from: base, to: head)
        #expect(commits.map(\.summary) == ["commit 3", "commit 2", "commit 1"])
        #expect(commits.first?.id == head)
        #expect(commits.allSatisfy { $0.authorName == "Test User" && $0.authorEmail == "user@example.invalid" })
        #expect(commits.allSatisfy { abs($0.date.timeIntervalSinceNow) < 600 })
        #expect(try repository.commits(from: head, to: head).isEmpty)

        let patch = try repository.diffPatch(from: base, to: head)
        #expect(patch.contains("diff --git a/file2.txt b/file2.txt"))
        #expect(patch.contains("+++ b/file3.txt"))
        #expect(patch.contains("+line 1\n"))
        #expect(patch == (try fixture.git("diff", "--no-color", "--no-ext-diff", base.hex, head.hex)))
    }

    @Test("ObjectID validates hex and encodes as a string")
    func objectIDs() throws {
        #expect(ObjectID(hex: "abc") == nil)
        #expect(ObjectID(hex: String(repeating: "g", count: 40)) == nil)
        let id = try #require(ObjectID(hex: String(repeating: "AB", count: 20)))
        #expect(id.hex == String(repeating: "ab", count: 20))
        #expect(id.short == "abababa")
        let encoded = try JSONEncoder().encode([id])
        #expect(String(decoding: encoded, as: UTF8.self) == "[\"\(id.hex)\"]")
        #expect(try JSONDecoder().decode([ObjectID].self, from: encoded) == [id])
    }
}
