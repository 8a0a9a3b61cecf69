import Foundation
import PatinaGit
import Testing
import PatinaTestSupport

private func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

/// The run's git security: the agent's private git directory works for the agent, and
/// collection brings its work home without running anything it planted.
@Suite("PatinaGit: the sandbox's git directory and collection")
struct GitSandboxTests {
    @Test("the private git directory: clean at start, git works, nothing of the host's config or hooks")
    func privateGitDirectory() throws {
        let run = try GitRunFixture()
        try run.fixture.git("config", "patina.secret", "host-only")
        try run.fixture.write("#!/bin/sh\nexit 0\n", to: ".git/hooks/pre-commit")

        #expect(try run.agent("status", "--porcelain").isEmpty)
        #expect(trimmed(try run.agent("rev-parse", "--abbrev-ref", "HEAD")) == run.branch)
        #expect(trimmed(try run.agent("rev-parse", "HEAD")) == run.base.hex)
        #expect(try run.agent("config", "--list", "--local").contains("user.name=patina agent"))
        #expect(!(try run.agent("config", "--list")).contains("patina.secret"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: run.sandboxGit.appendingPathComponent("hooks").path).isEmpty)
        #expect(try run.fixture.read("objects/info/alternates", in: run.sandboxGit)
            == run.host.objectsDirectory.path + "\n")

