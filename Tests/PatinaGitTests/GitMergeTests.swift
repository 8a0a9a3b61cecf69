import Foundation
import PatinaGit
import Testing
import PatinaTestSupport

private func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

extension GitFixture {
    func writeBytes(_ bytes: [UInt8], to relative: String) throws {
        let file = repo.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
    }

    func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: repo.appendingPathComponent(relative)))
    }

    /// Byte for byte: every file of the working tree (directories listed too), and
    /// .git/index, .git/HEAD, .git/packed-refs and everything under .git/refs.
    func snapshot() throws -> [String: Data] {
        var result = [String: Data]()
        let manager = FileManager.default
        let walker = manager.enumerator(atPath: repo.path)
        while let relative = walker?.nextObject() as? String {
            if relative == ".git" || relative.hasPrefix(".git/") { continue }
            let path = repo.appendingPathComponent(relative).path
            if let link = try? manager.destinationOfSymbolicLink(atPath: path) {
                result[relative] = Data("symlink:\(link)".utf8)
                continue
            }
            var isDirectory: ObjCBool = false
            _ = manager.fileExists(atPath: path, isDirectory: &isDirectory)
            result[relative] = isDirectory.boolValue ? Data("directory".utf8) : try Data(contentsOf: URL(fileURLWithPath: path))
        }
        let git = repo.appendingPathComponent(".git")
        for name in ["index", "HEAD", "packed-refs"] {
            result[".git/\(name)"] = try? Data(contentsOf: git.appendingPathComponent(name))
        }
        let refs = manager.enumerator(atPath: git.appendingPathComponent("refs").path)
        while let relative = refs?.nextObject() as? String {
            let url = git.appendingPathComponent("refs").appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            if manager.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                result[".git/refs/\(relative)"] = try Data(contentsOf: url)
            }
        }
        return result
    }
}

/// main at "initial commit"; `feature` branches off it and changes `featureFiles`;
/// main then gets `mainFiles` (if any). main is checked out at the end.
private func diverged(
    _ fixture: GitFixture, feature featureFiles: [String: String], main mainFiles: [String: String] = [:]
) throws -> (base: ObjectID, feature: ObjectID, main: ObjectID) {
    let base = try fixture.head()
    try fixture.git("checkout", "-q", "-b", "feature")
    let feature = try fixture.commit(featureFiles, message: "feature work")
    try fixture.git("checkout", "-q", "main")
    let main = mainFiles.isEmpty ? base : try fixture.commit(mainFiles, message: "main work")
    return (base, feature, main)
}

private let reviewer = Identity(name: "Review Er", email: "review@example.invalid")

@Suite("PatinaGit: merge, apply, status, branch and tag queries")
struct GitMergeTests {
    // MARK: merge

    @Test("fast-forward: main moves to the source, no new commit, working tree updated")
    func fastForward() throws {
        let fixture = try GitFixture()
        let (base, feature, _) = try diverged(fixture, feature: ["README.md": "hello\nfeature\n", "new.txt": "new\n"])
        let repository = try Repository.open(at: fixture.repo)

        let result = try repository.merge(feature, into: "main", mode: .merge, message: "unused", identity: reviewer)
        #expect(result == MergeResult(kind: .fastForward, commit: feature, previous: base))
        #expect(try fixture.head("main") == feature)
        #expect(trimmed(try fixture.git("symbolic-ref", "HEAD")) == "refs/heads/main")
        #expect(try fixture.read("README.md") == "hello\nfeature\n")
        #expect(try fixture.read("new.txt") == "new\n")
        #expect(try fixture.git("status", "--porcelain").isEmpty)
        #expect(try fixture.git("reflog", "-1", "--format=%gs", "main").contains("patina: merge"))
    }

