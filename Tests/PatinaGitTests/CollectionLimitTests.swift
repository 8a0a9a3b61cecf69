import Foundation
import PatinaGit
@testable import PatinaSandbox
import Testing
import PatinaTestSupport

/// Collection bounded by the change it collects, not by what the agent makes its tree or
/// its git directory claim: the limits of `CollectionLimits`, on temporary repositories.
@Suite("PatinaGit: collection's limits")
struct CollectionLimitTests {
    private func shell(_ run: GitRunFixture, _ script: String) throws {
        _ = try run.fixture.checked(["bash", "-c", script], in: run.worktree, environment: run.fixture.environment)
    }

    /// `depth` nested directories "d" under `url`, a file at the bottom: made through
    /// descriptors (the path is longer than PATH_MAX), without a process per level.
    static func makeDeepTree(at url: URL, depth: Int) throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var fd = open(url.path, O_RDONLY | O_DIRECTORY)
        for _ in 0..<depth {
            guard mkdirat(fd, "d", 0o755) == 0 else { throw CocoaError(.fileWriteUnknown) }
            let next = openat(fd, "d", O_RDONLY | O_DIRECTORY)
            close(fd)
            fd = next
        }
        let file = openat(fd, "f", O_WRONLY | O_CREAT, 0o644)
        _ = write(file, "bottom\n", 7)
        close(file)
        close(fd)
    }

    private func makeDeepTree(at url: URL, depth: Int) throws { try Self.makeDeepTree(at: url, depth: depth) }

    @Test("objects over the import limit are refused from their headers; the leftovers are still committed")
    func importLimit() throws {
        let run = try GitRunFixture()
        // Three 4 MB zero blobs: a few KB on disk, 12 MB inflated.
        try shell(run, "for i in 1 2 3; do head -c 400000$i /dev/zero > zero$i; done")
        _ = try run.agent("add", "-A")
        _ = try run.agent("commit", "-q", "-m", "agent: zeros")
        try run.fixture.write("left over\n", to: "notes.txt", in: run.worktree)
        #expect {
            try Collector.importAgentCommits(
                into: run.host, privateGitDirectory: run.sandboxGit, base: run.base,
                limits: CollectionLimits(importBytes: 10_000_000))
        } throws: { error in
            guard case .collectionLimit(let reason) = error as? GitError else { return false }
            return reason.contains("more than 10000000 bytes")
        }
        let collected = try Collector.collect(
            into: run.host, privateGitDirectory: run.sandboxGit, worktree: run.worktree, branch: run.branch,
            base: run.base, leftoversMessage: "leftovers", limits: CollectionLimits(importBytes: 10_000_000))
        guard case .collectionLimit = collected.importFailure else {
            Issue.record("expected a limit, got \(String(describing: collected.importFailure))")
            return
        }
        #expect(collected.agentHead == nil)
        let commit = try #require(collected.leftovers.commit)
        // What the worktree holds is committed, on the base: the zeros too (12 MB in three files
        // under the per-file limit), the agent's own commit not.
        #expect(try run.fixture.git("show", "--name-only", "--format=", commit.hex) == "notes.txt\nzero1\nzero2\nzero3\n")
        #expect(try run.fixture.git("rev-parse", "\(commit.hex)^") == run.base.hex + "\n")
    }

    @Test("a blob larger than the pack builder's share is copied streamed, loose or packed", arguments: [false, true])
    func largeBlobStreamed(packed: Bool) throws {
        let run = try GitRunFixture()
        try shell(run, "head -c 20000000 /dev/urandom > big.bin")
        let head = try run.agentCommits("small.txt", "small\n", message: "agent: big and small")
        if packed { _ = try run.agent("gc", "-q") }
        #expect(try Collector.importAgentCommits(into: run.host, privateGitDirectory: run.sandboxGit, base: run.base) == head)
        try FileManager.default.removeItem(at: run.sandboxGit)
        _ = try run.fixture.git("fsck", "--full", "--strict", "--no-dangling")
        let size = try run.fixture.git("cat-file", "-s", "\(head.hex):big.bin")
        #expect(size == "20000000\n")
    }

    @Test("a 16 GB sparse file is judged by its size: left in the worktree, listed, never read", .timeLimit(.minutes(1)))
    func sparseLeftover() throws {
        let run = try GitRunFixture()
        try shell(run, "truncate -s 16G sparse.bin && echo kept > kept.txt")
        let start = Date()
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        #expect(Date().timeIntervalSince(start) < 10)
        let commit = try #require(leftovers.commit)
        #expect(try run.fixture.git("show", "--name-only", "--format=", commit.hex) == "kept.txt\n")
        #expect(leftovers.overLimit == [SkippedLeftover(
            path: "sparse.bin", size: 16 << 30, reason: "larger than \(CollectionLimits.defaultLeftoverFileBytes) bytes")])
        #expect(run.fixture.exists(run.worktree.appendingPathComponent("sparse.bin")))
    }

    /// With a watch, the index holds the base, so every file the agent committed looks
    /// changed: a limit must not leave one out (and so undo the agent's commit).
    @Test("what the agent committed is not undone by a limit when the read is scoped to the watched paths")
    func committedFilesUnderScopedRead() throws {
        let run = try GitRunFixture()
        try shell(run, "head -c 60000000 /dev/zero > big.bin && echo 1 > one.txt && echo 2 > two.txt")
        let head = try run.agentCommits("three.txt", "3\n", message: "agent: big and three small")
        try run.fixture.write("new\n", to: "left.txt", in: run.worktree)
        let touched: Set<[UInt8]> = Set(["big.bin", "one.txt", "two.txt", "three.txt", "left.txt"].map { Array($0.utf8) })
        let collected = try Collector.collect(
            into: run.host, privateGitDirectory: run.sandboxGit, worktree: run.worktree, branch: run.branch, base: run.base,
            leftoversMessage: "leftovers", scope: .changed(touched, since: run.base), limits: CollectionLimits(leftoverNewPaths: 1))
        #expect(collected.agentHead == head)
        let commit = try #require(collected.leftovers.commit)
        #expect(try run.fixture.git("show", "--name-status", "--format=", commit.hex) == "A\tleft.txt\n")
        #expect(collected.leftovers.overLimit.isEmpty, "\(collected.leftovers.overLimit)")
        #expect(try run.fixture.git("cat-file", "-s", "\(commit.hex):big.bin") == "60000000\n")

        // A file over the limit changed after the agent's commit: left out, the committed version kept.
        let second = try GitRunFixture()
        try shell(second, "head -c 60000000 /dev/zero > big.bin")
        let committed = try second.agentCommits("small.txt", "s\n", message: "agent: big")
        try shell(second, "head -c 70000000 /dev/zero > big.bin && echo changed > small.txt")
        let again = try Collector.collect(
            into: second.host, privateGitDirectory: second.sandboxGit, worktree: second.worktree, branch: second.branch,
            base: second.base, leftoversMessage: "leftovers",
            scope: .changed(Set(["big.bin", "small.txt"].map { Array($0.utf8) }), since: second.base))
        #expect(again.agentHead == committed)
        let leftovers = try #require(again.leftovers.commit)
        #expect(try second.fixture.git("show", "--name-status", "--format=", leftovers.hex) == "M\tsmall.txt\n")
        #expect(again.leftovers.overLimit.map(\.path) == ["big.bin"])
        #expect(try second.fixture.git("cat-file", "-s", "\(leftovers.hex):big.bin") == "60000000\n")
    }

    @Test("new paths past the limit stay in the worktree, counted")
    func newPathLimit() throws {
        let run = try GitRunFixture()
        try shell(run, "mkdir many && for i in $(seq 1 30); do echo $i > many/f$i; done")
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers",
            limits: CollectionLimits(leftoverNewPaths: 10))
        let commit = try #require(leftovers.commit)
        #expect(try run.fixture.git("show", "--name-only", "--format=", commit.hex).split(separator: "\n").count == 10)
        #expect(leftovers.overLimitCount == 20)
        #expect(leftovers.overLimit.allSatisfy { $0.reason == "more than 10 new paths" })
    }

    @Test("past the time budget nothing more is read: the agent's commits and leftovers stay out, said so")
    func timeBudget() throws {
        let run = try GitRunFixture()
        try run.agentCommits("feature.txt", "feature\n", message: "agent: feature")
        try run.fixture.write("left\n", to: "left.txt", in: run.worktree)
        let collected = try Collector.collect(
            into: run.host, privateGitDirectory: run.sandboxGit, worktree: run.worktree, branch: run.branch,
            base: run.base, leftoversMessage: "leftovers", limits: CollectionLimits(deadline: Date().addingTimeInterval(-1)))
        guard case .collectionLimit(let reason) = collected.importFailure else {
            Issue.record("expected a limit, got \(String(describing: collected.importFailure))")
            return
        }
        #expect(reason.contains("time budget"))
        #expect(collected.leftovers.commit == nil)
        #expect(collected.leftovers.overLimit.map(\.path).sorted() == ["feature.txt", "left.txt"])
        #expect(run.fixture.exists(run.worktree.appendingPathComponent("left.txt")))
    }

    @Test("a directory 2,100 levels deep stays in the worktree; the rest is committed", .timeLimit(.minutes(1)))
    func deepTree() throws {
        let run = try GitRunFixture()
        try makeDeepTree(at: run.worktree.appendingPathComponent("deep"), depth: 2100)
        try run.fixture.write("kept\n", to: "kept.txt", in: run.worktree)
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        let commit = try #require(leftovers.commit)
        let committed = try run.fixture.git("show", "--name-only", "--format=", commit.hex).split(separator: "\n")
        #expect(committed == ["kept.txt"])
        let skipped = try #require(leftovers.overLimit.first)
        #expect(skipped.path == "deep/" + Array(repeating: "d", count: CollectionLimits.maximumDepth).joined(separator: "/") + "/")
        #expect(leftovers.overLimitCount == 1)
    }

    @Test("21,000 sibling directories: the walks hold a bounded number of descriptors", .timeLimit(.minutes(2)))
    func wideTree() throws {
        let run = try GitRunFixture()
        try shell(run, "mkdir wide && cd wide && seq -f d%g 21000 | xargs mkdir && for i in 1 500 21000; do echo $i > d$i/f; done")
        // The walk is one of libgit2's and one of patina's: both under a descriptor limit far
        // below one per directory.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let saved = limit
        limit.rlim_cur = 1024
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        defer {
            var restored = saved
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &restored)
        }
        let leftovers = try Collector.commitLeftovers(
            in: run.host, worktree: run.worktree, branch: run.branch, head: run.base, message: "leftovers")
        let commit = try #require(leftovers.commit)
        #expect(try run.fixture.git("show", "--name-only", "--format=", commit.hex) == "wide/d1/f\nwide/d21000/f\nwide/d500/f\n")
        #expect(leftovers.overLimit.isEmpty)
    }

    @Test("a line without end is cut and marked; lines across blocks are whole")
    func lineSplitter() {
        var splitter = LineSplitter(limit: 10)
        var lines: [String] = []
        for piece in ["ab", "c\nd", "efghijklmnopqrstuvwxyz", "\n", "tail"] {
            Array(piece.utf8).withUnsafeBytes { splitter.feed($0) { lines.append($0) } }
        }
        splitter.finish { lines.append($0) }
        #expect(lines == ["abc", "defghijklm", LineSplitter.truncatedLineMarker(dropped: 13, limit: 10), "tail"])
    }

    @Test("stderr past its limit is dropped and marked; a long stdout line is cut, not read whole", .timeLimit(.minutes(1)))
    func commandOutputBounded() async throws {
        var lines: [String] = []
        let lock = NSLock()
        let result = try await Command.stream(
            ["bash", "-c", "head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 5000000 /dev/zero | tr '\\0' o; echo; echo next"],
            lineLimit: 1000, errorLimit: 1000
        ) { line in lock.withLock { lines.append(line) } }
        #expect(result.exitCode == 0)
        #expect(result.standardError.hasPrefix(String(repeating: "e", count: 1000) + "\n[patina: 2999000 more bytes of stderr dropped"))
        #expect(lines == [String(repeating: "o", count: 1000), LineSplitter.truncatedLineMarker(dropped: 4_999_000, limit: 1000), "next"])
    }
}