        let commit = try run.agentCommits("feature.txt", "new feature\n", message: "agent: add feature")
        #expect(trimmed(try run.agent("log", "-1", "--format=%an <%ae>")) == "patina agent <agent@patina.invalid>")
        #expect(try run.agent("status", "--porcelain").isEmpty)
        // The agent's commit is in its own directory only: the host's branch did not move.
        #expect(try run.host.branchTip(run.branch) == run.base)
        #expect(run.fixture.exists(run.sandboxGit.appendingPathComponent("objects/\(commit.hex.prefix(2))")))
        #expect((try? run.fixture.git("cat-file", "-e", commit.hex)) == nil)
    }

    @Test("the index can also be built from the base tree")
    func indexFromTree() throws {
        let run = try GitRunFixture()
        let other = run.fixture.url("runs/other-git")
        try SandboxGitDirectory.create(
            at: other, host: run.host, branch: run.branch, base: run.base,
            hostObjectsPathInContainer: run.host.objectsDirectory.path)
        let status = try run.fixture.checked(
            ["git", "--git-dir", other.path, "--work-tree", run.worktree.path, "status", "--porcelain"],
            in: run.worktree, environment: run.fixture.environment)
        #expect(status.isEmpty)
        #expect(throws: GitError.self) {
            try SandboxGitDirectory.create(
                at: other, host: run.host, branch: run.branch, base: run.base,
                hostObjectsPathInContainer: "/patina/host-objects")
        }
    }

    @Test("the agent's commits land in the host repository and stand alone")
    func importCommits() throws {
        let run = try GitRunFixture()
        try run.agentCommits("feature.txt", "new feature\n", message: "agent: add feature")
        try run.fixture.write("one\n2\nthree\n", to: "src/numbers.txt", in: run.worktree)
        let head = try run.agentCommits("docs/notes.md", "notes\n", message: "agent: notes and a fix")

        let imported = try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        #expect(imported == head)
        try run.host.setBranch(run.branch, to: imported, message: "patina: collect")
        try FileManager.default.removeItem(at: run.sandboxGit)

        #expect(trimmed(try run.fixture.git("rev-parse", run.branch)) == head.hex)
        #expect(try run.fixture.git("log", "--format=%s", run.branch)
            == "agent: notes and a fix\nagent: add feature\nignore logs\ninitial commit\n")
        _ = try run.fixture.git("fsck", "--full", "--strict", "--no-dangling")
        #expect(try run.fixture.git("show", "\(run.branch):feature.txt") == "new feature\n")
        #expect(try run.host.commits(from: run.base, to: head).map(\.summary)
            == ["agent: notes and a fix", "agent: add feature"])
        #expect(Set(try run.host.diffStat(from: run.base, to: head).map(\.path))
            == ["feature.txt", "docs/notes.md", "src/numbers.txt"])
        #expect(trimmed(try run.fixture.git("rev-parse", "--abbrev-ref", "HEAD")) == "main")
    }

    @Test("no commits by the agent: the base comes back; a detached HEAD is followed")
    func noCommitsAndDetached() throws {
        let run = try GitRunFixture()
        #expect(try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base) == run.base)
        try run.agent("checkout", "-q", "--detach")
        let head = try run.agentCommits("detached.txt", "x\n", message: "agent: detached work")
        #expect(try run.fixture.read("HEAD", in: run.sandboxGit) == head.hex + "\n")
        #expect(try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base) == head)
        #expect(trimmed(try run.fixture.git("cat-file", "-t", head.hex)) == "commit")
    }

    @Test("packed refs are read")
    func packedRefs() throws {
        let run = try GitRunFixture()
        let head = try run.agentCommits("a.txt", "a\n", message: "agent: a")
        try run.agent("pack-refs", "--all")
        #expect(!run.fixture.exists(run.sandboxGit.appendingPathComponent("refs/heads/\(run.branch)")))
        try run.agent("gc", "-q")
        #expect(try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base) == head)
        _ = try run.fixture.git("cat-file", "-e", "\(head.hex):a.txt")
    }

    @Test("hooks, fsmonitor, hooksPath, filters and other commands planted by the agent never run")
    func plantedCommandsNeverRun() throws {
        let run = try GitRunFixture()
        let markers = run.fixture.url("markers")
        try FileManager.default.createDirectory(at: markers, withIntermediateDirectories: true)
        func command(_ name: String) -> String { "touch \(markers.path)/\(name)" }
        try run.agentCommits("feature.txt", "feature\n", message: "agent: feature")

        // Everything the agent could plant in its git directory...
        let hookNames = ["pre-commit", "post-commit", "post-checkout", "post-merge", "pre-push",
                         "reference-transaction", "post-index-change", "pre-auto-gc", "post-rewrite"]
        for directory in ["hooks", "evil-hooks"] {
            for hook in hookNames {
                let file = run.sandboxGit.appendingPathComponent("\(directory)/\(hook)")
                try run.fixture.write("#!/bin/sh\n\(command("\(directory)-\(hook)"))\n", to: file.path, in: URL(fileURLWithPath: "/"))
                _ = try run.fixture.run(["chmod", "+x", file.path])
            }
        }
        let config = """
            [core]
            \tfsmonitor = \(command("fsmonitor"))
            \thooksPath = \(run.sandboxGit.path)/evil-hooks
            \tsshCommand = \(command("ssh"))
            \tpager = \(command("pager"))
            \teditor = \(command("editor"))
            [filter "evil"]
            \tclean = \(command("filter-clean"))
            \tsmudge = \(command("filter-smudge"))
            \tprocess = \(command("filter-process"))
            \trequired = true
            [diff "evil"]
            \ttextconv = \(command("textconv"))
            [diff]
            \texternal = \(command("diff-external"))
            [include]
            \tpath = /dev/zero

            """
        let configFile = run.sandboxGit.appendingPathComponent("config")
        let original = try run.fixture.read("config", in: run.sandboxGit)
        try Data((original + config).utf8).write(to: configFile)
        // ...and in the worktree: attributes asking for the filter, left uncommitted.
        try run.fixture.write("* filter=evil diff=evil\n", to: ".gitattributes", in: run.worktree)
        try run.fixture.write("left behind\n", to: "leftover.txt", in: run.worktree)

        let collected = try Collector.collect(
            into: run.host, privateGitDirectory: run.sandboxGit, worktree: run.worktree,
            branch: run.branch, base: run.base, leftoversMessage: "patina: uncommitted changes")
        #expect(collected.importFailure == nil)
        #expect(collected.leftovers.commit != nil)
        #expect(try run.fixture.git("show", "\(run.branch):leftover.txt") == "left behind\n")

        // The host's own git, after collection, in the repository and the worktree.
        try run.fixture.git("log", "--oneline", run.branch)
        try run.fixture.git("diff", run.base.hex, run.branch)
        #expect(try run.hostGitInWorktree("status", "--porcelain").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: markers.path) == [])
    }

    @Test("a filter driver in the host's config does not run during collection either")
    func hostFilterDriverNeverRuns() throws {
        let run = try GitRunFixture()
        let marker = run.fixture.url("filter-ran")
        try run.fixture.git("config", "filter.lfs.clean", "touch \(marker.path); cat")
        try run.fixture.git("config", "filter.lfs.process", "touch \(marker.path)")
        try run.fixture.write("*.bin filter=lfs\n", to: ".gitattributes", in: run.worktree)
        try run.fixture.write("payload\n", to: "data.bin", in: run.worktree)
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        #expect(leftovers.commit != nil)
        #expect(!run.fixture.exists(marker))
        // libgit2 stores the file as it is (no clean filter ran).
        #expect(try run.fixture.git("show", "\(run.branch):data.bin") == "payload\n")
    }

    enum Tampering: String, CaseIterable, CustomTestStringConvertible {
        case headEscapesRefs, headOutsideBranches, symlinkedRef, symlinkedHead, symlinkedRefsDirectory
        case fifoHead, hugeHead, garbageHead, missingBranch, unknownCommit
        var testDescription: String { rawValue }
    }

    @Test("a HEAD or ref the agent tampered with is refused", arguments: Tampering.allCases)
    func tamperedHeadRefused(_ tampering: Tampering) throws {
        let run = try GitRunFixture()
        let head = try run.agentCommits("feature.txt", "feature\n", message: "agent: feature")
        let git = run.sandboxGit
        let refFile = git.appendingPathComponent("refs/heads/\(run.branch)")
        let outside = run.fixture.url("outside-ref")
        try Data("\(head.hex)\n".utf8).write(to: outside)
        func writeHead(_ text: String) throws { try Data(text.utf8).write(to: git.appendingPathComponent("HEAD")) }
        switch tampering {
        case .headEscapesRefs:
            try writeHead("ref: refs/heads/../../../outside-ref\n")
        case .headOutsideBranches:
            try writeHead("ref: refs/remotes/origin/main\n")
        case .symlinkedRef:
            try FileManager.default.removeItem(at: refFile)
            try FileManager.default.createSymbolicLink(at: refFile, withDestinationURL: outside)
        case .symlinkedHead:
            try FileManager.default.removeItem(at: git.appendingPathComponent("HEAD"))
            try FileManager.default.createSymbolicLink(at: git.appendingPathComponent("HEAD"), withDestinationURL: outside)
        case .symlinkedRefsDirectory:
            let copy = run.fixture.url("refs-copy")
            try FileManager.default.copyItem(at: git.appendingPathComponent("refs"), to: copy)
            try FileManager.default.removeItem(at: git.appendingPathComponent("refs"))
            try FileManager.default.createSymbolicLink(at: git.appendingPathComponent("refs"), withDestinationURL: copy)
        case .fifoHead:
            try FileManager.default.removeItem(at: git.appendingPathComponent("HEAD"))
            _ = try run.fixture.run(["mkfifo", git.appendingPathComponent("HEAD").path])
        case .hugeHead:
            try writeHead("ref: refs/heads/" + String(repeating: "a", count: 10_000) + "\n")
        case .garbageHead:
            try writeHead("\(head.hex)\nref: refs/heads/main\n")
        case .missingBranch:
            try writeHead("ref: refs/heads/does-not-exist\n")
        case .unknownCommit:
            try Data("\(String(repeating: "1", count: 40))\n".utf8).write(to: refFile)
        }
        #expect(throws: GitError.self) {
            try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        }
        do {
            _ = try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        } catch {
            switch error {
            case .unsafeSandboxGitDirectory, .agentHeadUnreadable: break
            default: Issue.record("unexpected error kind: \(error)")
            }
            #expect(!error.description.contains("\n"))
        }
        #expect(try run.host.branchTip(run.branch) == run.base)
    }

    @Test("an object whose content does not match its name is refused")
    func tamperedObjectRefused() throws {
        let run = try GitRunFixture()
        try run.agentCommits("feature.txt", "the real feature\n", message: "agent: feature")
        let blob = trimmed(try run.agent("rev-parse", "HEAD:feature.txt"))
        let impostor = trimmed(try run.agent("hash-object", "-w", "--stdin-paths"))  // no input: nothing
        #expect(impostor.isEmpty)
        try run.fixture.write("something else entirely\n", to: "impostor.txt", in: run.fixture.root)
        let other = trimmed(try run.agent("hash-object", "-w", run.fixture.url("impostor.txt").path))
        let objects = run.sandboxGit.appendingPathComponent("objects")
        let blobFile = objects.appendingPathComponent("\(blob.prefix(2))/\(blob.dropFirst(2))")
        try FileManager.default.removeItem(at: blobFile)
        try FileManager.default.copyItem(
            at: objects.appendingPathComponent("\(other.prefix(2))/\(other.dropFirst(2))"), to: blobFile)

        #expect(throws: GitError.self) {
            try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        }
        #expect((try? run.fixture.git("cat-file", "-e", blob)) == nil)
    }

    @Test("objects/info/alternates planted by the agent is never followed")
    func plantedAlternatesIgnored() throws {
        let run = try GitRunFixture()
        // A second repository holding an object the agent wants smuggled in.
        let elsewhere = try GitFixture()
        try elsewhere.write("secret of another repository\n", to: "secret.txt")
        try elsewhere.git("add", "-A")
        try elsewhere.git("commit", "-q", "-m", "secret")
        let secretCommit = trimmed(try elsewhere.git("rev-parse", "HEAD"))
        let alternates = run.sandboxGit.appendingPathComponent("objects/info/alternates")
        try Data("\(elsewhere.repo.path)/.git/objects\n".utf8).write(to: alternates)
        try Data("\(secretCommit)\n".utf8).write(to: run.sandboxGit.appendingPathComponent("refs/heads/\(run.branch)"))
        #expect(throws: GitError.self) {
            try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        }
        #expect((try? run.fixture.git("cat-file", "-e", secretCommit)) == nil)
    }

    @Test("a symlinked object directory is refused")
    func symlinkedObjectsRefused() throws {
        let run = try GitRunFixture()
        let head = try run.agentCommits("feature.txt", "feature\n", message: "agent: feature")
        let fanout = run.sandboxGit.appendingPathComponent("objects/\(head.hex.prefix(2))")
        let moved = run.fixture.url("moved-fanout")
        try FileManager.default.moveItem(at: fanout, to: moved)
        try FileManager.default.createSymbolicLink(at: fanout, withDestinationURL: moved)
        #expect(throws: GitError.unsafeSandboxGitDirectory("\(run.sandboxGit.path)/objects/\(head.hex.prefix(2)) is a symbolic link")) {
            try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        }
    }

    @Test("a commit with a .git path is refused", arguments: [".git", ".GIT", ".git.", "GIT~1"])
    func dotGitPathRefused(_ name: String) throws {
        let run = try GitRunFixture()
        let blob = trimmed(try run.agent("hash-object", "-w", run.worktree.appendingPathComponent("README.md").path))
        let inner = trimmed(try run.fixture.checked(
            ["sh", "-c", "printf '100644 blob \(blob)\\tconfig\\n' | git mktree"],
            in: run.worktree, environment: run.fixture.environment.merging(["GIT_DIR": run.sandboxGit.path]) { $1 }))
        let tree = trimmed(try run.fixture.checked(
            ["sh", "-c", "printf '040000 tree \(inner)\\t\(name)\\n100644 blob \(blob)\\tREADME.md\\n' | git mktree"],
            in: run.worktree, environment: run.fixture.environment.merging(["GIT_DIR": run.sandboxGit.path]) { $1 }))
        let commit = trimmed(try run.agent("commit-tree", tree, "-p", run.base.hex, "-m", "sneaky"))
        try run.agent("update-ref", "refs/heads/\(run.branch)", commit)
        #expect(throws: GitError.self) {
            try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        }
        #expect((try? run.fixture.git("cat-file", "-e", commit)) == nil)
    }

    @Test("leftovers: a new file, a modification and a deletion are committed; the worktree ends clean")
    func leftovers() throws {
        let run = try GitRunFixture()
        try run.fixture.write("brand new\n", to: "docs/new.md", in: run.worktree)
        try run.fixture.write("one\nTWO\nthree\n", to: "src/numbers.txt", in: run.worktree)
        try FileManager.default.removeItem(at: run.worktree.appendingPathComponent("README.md"))
        try run.fixture.write("noise\n", to: "build.log", in: run.worktree)

        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base,
            message: "patina: changes the agent left uncommitted")
        let commit = try #require(leftovers.commit)
        #expect(leftovers.skipped.isEmpty)
        #expect(try run.host.branchTip(run.branch) == commit)
        #expect(try run.fixture.git("show", "--name-status", "--format=", commit.hex)
            == "D\tREADME.md\nA\tdocs/new.md\nM\tsrc/numbers.txt\n")
        #expect(trimmed(try run.fixture.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", commit.hex))
            == "patina agent <agent@patina.invalid>|patina <patina@localhost>|patina: changes the agent left uncommitted")
        #expect(trimmed(try run.fixture.git("rev-parse", "\(commit.hex)^")) == run.base.hex)
        #expect(try run.hostGitInWorktree("status", "--porcelain").isEmpty)
        #expect(trimmed(try run.hostGitInWorktree("rev-parse", "HEAD")) == commit.hex)
        #expect(run.fixture.exists(run.worktree.appendingPathComponent("build.log")))

        // Nothing left the second time.
        let again = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: commit, message: "again")
        #expect(again == Leftovers(commit: nil, skipped: []))
        #expect(trimmed(try run.fixture.git("rev-parse", "--abbrev-ref", "HEAD")) == "main")
        #expect(try run.fixture.git("status", "--porcelain").isEmpty)
    }

    @Test("leftovers skip a nested repository and a FIFO, and open neither", .timeLimit(.minutes(1)))
    func leftoversNestedRepositoryAndFifo() throws {
        let run = try GitRunFixture()
        let nested = run.worktree.appendingPathComponent("vendor/lib")
        try run.fixture.write("lib\n", to: "lib.c", in: nested)
        try run.fixture.git("init", "-q", in: nested)
        let marker = run.fixture.url("nested-ran")
        try run.fixture.git("config", "core.fsmonitor", "touch \(marker.path)", in: nested)
        try run.fixture.git("config", "include.path", "/dev/zero", in: nested)
        _ = try run.fixture.run(["mkfifo", run.worktree.appendingPathComponent("pipe").path])
        try run.fixture.write("kept\n", to: "kept.txt", in: run.worktree)

        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        let commit = try #require(leftovers.commit)
        #expect(leftovers.skipped == ["vendor/lib/"])
        #expect(try run.fixture.git("show", "--name-status", "--format=", commit.hex) == "A\tkept.txt\n")
        #expect(!run.fixture.exists(marker))
    }

    @Test("leftovers keep the host's submodule entries and leave out names git refuses")
    func leftoversRefusedNamesAndSubmodules() throws {
        let run = try GitRunFixture { fixture in
            let head = trimmed(try fixture.git("rev-parse", "HEAD"))
            try fixture.git("update-index", "--add", "--cacheinfo", "160000,\(head),vendor/submodule")
            try fixture.git("commit", "-q", "-m", "a submodule")
        }
        for path in ["GIT~1/config", ".g\u{200C}it/config", ".GIT/config", "a:b", "trailing.", "back\\slash"] {
            try run.fixture.write("x\n", to: path, in: run.worktree)
        }
        try FileManager.default.createSymbolicLink(
            atPath: run.worktree.appendingPathComponent(".gitmodules").path, withDestinationPath: "/etc/passwd")
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        let commit = try #require(leftovers.commit)
        #expect(Set(leftovers.skipped) == ["GIT~1/config", ".g\u{200C}it/config", ".gitmodules"])
        let added = try run.fixture.git("diff-tree", "-r", "-z", "--name-only", "--no-commit-id", commit.hex)
        #expect(added.split(separator: "\0").map(String.init) == ["a:b", "back\\slash", "trailing."])
        #expect(try run.fixture.git("ls-tree", commit.hex, "vendor/submodule").hasPrefix("160000 commit "))
    }

    enum RuleFileTrap: String, CaseIterable, CustomTestStringConvertible {
        case fifoGitignore, fifoGitattributesInSubdirectory, gitignoreLinkedOutside, gitattributesLinkedToStdin
        var testDescription: String { rawValue }
    }

    @Test("a .gitignore or .gitattributes libgit2 would block on or follow out is refused, at once",
          .timeLimit(.minutes(1)), arguments: RuleFileTrap.allCases)
    func ruleFileTrapsRefused(_ trap: RuleFileTrap) throws {
        let run = try GitRunFixture()
        try run.fixture.write("left\n", to: "src/left.txt", in: run.worktree)
        let worktree = run.worktree
        switch trap {
        case .fifoGitignore:
            try FileManager.default.removeItem(at: worktree.appendingPathComponent(".gitignore"))
            _ = try run.fixture.run(["mkfifo", worktree.appendingPathComponent(".gitignore").path])
        case .fifoGitattributesInSubdirectory:
            _ = try run.fixture.run(["mkfifo", worktree.appendingPathComponent("src/.gitattributes").path])
        case .gitignoreLinkedOutside:
            try FileManager.default.removeItem(at: worktree.appendingPathComponent(".gitignore"))
            try FileManager.default.createSymbolicLink(
                atPath: worktree.appendingPathComponent(".gitignore").path,
                withDestinationPath: run.fixture.repo.appendingPathComponent("README.md").path)
        case .gitattributesLinkedToStdin:
            try FileManager.default.createSymbolicLink(
                atPath: worktree.appendingPathComponent("src/.gitattributes").path, withDestinationPath: "/proc/self/fd/0")
        }
        #expect {
            try Collector.commitLeftovers(
                in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        } throws: { error in
            guard case .unsafeWorktree = error as? GitError else { return false }
            return true
        }
        #expect(try run.host.branchTip(run.branch) == run.base)
    }

    @Test("a symbolic link .gitignore to a file inside the worktree is fine")
    func ruleFileLinkedInside() throws {
        let run = try GitRunFixture()
        try run.fixture.write("*.tmp\n", to: "config/ignore-rules", in: run.worktree)
        try run.fixture.write("scratch\n", to: "src/scratch.tmp", in: run.worktree)
        try run.fixture.write("kept\n", to: "src/kept.txt", in: run.worktree)
        try FileManager.default.createSymbolicLink(
            atPath: run.worktree.appendingPathComponent("src/.gitignore").path, withDestinationPath: "../config/ignore-rules")
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        let commit = try #require(leftovers.commit)
        #expect(try run.fixture.git("show", "--name-status", "--format=", commit.hex)
            == "A\tconfig/ignore-rules\nA\tsrc/.gitignore\nA\tsrc/kept.txt\n")
    }

    @Test("the worktree's .gitmodules is never parsed: an include of a FIFO does not block collection",
          .timeLimit(.minutes(1)))
    func gitmodulesNeverParsed() throws {
        let run = try GitRunFixture { fixture in
            let head = trimmed(try fixture.git("rev-parse", "HEAD"))
            try fixture.git("update-index", "--add", "--cacheinfo", "160000,\(head),vendor/submodule")
            try fixture.git("commit", "-q", "-m", "a submodule")
        }
        let fifo = run.fixture.url("blocking-fifo")
        _ = try run.fixture.run(["mkfifo", fifo.path])
        try run.fixture.write("[include]\n\tpath = \(fifo.path)\n[submodule \"x\"]\n\tpath = vendor/submodule\n",
                              to: ".gitmodules", in: run.worktree)
        try run.fixture.write("inside\n", to: "vendor/submodule/file.txt", in: run.worktree)
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        let commit = try #require(leftovers.commit)
        #expect(leftovers.skipped == ["vendor/submodule/file.txt"])
        #expect(try run.fixture.git("show", "--name-status", "--format=", commit.hex) == "A\t.gitmodules\n")
        #expect(try run.fixture.git("ls-tree", commit.hex, "vendor/submodule").hasPrefix("160000 commit "))
    }

    @Test("unreadable files and directories are left out, never recorded as deleted",
          .enabled(if: getuid() != 0, "root reads everything"))
    func unreadableLeftOut() throws {
        let run = try GitRunFixture()
        try run.fixture.write("changed\n", to: "src/numbers.txt", in: run.worktree)
        try run.fixture.write("new\n", to: "src/new.txt", in: run.worktree)
        try run.fixture.write("secret\n", to: "private.txt", in: run.worktree)
        try run.fixture.write("kept\n", to: "kept.txt", in: run.worktree)
        _ = try run.fixture.run(["chmod", "000", run.worktree.appendingPathComponent("src").path,
                                 run.worktree.appendingPathComponent("private.txt").path])
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        _ = try run.fixture.run(["chmod", "755", run.worktree.appendingPathComponent("src").path])
        let commit = try #require(leftovers.commit)
        #expect(leftovers.skipped.sorted() == ["private.txt", "src/"])
        #expect(try run.fixture.git("show", "--name-status", "--format=", commit.hex) == "A\tkept.txt\n")
    }

    @Test("collection works on a worktree still owned by the container's user, and restores a tampered .git")
    func collectionOnForeignOwnedWorktree() throws {
        let run = try GitRunFixture()
        let head = try run.agentCommits("feature.txt", "feature\n", message: "agent: feature")
        try run.fixture.write("uncommitted\n", to: "later.txt", in: run.worktree)
        try Data("gitdir: /nowhere\n".utf8).write(to: run.worktree.appendingPathComponent(".git"))
        if getuid() == 0 {
            _ = try run.fixture.run(["chown", "-R", "1000:1000", run.worktree.path, run.sandboxGit.path])
        }
        let collected = try Collector.collect(
            into: run.host, privateGitDirectory: run.sandboxGit, worktree: run.worktree,
            branch: run.branch, base: run.base, leftoversMessage: "patina: uncommitted changes")
        #expect(collected.importFailure == nil)
        #expect(collected.agentHead == head)
        let leftover = try #require(collected.leftovers.commit)
        #expect(collected.head == leftover)
        #expect(try run.fixture.git("log", "--format=%s", run.branch).hasPrefix(
            "patina: uncommitted changes\nagent: feature\n"))
        #expect(try run.hostGitInWorktree("status", "--porcelain").isEmpty)
        #expect(trimmed(try run.hostGitInWorktree("rev-parse", "--abbrev-ref", "HEAD")) == run.branch)
    }

    @Test("a sandbox git directory that cannot be imported still gets the worktree's files collected")
    func collectionFallsBack() throws {
        let run = try GitRunFixture()
        try run.agentCommits("feature.txt", "feature\n", message: "agent: feature")
        try FileManager.default.removeItem(at: run.sandboxGit.appendingPathComponent("HEAD"))
        let collected = try Collector.collect(
            into: run.host, privateGitDirectory: run.sandboxGit, worktree: run.worktree,
            branch: run.branch, base: run.base, leftoversMessage: "patina: uncommitted changes")
        #expect(collected.importFailure == .agentHeadUnreadable("HEAD is missing"))
        #expect(collected.agentHead == nil)
        #expect(try run.fixture.git("show", "\(run.branch):feature.txt") == "feature\n")
        #expect(trimmed(try run.fixture.git("rev-parse", "\(run.branch)^")) == run.base.hex)
    }
}