    @Test("merge commit: parents [tip, source], both changes, working tree and index updated")
    func mergeCommit() throws {
        let fixture = try GitFixture()
        let (_, feature, main) = try diverged(
            fixture, feature: ["src/numbers.txt": "one\ntwo\nthree\nfour\n", "added.txt": "added\n"],
            main: ["README.md": "hello from main\n"])
        let repository = try Repository.open(at: fixture.repo)

        let result = try repository.merge(feature, into: "main", mode: .merge, message: "Merge feature", identity: reviewer)
        #expect(result.kind == .mergeCommit)
        #expect(result.previous == main)
        #expect(try fixture.head("main") == result.commit)
        #expect(trimmed(try fixture.git("log", "-1", "--format=%P", "main")) == "\(main.hex) \(feature.hex)")
        #expect(trimmed(try fixture.git("log", "-1", "--format=%B", "main")) == "Merge feature")
        #expect(trimmed(try fixture.git("log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"))
            == "Review Er <review@example.invalid>|Review Er <review@example.invalid>")
        #expect(try fixture.read("README.md") == "hello from main\n")
        #expect(try fixture.read("src/numbers.txt") == "one\ntwo\nthree\nfour\n")
        #expect(try fixture.read("added.txt") == "added\n")
        #expect(try fixture.git("status", "--porcelain").isEmpty)
    }

    @Test("squash: one commit on the tip with the merged tree and the message")
    func squash() throws {
        let fixture = try GitFixture()
        let (_, feature, main) = try diverged(
            fixture, feature: ["src/numbers.txt": "one\ntwo\nthree\nfour\n"], main: ["README.md": "hello from main\n"])
        let repository = try Repository.open(at: fixture.repo)

        let result = try repository.merge(feature, into: "main", mode: .squash, message: "Squashed feature", identity: reviewer)
        #expect(result.kind == .squashed)
        #expect(result.previous == main)
        #expect(trimmed(try fixture.git("log", "-1", "--format=%P", "main")) == main.hex)
        #expect(trimmed(try fixture.git("log", "-1", "--format=%B", "main")) == "Squashed feature")
        #expect(try fixture.read("README.md") == "hello from main\n")
        #expect(try fixture.read("src/numbers.txt") == "one\ntwo\nthree\nfour\n")
        #expect(try fixture.git("status", "--porcelain").isEmpty)
        #expect(try !repository.isAncestor(feature, of: result.commit))

        // Squashing the same work again: nothing to add, no empty commit.
        let before = try fixture.snapshot()
        #expect(try repository.merge(feature, into: "main", mode: .squash, message: "again", identity: reviewer)
            == MergeResult(kind: .alreadyMerged, commit: result.commit, previous: result.commit))
        #expect(try fixture.snapshot() == before)
    }

    @Test("squash of a fast-forwardable source: the source's tree, one parent")
    func squashFastForwardable() throws {
        let fixture = try GitFixture()
        let (base, feature, _) = try diverged(fixture, feature: ["README.md": "changed\n"])
        let repository = try Repository.open(at: fixture.repo)

        let result = try repository.merge(feature, into: "main", mode: .squash, message: "Squash", identity: reviewer)
        #expect(result.kind == .squashed)
        #expect(result.commit != feature)
        #expect(trimmed(try fixture.git("log", "-1", "--format=%P", "main")) == base.hex)
        #expect(trimmed(try fixture.git("rev-parse", "main^{tree}")) == trimmed(try fixture.git("rev-parse", "feature^{tree}")))
        #expect(try fixture.read("README.md") == "changed\n")
    }

    @Test("already merged: an ancestor or the tip itself changes nothing")
    func alreadyMerged() throws {
        let fixture = try GitFixture()
        let first = try fixture.head()
        let second = try fixture.commit(["README.md": "second\n"])
        let repository = try Repository.open(at: fixture.repo)
        let before = try fixture.snapshot()

        for mode in [MergeMode.merge, .squash] {
            #expect(try repository.merge(first, into: "main", mode: mode, message: "m", identity: reviewer)
                == MergeResult(kind: .alreadyMerged, commit: second, previous: second))
            #expect(try repository.merge(second, into: "main", mode: mode, message: "m", identity: reviewer).kind == .alreadyMerged)
        }
        #expect(try fixture.snapshot() == before)
    }

    @Test("a conflicting merge names the file and changes nothing")
    func conflict() throws {
        let fixture = try GitFixture()
        let (_, feature, _) = try diverged(
            fixture, feature: ["README.md": "feature says hi\n", "fine.txt": "fine\n"], main: ["README.md": "main says hi\n"])
        let repository = try Repository.open(at: fixture.repo)
        let before = try fixture.snapshot()

        for mode in [MergeMode.merge, .squash] {
            #expect(throws: GitError.mergeConflicts(branch: "main", paths: ["README.md"])) {
                try repository.merge(feature, into: "main", mode: mode, message: "m", identity: reviewer)
            }
        }
        #expect(try fixture.snapshot() == before)
        #expect(GitError.mergeConflicts(branch: "main", paths: ["README.md"]).description.contains("'README.md'"))
    }

    @Test("uncommitted changes in the checkout refuse the merge, naming them; nothing changes")
    func dirtyCheckout() throws {
        let fixture = try GitFixture()
        let (_, feature, _) = try diverged(fixture, feature: ["new.txt": "new\n"])
        try fixture.write("edited\n", to: "README.md")
        try fixture.write("staged\n", to: "src/numbers.txt")
        try fixture.git("add", "src/numbers.txt")
        let repository = try Repository.open(at: fixture.repo)
        let before = try fixture.snapshot()

        #expect(throws: GitError.uncommittedChanges(branch: "main", paths: ["README.md", "src/numbers.txt"])) {
            try repository.merge(feature, into: "main", mode: .merge, message: "m", identity: reviewer)
        }
        #expect(try fixture.snapshot() == before)
    }

    @Test("an untracked or ignored file where the merge puts one refuses it; nothing changes")
    func untrackedInTheWay() throws {
        let fixture = try GitFixture()
        try fixture.commit([".gitignore": "*.env\n"])
        try fixture.git("checkout", "-q", "-b", "feature")
        // README.md sorts before the blocked paths: it must not be written either.
        try fixture.write("hello from feature\n", to: "README.md")
        try fixture.write("tracked\n", to: "new.txt")
        try fixture.write("SECRET=tracked\n", to: "config.env")
        try fixture.git("add", "-f", "README.md", "new.txt", "config.env")
        try fixture.git("commit", "-q", "-m", "feature")
        let feature = try fixture.head()
        try fixture.git("checkout", "-q", "main")
        try fixture.write("mine, untracked\n", to: "new.txt")
        try fixture.write("SECRET=mine\n", to: "config.env")
        let repository = try Repository.open(at: fixture.repo)
        #expect(try repository.uncommittedChanges().isEmpty)
        let before = try fixture.snapshot()

        for mode in [MergeMode.merge, .squash] {
            #expect(throws: GitError.untrackedFilesInTheWay(branch: "main", paths: ["config.env", "new.txt"])) {
                try repository.merge(feature, into: "main", mode: mode, message: "m", identity: reviewer)
            }
        }
        #expect(try fixture.snapshot() == before)
        #expect(try fixture.read("new.txt") == "mine, untracked\n")
        #expect(try fixture.read("README.md") == "hello\n")
    }

    @Test("a branch checked out nowhere: only the ref moves")
    func branchNotCheckedOut() throws {
        let fixture = try GitFixture()
        let base = try fixture.head()
        try fixture.git("branch", "release")
        let (_, feature, _) = try diverged(fixture, feature: ["new.txt": "new\n"], main: ["README.md": "main moved on\n"])
        try fixture.write("dirty, untouched\n", to: "src/numbers.txt")
        let repository = try Repository.open(at: fixture.repo)
        var before = try fixture.snapshot()

        let result = try repository.merge(feature, into: "release", mode: .merge, message: "m", identity: reviewer)
        #expect(result == MergeResult(kind: .fastForward, commit: feature, previous: base))
        #expect(try fixture.head("release") == feature)
        before[".git/refs/heads/release"] = Data("\(feature.hex)\n".utf8)
        #expect(try fixture.snapshot() == before)
        #expect(!fixture.exists(fixture.repo.appendingPathComponent("new.txt")))
    }

    @Test("a branch checked out in a linked worktree is refused, naming the worktree")
    func branchInLinkedWorktree() throws {
        let fixture = try GitFixture()
        let (_, feature, _) = try diverged(fixture, feature: ["new.txt": "new\n"])
        try fixture.git("branch", "other")
        let worktree = fixture.url("elsewhere/wt")
        try fixture.git("worktree", "add", "-q", worktree.path, "other")
        let repository = try Repository.open(at: fixture.repo)
        let before = try fixture.snapshot()

        #expect(throws: GitError.branchCheckedOutElsewhere(branch: "other", path: worktree.path)) {
            try repository.merge(feature, into: "other", mode: .merge, message: "m", identity: reviewer)
        }
        #expect(try fixture.snapshot() == before)
        #expect(throws: GitError.branchNotFound("nope")) {
            try repository.merge(feature, into: "nope", mode: .merge, message: "m", identity: reviewer)
        }

        // Opened from the linked worktree: main is checked out elsewhere, `other` here.
        let fromWorktree = try Repository.open(at: worktree)
        #expect(fromWorktree.currentBranch == "other")
        #expect(throws: GitError.branchCheckedOutElsewhere(branch: "main", path: fixture.repo.path)) {
            try fromWorktree.merge(feature, into: "main", mode: .merge, message: "m", identity: reviewer)
        }
        #expect(try fixture.snapshot() == before)
        let result = try fromWorktree.merge(feature, into: "other", mode: .merge, message: "m", identity: reviewer)
        #expect(result.kind == .fastForward)
        #expect(try fixture.read("new.txt", in: worktree) == "new\n")
        #expect(try fixture.git("status", "--porcelain", in: worktree).isEmpty)
        #expect(!fixture.exists(fixture.repo.appendingPathComponent("new.txt")))
    }

    // MARK: apply

    @Test("apply: the changes land in the working tree only; HEAD, refs and index untouched")
    func applyToWorkingTree() throws {
        let fixture = try GitFixture()
        let moved = (1...20).map { "line \($0)\n" }.joined()
        try fixture.commit(["gone.txt": "to be deleted\n", "old-name.txt": moved])
        let (base, feature, main) = try diverged(fixture, feature: [
            "src/numbers.txt": "one\ntwo\nthree\nfour\n", "docs/new.md": "# new\n",
        ])
        try fixture.git("checkout", "-q", "feature")
        try fixture.git("rm", "-q", "gone.txt")
        try fixture.git("mv", "old-name.txt", "new-name.txt")
        try fixture.commit(["new-name.txt": moved + "line 21\n"], message: "delete, rename")
        let head = try fixture.head()
        try fixture.git("checkout", "-q", "main")
        #expect(main == base && feature != head)
        try fixture.write("hello, edited locally\n", to: "README.md")
        let repository = try Repository.open(at: fixture.repo)

        let paths = try repository.apply(from: base, to: head, staged: false)
        #expect(paths == ["docs/new.md", "gone.txt", "new-name.txt", "old-name.txt", "src/numbers.txt"])
        #expect(try fixture.read("new-name.txt") == moved + "line 21\n")
        #expect(!fixture.exists(fixture.repo.appendingPathComponent("old-name.txt")))
        #expect(try fixture.read("src/numbers.txt") == "one\ntwo\nthree\nfour\n")
        #expect(try fixture.read("docs/new.md") == "# new\n")
        #expect(!fixture.exists(fixture.repo.appendingPathComponent("gone.txt")))
        #expect(try fixture.read("README.md") == "hello, edited locally\n")
        #expect(try fixture.head() == base)
        #expect(trimmed(try fixture.git("symbolic-ref", "HEAD")) == "refs/heads/main")
        #expect(try fixture.git("diff", "--cached", "--name-only").isEmpty)
        #expect(Set(try fixture.git("status", "--porcelain").split(separator: "\n").map(String.init))
            == [" M README.md", " M src/numbers.txt", " D gone.txt", " D old-name.txt", "?? docs/", "?? new-name.txt"])
    }

    @Test("apply --staged: the index has the changes too")
    func applyStaged() throws {
        let fixture = try GitFixture()
        let (base, feature, _) = try diverged(fixture, feature: ["src/numbers.txt": "zero\none\ntwo\nthree\n", "new.txt": "new\n"])
        let repository = try Repository.open(at: fixture.repo)

        let paths = try repository.apply(from: base, to: feature, staged: true)
        #expect(paths == ["new.txt", "src/numbers.txt"])
        #expect(try fixture.read("new.txt") == "new\n")
        #expect(try fixture.head() == base)
        #expect(trimmed(try fixture.git("diff", "--cached", "--name-only")) == "new.txt\nsrc/numbers.txt")
        #expect(try fixture.git("diff", "--name-only").isEmpty)
        #expect(trimmed(try fixture.git("rev-parse", ":src/numbers.txt"))
            == trimmed(try fixture.git("rev-parse", "feature:src/numbers.txt")))
    }

    @Test("branchesHoldingChanges: a squash merge holds the changes, an unrelated branch does not")
    func squashMergedBranchHoldsTheChanges() throws {
        let fixture = try GitFixture()
        let (_, feature, _) = try diverged(fixture, feature: ["new.txt": "new\n"], main: ["main.txt": "main\n"])
        try fixture.git("branch", "other", "main")
        let repository = try Repository.open(at: fixture.repo)
        #expect(try repository.branchesHoldingChanges(of: feature) { $0 == "feature" }.isEmpty)
        _ = try repository.merge(feature, into: "main", mode: .squash, message: "squash", identity: reviewer)
        #expect(try repository.branchesHoldingChanges(of: feature) { $0 == "feature" } == ["main"])
        #expect(try repository.branchesContaining(feature, excluding: ["feature"]).isEmpty)
    }

    @Test("apply where both sides appended to a file: a conflict, refused; --3way leaves markers and applies the rest")
    func applyBothAppended() throws {
        let fixture = try GitFixture()
        let base = try fixture.head()
        try fixture.git("checkout", "-q", "-b", "feature")
        let feature = try fixture.commit(["README.md": "hello\nthe run's line\n", "other.txt": "other\n"], message: "feature")
        try fixture.git("checkout", "-q", "main")
        try fixture.commit(["README.md": "hello\nmain's line\n"], message: "main")
        let repository = try Repository.open(at: fixture.repo)
        let before = try fixture.snapshot()
        #expect(throws: GitError.applyConflicts(paths: ["README.md"])) {
            try repository.apply(from: base, to: feature, staged: false)
        }
        #expect(try fixture.snapshot() == before)

        let result = try repository.apply(from: base, to: feature, staged: false, conflicts: .markers)
        #expect(result.paths == ["README.md", "other.txt"])
        #expect(result.conflicted == ["README.md"])
        let readme = try fixture.read("README.md")
        #expect(readme.contains("<<<<<<< working tree\nmain's line\n=======\nthe run's line\n>>>>>>> run"), "\(readme)")
        #expect(try fixture.read("other.txt") == "other\n")
    }

    @Test("apply that does not fit the checkout names the files and changes nothing")
    func applyConflict() throws {
        let fixture = try GitFixture()
        let (base, feature, _) = try diverged(fixture, feature: [
            "README.md": "hello from feature\n", "src/numbers.txt": "one\ntwo\nthree\nfour\n", "new.txt": "new\n",
        ])
        let repository = try Repository.open(at: fixture.repo)

        // A file edited in the checkout where the changes go (the other files would apply):
        // the same line changed on both sides, a conflict.
        try fixture.write("hello, edited locally\n", to: "README.md")
        var before = try fixture.snapshot()
        for staged in [false, true] {
            #expect(throws: GitError.applyConflicts(paths: ["README.md"])) {
                try repository.apply(from: base, to: feature, staged: staged)
            }
            #expect(try fixture.snapshot() == before)
        }

        // A file to add that already exists, untracked.
        try fixture.git("checkout", "-q", "--", "README.md")
        try fixture.write("mine\n", to: "new.txt")
        before = try fixture.snapshot()
        for staged in [false, true] {
            #expect(throws: GitError.filesInTheWay(paths: ["new.txt"])) {
                try repository.apply(from: base, to: feature, staged: staged)
            }
            #expect(try fixture.snapshot() == before)
        }

        // --staged: a file whose checkout differs from the index.
        try fixture.git("checkout", "-q", "--", ".")
        try FileManager.default.removeItem(at: fixture.repo.appendingPathComponent("new.txt"))
        try fixture.write("one\ntwo\nthree\n\n", to: "src/numbers.txt")
        try fixture.git("add", "src/numbers.txt")
        try fixture.write("one\ntwo\nthree\n", to: "src/numbers.txt")
        before = try fixture.snapshot()
        #expect {
            try repository.apply(from: base, to: feature, staged: true)
        } throws: { error in
            guard case .patchDoesNotApply(let paths, let reason) = error as? GitError else { return false }
            return paths == ["src/numbers.txt"] && reason.contains("does not match index")
        }
        #expect(try fixture.snapshot() == before)
    }

    @Test("apply carries binary files, added and modified")
    func applyBinary() throws {
        let fixture = try GitFixture()
        let original: [UInt8] = (0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 7) } + [0, 0, 255]
        try fixture.writeBytes(original, to: "assets/blob.bin")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "binary")
        let base = try fixture.head()
        try fixture.git("checkout", "-q", "-b", "feature")
        var modified = original
        modified[100] = 0
        modified[1500] = 42
        let added: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3, 0, 255, 254]
        try fixture.writeBytes(modified, to: "assets/blob.bin")
        try fixture.writeBytes(added, to: "assets/new.png")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "binary changes")
        let feature = try fixture.head()
        try fixture.git("checkout", "-q", "main")
        let repository = try Repository.open(at: fixture.repo)

        #expect(try repository.apply(from: base, to: feature, staged: true) == ["assets/blob.bin", "assets/new.png"])
        #expect(try fixture.bytes("assets/blob.bin") == modified)
        #expect(try fixture.bytes("assets/new.png") == added)
        #expect(trimmed(try fixture.git("write-tree")) == trimmed(try fixture.git("rev-parse", "feature^{tree}")))
    }

    @Test("error messages: one line each, naming the files and what to do")
    func messages() {
        let errors: [GitError] = [
            .mergeConflicts(branch: "main", paths: ["a.txt", "b/c.txt"]),
            .uncommittedChanges(branch: "main", paths: ["a.txt"]),
            .untrackedFilesInTheWay(branch: "main", paths: ["a.txt"]),
            .branchCheckedOutElsewhere(branch: "main", path: "/work/wt"),
            .patchDoesNotApply(paths: ["a.txt"], reason: "hunk at line 1 did not apply"),
            .filesInTheWay(paths: ["a.txt"]),
            .noWorkingTree(operation: "apply changes"),
        ]
        for error in errors {
            #expect(!error.description.contains("\n"))
        }
        #expect(errors[0].description
            == "cannot merge into 'main': conflicts in 'a.txt', 'b/c.txt'; nothing was changed — "
            + "merge by hand with git, or bring the run up to date with 'main' first")
        #expect(errors[3].description.contains("/work/wt"))
        let many = GitError.filesInTheWay(paths: (1...12).map { "f\($0)" }).description
        #expect(many.contains("'f10' and 2 more") && !many.contains("'f11'"))
    }

    // MARK: queries

    @Test("uncommittedChanges: staged, unstaged and deleted tracked files; untracked and ignored ones left out")
    func uncommittedChanges() throws {
        let fixture = try GitFixture()
        try fixture.commit([".gitignore": "*.log\n", "old-name.txt": "rename me\n", "delete-me.txt": "x\n"])
        let repository = try Repository.open(at: fixture.repo)
        #expect(try repository.uncommittedChanges().isEmpty)

        try fixture.write("unstaged\n", to: "README.md")
        try fixture.write("staged\n", to: "src/numbers.txt")
        try fixture.git("add", "src/numbers.txt")
        try fixture.git("mv", "old-name.txt", "new-name.txt")
        try FileManager.default.removeItem(at: fixture.repo.appendingPathComponent("delete-me.txt"))
        try fixture.write("untracked\n", to: "untracked.txt")
        try fixture.write("ignored\n", to: "debug.log")
        try fixture.write("staged new\n", to: "added.txt")
        try fixture.git("add", "added.txt")

        #expect(try repository.uncommittedChanges()
            == ["README.md", "added.txt", "delete-me.txt", "new-name.txt", "old-name.txt", "src/numbers.txt"])
        // Touched but the same content is no change.
        try fixture.git("reset", "-q", "--hard")
        try fixture.write("hello\n", to: "README.md")
        #expect(try repository.uncommittedChanges().isEmpty)
    }

    @Test("currentBranch: the checked-out branch; nil when detached or unborn")
    func currentBranch() throws {
        let fixture = try GitFixture()
        #expect(try Repository.open(at: fixture.repo).currentBranch == "main")
        try fixture.git("checkout", "-q", "-b", "topic/x")
        #expect(try Repository.open(at: fixture.repo).currentBranch == "topic/x")
        try fixture.git("checkout", "-q", "--detach")
        #expect(try Repository.open(at: fixture.repo).currentBranch == nil)
        let unborn = try GitFixture(commit: false)
        #expect(try Repository.open(at: unborn.repo).currentBranch == nil)
    }

    @Test("isAncestor: itself, ancestors, not descendants or siblings")
    func isAncestor() throws {
        let fixture = try GitFixture()
        let (base, feature, main) = try diverged(fixture, feature: ["a.txt": "a\n"], main: ["b.txt": "b\n"])
        let repository = try Repository.open(at: fixture.repo)
        #expect(try repository.isAncestor(base, of: base))
        #expect(try repository.isAncestor(base, of: feature))
        #expect(try repository.isAncestor(base, of: main))
        #expect(try !repository.isAncestor(feature, of: base))
        #expect(try !repository.isAncestor(feature, of: main))
        let missing = try #require(ObjectID(hex: String(repeating: "ab", count: 20)))
        #expect(throws: GitError.unknownRevision(missing.hex)) { try repository.isAncestor(missing, of: base) }
    }

    @Test("localBranches and branchesContaining")
    func branchesContaining() throws {
        let fixture = try GitFixture()
        let (base, feature, main) = try diverged(fixture, feature: ["a.txt": "a\n"], main: ["b.txt": "b\n"])
        try fixture.git("branch", "patina/run-1", feature.hex)
        try fixture.git("branch", "old", base.hex)
        let repository = try Repository.open(at: fixture.repo)

        #expect(try repository.localBranches() == [
            LocalBranch(name: "feature", tip: feature), LocalBranch(name: "main", tip: main),
            LocalBranch(name: "old", tip: base), LocalBranch(name: "patina/run-1", tip: feature),
        ])
        #expect(try repository.branchesContaining(feature, excluding: ["patina/run-1"]) == ["feature"])
        #expect(try repository.branchesContaining(feature, excluding: ["patina/run-1", "feature"]).isEmpty)
        #expect(try repository.branchesContaining(base, excluding: []) == ["feature", "main", "old", "patina/run-1"])
        #expect(try repository.branchesContaining(main, excluding: []) == ["main"])
    }

    @Test("tagNames lists the tags with a prefix, sorted")
    func tagNames() throws {
        let fixture = try GitFixture()
        let repository = try Repository.open(at: fixture.repo)
        let head = try fixture.head()
        try repository.createTag("patina/session-2", at: head, message: nil)
        try repository.createTag("patina/session-1", at: head, message: "annotated")
        try fixture.git("tag", "v1.0")
        try fixture.git("tag", "patina-other")
        #expect(try repository.tagNames(prefix: "patina/") == ["patina/session-1", "patina/session-2"])
        #expect(try repository.tagNames(prefix: "") == ["patina-other", "patina/session-1", "patina/session-2", "v1.0"])
        // A prefix, not a pattern.
        #expect(try repository.tagNames(prefix: "patina/session-?").isEmpty)
        #expect(try repository.tagNames(prefix: "none").isEmpty)
    }

    @Test("userIdentity: user.name/user.email from the configuration, else patina's")
    func userIdentity() throws {
        let fixture = try GitFixture()
        try fixture.git("config", "user.name", "Configured Person")
        try fixture.git("config", "user.email", "person@example.invalid")
        let repository = try Repository.open(at: fixture.repo)
        #expect(repository.userIdentity() == Identity(name: "Configured Person", email: "person@example.invalid"))
        #expect(Repository.userIdentity(of: repository) == repository.userIdentity())

        // An empty user.name in the repository hides any global one: no usable identity.
        try fixture.git("config", "user.name", "")
        #expect(try Repository.open(at: fixture.repo).userIdentity() == .patina)
    }
}
