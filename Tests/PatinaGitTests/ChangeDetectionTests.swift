import Foundation
import PatinaGit
import Testing
import PatinaTestSupport

/// Collection finds what the agent left from the worktree's stat data, re-reading only
/// files whose stat changed since patina handed the checkout over (as git's index does).
/// Each change must be found exactly as git finds it reading every file afresh.
@Suite("Collection's change detection")
struct ChangeDetectionTests {
    enum Change: String, CaseIterable, CustomTestStringConvertible {
        case modified, modifiedSameSize, added, deleted, renamed, madeExecutable, symlinkAdded, fileBecameSymlink
        case sameSizeAndMtime, oddNames, nothing, committedWithoutTouchingTheFile
        case madeNotExecutable, nonUTF8Name, newlineInName, directoryBecameFile, fileBecameDirectory
        case symlinkRetargeted, symlinkBecameFile, everyFileTouchedNoneChanged, madeUnreadable, hardLinkWrittenThrough
        var testDescription: String { rawValue }
    }

    /// The run as patina sets it up: a checkout handed to the agent's uid (when root),
    /// then the index's stat data refreshed, as the render step does.
    func handedOver() throws -> GitRunFixture {
        let run = try GitRunFixture { fixture in
            for i in 0..<200 { try fixture.write("file \(i)\n", to: "many/f\(i).txt") }
            try fixture.write("#!/bin/sh\necho hi\n", to: "tool.sh")
            _ = try fixture.run(["chmod", "+x", fixture.url("repo/tool.sh").path])
            try fixture.write("a\n", to: "sub/dir/a.txt")
            try fixture.write("b\n", to: "sub/dir/b.txt")
            try FileManager.default.createSymbolicLink(atPath: fixture.url("repo/pointer").path, withDestinationPath: "many/f2.txt")
            try fixture.git("add", "-A")
            try fixture.git("commit", "-q", "-m", "many files")
            // The user's own configuration may say not to trust change times; collection
            // trusts them anyway (the agent can set a modification time back, never a ctime).
            try fixture.git("config", "core.trustctime", "false")
        }
        // Checkout and hand-over in the same instant as the agent's first write would make
        // every entry racy; the agent starts a moment later.
        Thread.sleep(forTimeInterval: 0.01)
        try run.host.handOverWorktree(name: run.worktreeName, worktree: run.worktree, to: FileOwner(uid: 1000, gid: 1000))
        Thread.sleep(forTimeInterval: 0.01)
        return run
    }

