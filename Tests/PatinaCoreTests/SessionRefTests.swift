import Foundation
import PatinaCore
import PatinaGit
import Testing
import PatinaTestSupport

/// patina's session marks are refs outside refs/tags/: real git resolves them by their short
/// name, and the user's tooling (describe, push --tags) never sees them.
@Suite("Session refs")
struct SessionRefTests {
    func trimmed(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }

    @Test("refs/session-<id>-… resolve by short name in git, and describe and push --tags ignore them")
    func sessionRefsAreNotTags() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        try fixture.git("tag", "-a", "v1.2.0", "-m", "release 1.2.0")
        let base = try repository.resolveCommit("HEAD")
        try fixture.write("change\n", to: "new.txt")
        try fixture.git("add", "-A")
        try fixture.git("commit", "-q", "-m", "after the release")
        let head = try repository.resolveCommit("HEAD")
        let describedBefore = trimmed(try fixture.git("describe", "--tags"))

        try repository.createSessionRef("session-r1-start", at: base, message: "patina run r1")
        try repository.createSessionRef("session-r1-end", at: head, message: "patina run r1")
        #expect(trimmed(try fixture.git("rev-parse", "session-r1-start")) == base.hex)
        #expect(trimmed(try fixture.git("rev-parse", "session-r1-end^{commit}")) == head.hex)
        #expect(trimmed(try fixture.git("diff", "--name-only", "session-r1-start..session-r1-end")) == "new.txt")
        #expect(try repository.sessionRefTarget("session-r1-end") == head)
        #expect(try repository.tagTarget("session-r1-end") == nil)
        // The user's tooling sees what it saw before.
        #expect(trimmed(try fixture.git("describe", "--tags")) == describedBefore)
        #expect(trimmed(try fixture.git("describe", "--tags", "--abbrev=0", "session-r1-start")) == "v1.2.0")
        #expect(trimmed(try fixture.git("tag", "--list")) == "v1.2.0")
        let remote = fixture.url("remote.git")
        try fixture.git("init", "-q", "--bare", remote.path)
        try fixture.git("push", "-q", "--tags", remote.path)
        #expect(trimmed(try fixture.git("for-each-ref", "--format=%(refname)", in: remote)) == "refs/tags/v1.2.0")

        #expect(throws: GitError.tagExists("session-r1-start")) {
            try repository.createSessionRef("session-r1-start", at: head, message: "again")
        }
        #expect(throws: GitError.invalidName("tags/session-x")) {
            try repository.createSessionRef("tags/session-x", at: head, message: "reaching into refs/tags")
        }
        try repository.deleteSessionRef("session-r1-start")
        #expect(try repository.sessionRefTarget("session-r1-start") == nil)
    }

    @Test("session tags of an earlier patina move to refs/ once; others' tags stay")
    func migrationMovesPatinaTagsOnce() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        let head = try repository.resolveCommit("HEAD")
        try fixture.git("tag", "v0.1")
        try repository.createTag("session-run1-start", at: head, message: "patina run run1: task")
        try repository.createTag("session-run1-end", at: head, message: "patina run run1: task")
        try repository.createTag("session-notpatinas-start", at: head, message: nil)
        let store = RunStore(home: fixture.url("patina-home"), repositoryCommonDirectory: repository.commonDirectory)
        try FileManager.default.createDirectory(at: store.runDirectory("run1"), withIntermediateDirectories: true)

        let first = SessionRefMigration.run(repository: repository, store: store)
        #expect(first.moved == ["session-run1-end", "session-run1-start"])
        #expect(first.problems.isEmpty)
        #expect(trimmed(try fixture.git("tag", "--list")).split(separator: "\n") == ["session-notpatinas-start", "v0.1"])
        #expect(trimmed(try fixture.git("rev-parse", "session-run1-end")) == head.hex)
        #expect(trimmed(try fixture.git("for-each-ref", "--format=%(refname)", "refs/session-run1-end")) == "refs/session-run1-end")
        #expect(trimmed(try fixture.git("describe", "--tags", "--exclude", "session-*")) == "v0.1")

        // Once: a tag made afterwards by an older patina is not looked for again.
        try repository.createTag("session-run1-start", at: head, message: "again")
        #expect(SessionRefMigration.run(repository: repository, store: store).moved.isEmpty)
        #expect(try repository.tagTarget("session-run1-start") == head)
    }

    @Test("the host's tags, as packed-refs the sandbox's git reads")
    func tagsForTheSandbox() throws {
        let fixture = try GitFixture()
        let repository = try Repository.discover(from: fixture.repo)
        try fixture.git("tag", "v1")
        try fixture.git("tag", "-a", "v2", "-m", "two")
        let tags = try repository.tagReferences()
        #expect(tags.map(\.name) == ["v1", "v2"])
        #expect(tags[0].peeled == nil)
        #expect(tags[1].peeled == (try repository.resolveCommit("HEAD")))
        // The sandbox's own git directory, as the render step makes it: the tags readable there.
        let sandbox = fixture.url("sandbox-git")
        try SandboxGitDirectory.create(
            at: sandbox, host: repository, branch: "patina/r1", base: try repository.resolveCommit("HEAD"),
            hostObjectsPathInContainer: repository.objectsDirectory.path)
        try SandboxGitDirectory.writeTags(tags, into: sandbox)
        let env = fixture.environment.merging(["GIT_DIR": sandbox.path]) { $1 }
        #expect(trimmed(try fixture.checked(["git", "describe", "--tags"], in: fixture.repo, environment: env)) == "v2")
        #expect(trimmed(try fixture.checked(["git", "tag", "--list"], in: fixture.repo, environment: env)) == "v1\nv2")
        #expect(trimmed(try fixture.checked(["git", "rev-parse", "HEAD"], in: fixture.repo, environment: env)) == tags[0].target.hex)
    }
}