    /// The tree git makes of the worktree reading every file: a throwaway index, `git add -A`.
    func gitsTree(_ run: GitRunFixture, head: ObjectID) throws -> String {
        let index = run.fixture.url("truth-index")
        try? FileManager.default.removeItem(at: index)
        var env = run.fixture.environment
        env["GIT_INDEX_FILE"] = index.path
        env["GIT_DIR"] = run.host.worktreeGitDirectory(name: run.worktreeName).path
        env["GIT_COMMON_DIR"] = run.fixture.repo.appendingPathComponent(".git").path
        env["GIT_WORK_TREE"] = run.worktree.path
        _ = try run.fixture.checked(["git", "-c", "safe.directory=*", "read-tree", head.hex], in: run.worktree, environment: env)
        _ = try run.fixture.checked(["git", "-c", "safe.directory=*", "add", "-A"], in: run.worktree, environment: env)
        return try run.fixture.checked(["git", "-c", "safe.directory=*", "write-tree"], in: run.worktree, environment: env)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `watched`: a `WorktreeWatch` saw the changes, and collection reads only the paths it
    /// names (and those the agent's commits changed); otherwise it reads every file.
    @Test(arguments: Change.allCases, [false, true])
    func foundExactlyAsGitFindsIt(_ change: Change, watched: Bool) throws {
        // Only root can act as the agent's uid (and read what it locked away).
        if change == .madeUnreadable && getuid() != 0 { return }
        let run = try handedOver()
        let wt = run.worktree
        let watch: WorktreeWatch? = watched ? WorktreeWatch(worktree: wt) : nil
        #expect((watch != nil) == watched)
        func path(_ p: String) -> String { wt.appendingPathComponent(p).path }
        var head = run.base
        switch change {
        case .modified: try run.fixture.write("file 7 changed and longer\n", to: "many/f7.txt", in: wt)
        case .modifiedSameSize: try run.fixture.write("FILE 8\n", to: "many/f8.txt", in: wt)
        case .added: try run.fixture.write("new\n", to: "many/new.txt", in: wt)
        case .deleted: try FileManager.default.removeItem(atPath: path("many/f9.txt"))
        case .renamed: try FileManager.default.moveItem(atPath: path("many/f10.txt"), toPath: path("many/moved.txt"))
        case .madeExecutable: _ = try run.fixture.run(["chmod", "+x", path("many/f11.txt")])
        case .symlinkAdded: try FileManager.default.createSymbolicLink(atPath: path("link"), withDestinationPath: "many/f1.txt")
        case .fileBecameSymlink:
            try FileManager.default.removeItem(atPath: path("many/f12.txt"))
            try FileManager.default.createSymbolicLink(atPath: path("many/f12.txt"), withDestinationPath: "f1.txt")
        case .sameSizeAndMtime:
            // New content of the same size, the modification time set back: only the
            // change time (which nothing but the kernel sets) gives it away.
            let before = try run.fixture.run(["stat", "-c", "%.9Y", path("many/f13.txt")]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            try run.fixture.write("FILE 13\n", to: "many/f13.txt", in: wt)
            _ = try run.fixture.run(["touch", "-m", "-d", "@\(before)", path("many/f13.txt")])
        case .oddNames:
            try run.fixture.write("tab\n", to: "odd\tname.txt", in: wt)
            try run.fixture.write("unicode\n", to: "ünï cödé.txt", in: wt)
            try run.fixture.write("quote\n", to: "many/\"quoted\" 'name'.txt", in: wt)
        case .madeNotExecutable: _ = try run.fixture.run(["chmod", "-x", path("tool.sh")])
        case .nonUTF8Name:
            // Latin-1 "é" in a file name and in a directory name.
            for name in ["latin1-", "many/dir-"] {
                let bytes = Array(path(name).utf8CString.dropLast()) + [CChar(bitPattern: 0xE9), 0]
                if name.hasPrefix("many/dir-") {
                    #expect(mkdir(bytes, 0o755) == 0)
                    let file = Array(bytes.dropLast()) + Array("/inside.txt".utf8CString)
                    let fd = open(file, O_WRONLY | O_CREAT, 0o644)
                    #expect(fd >= 0 && write(fd, "in\n", 3) == 3)
                    close(fd)
                } else {
                    let fd = open(bytes, O_WRONLY | O_CREAT, 0o644)
                    #expect(fd >= 0 && write(fd, "latin\n", 6) == 6)
                    close(fd)
                }
            }
        case .newlineInName:
            try run.fixture.write("two\nlines\n", to: "many/two\nlines.txt", in: wt)
            try FileManager.default.moveItem(atPath: path("many/f15.txt"), toPath: path("many/f15\n.txt"))
        case .directoryBecameFile:
            try FileManager.default.removeItem(atPath: path("sub/dir"))
            try run.fixture.write("now a file\n", to: "sub/dir", in: wt)
        case .fileBecameDirectory:
            try FileManager.default.removeItem(atPath: path("many/f16.txt"))
            try run.fixture.write("inside\n", to: "many/f16.txt/inside.txt", in: wt)
        case .symlinkRetargeted:
            try FileManager.default.removeItem(atPath: path("pointer"))
            try FileManager.default.createSymbolicLink(atPath: path("pointer"), withDestinationPath: "many/f3.txt")
        case .symlinkBecameFile:
            try FileManager.default.removeItem(atPath: path("pointer"))
            try run.fixture.write("many/f2.txt", to: "pointer", in: wt)
        case .everyFileTouchedNoneChanged:
            // New change times everywhere, same content: nothing to commit.
            _ = try run.fixture.run(["sh", "-c", "find . -type f ! -name .git -exec chmod u+w {} +"], in: wt)
        case .madeUnreadable:
            // Changed, then chmod 000 by the agent's uid. patina runs as root and reads it,
            // as root's git does.
            try run.fixture.write("changed, then locked\n", to: "many/f20.txt", in: wt)
            _ = try run.fixture.checked(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "chmod", "000", path("many/f20.txt")],
                                        in: wt, environment: run.fixture.environment)
        case .hardLinkWrittenThrough:
            // A second name for a tracked file, written through: the watch only hears of the
            // new name, so the scoped collection must notice the link and read everything.
            #expect(link(path("many/f21.txt"), path("many/alias.txt")) == 0)
            _ = try run.fixture.run(["sh", "-c", "echo written through the alias > many/alias.txt"], in: wt)
        case .nothing:
            break
        case .committedWithoutTouchingTheFile:
            // The agent's commit changes f14 through plumbing, never writing the file: the
            // file on disk still has the base's content, and the leftovers record that.
            try run.fixture.write("plumbed\n", to: "plumbed.txt")
            let blob = try run.agent("hash-object", "-w", run.fixture.url("repo/plumbed.txt").path).trimmingCharacters(in: .whitespacesAndNewlines)
            try run.agent("update-index", "--cacheinfo", "100644,\(blob),many/f14.txt")
            try run.agent("commit", "-q", "-m", "plumbing")
            head = try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
            try run.host.setBranch(run.branch, to: head, message: "test: the agent's commit")
        }
        let expected = try gitsTree(run, head: head)
        var scope = WorktreeScope.everything
        if let watch {
            guard case .paths(let paths) = watch.finish() else { Issue.record("\(change): the watch gave up"); return }
            scope = .changed(paths, since: run.base)
            #expect(paths.isEmpty == (change == .nothing || change == .committedWithoutTouchingTheFile), "\(change): \(paths.count) paths")
        }
        let leftovers = try Collector.commitLeftovers(in: run.host, worktree: wt, branch: run.branch, head: head, message: "leftovers", scope: scope)
        let tip = try #require(try run.host.branchTip(run.branch))
        let actual = try run.fixture.git("rev-parse", "\(tip.hex)^{tree}").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(actual == expected, "\(change): patina's tree differs from git's: \((try? run.fixture.git("diff-tree", "-r", expected, actual)) ?? "")")
        let unchanged: Set<Change> = [.nothing, .everyFileTouchedNoneChanged]
        #expect((leftovers.commit == nil) == unchanged.contains(change), "\(change)")
        #expect(leftovers.skipped.isEmpty)
    }

    /// A sparse checkout (`--sparse sub`): what it left out is absent on purpose. Whether
    /// collection reads everything or only what the watch saw, the branch keeps those files
    /// as they were and gets the agent's changes; the agent's git and the host's see a clean
    /// worktree.
    @Test(arguments: [false, true])
    func aSparseCheckoutKeepsWhatItLeftOut(watched: Bool) throws {
        let run = try GitRunFixture(sparse: ["sub"]) { fixture in
            for i in 0..<50 { try fixture.write("file \(i)\n", to: "many/f\(i).txt") }
            try fixture.write("a\n", to: "sub/dir/a.txt")
            try fixture.git("add", "-A")
            try fixture.git("commit", "-q", "-m", "many files")
        }
        let wt = run.worktree
        #expect(!FileManager.default.fileExists(atPath: wt.appendingPathComponent("many").path))
        #expect(FileManager.default.fileExists(atPath: wt.appendingPathComponent("sub/dir/a.txt").path))
        #expect(FileManager.default.fileExists(atPath: wt.appendingPathComponent("README.md").path))
        #expect(try run.agent("status", "--porcelain") == "")
        let watch: WorktreeWatch? = watched ? WorktreeWatch(worktree: wt) : nil
        try run.fixture.write("changed\n", to: "sub/dir/a.txt", in: wt)
        try run.fixture.write("new\n", to: "sub/new.txt", in: wt)
        try run.agent("add", "sub/new.txt")
        try run.agent("commit", "-q", "-am", "work in the cone")
        let head = try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base)
        try run.host.setBranch(run.branch, to: head, message: "test: the agent's commit")
        try run.fixture.write("left\n", to: "sub/left.txt", in: wt)
        var scope = WorktreeScope.everything
        if let watch, case .paths(let paths) = watch.finish() { scope = .changed(paths, since: run.base) }
        _ = try Collector.commitLeftovers(in: run.host, worktree: wt, branch: run.branch, head: head, message: "leftovers", scope: scope)
        let tip = try #require(try run.host.branchTip(run.branch))
        let changed = try run.fixture.git("diff", "--name-status", run.base.hex, tip.hex).split(separator: "\n").map(String.init)
        #expect(changed == ["M\tsub/dir/a.txt", "A\tsub/left.txt", "A\tsub/new.txt"])
        let status = try run.fixture.checked(["git", "-c", "safe.directory=*", "status", "--porcelain"], in: wt, environment: run.fixture.environment)
        #expect(status == "")
    }
}
