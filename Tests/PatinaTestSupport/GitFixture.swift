// Test fixtures for the tests of PatinaGit and of what builds on it: a temporary directory per test holding a
// repository made by the git CLI, and a way to run git as the user or as the agent.
import Foundation
import PatinaGit
import Testing

/// A failed fixture step, with the command and its stderr.
public struct GitFixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// One test's temporary world: `root` holds the repository (`repo`), a HOME for git, and
/// whatever the test adds. Removed when the fixture goes away.
public final class GitFixture {
    public let root: URL
    public let repo: URL
    public let home: URL

    /// A repository on branch main, with one commit unless `commit` is false.
    public init(commit: Bool = true) throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
            .appendingPathComponent("patina-git-\(UUID().uuidString)", isDirectory: true)
        root = URL(fileURLWithPath: base.path.replacingOccurrences(of: "//", with: "/"), isDirectory: true)
        repo = root.appendingPathComponent("repo", isDirectory: true)
        home = root.appendingPathComponent("home", isDirectory: true)
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        try git("init", "-q", "-b", "main")
        if commit {
            try write("hello\n", to: "README.md")
            try write("one\ntwo\nthree\n", to: "src/numbers.txt")
            try git("add", "-A")
            try git("commit", "-q", "-m", "initial commit")
        }
    }

    deinit {
        _ = try? run(["chmod", "-R", "u+rwX", root.path])
        try? FileManager.default.removeItem(at: root)
    }

    public func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    /// The environment of every git the tests run: nothing from the real user's setup.
    public var environment: [String: String] {
        [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": home.path,
            "LANG": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test User", "GIT_AUTHOR_EMAIL": "user@example.invalid",
            "GIT_COMMITTER_NAME": "Test User", "GIT_COMMITTER_EMAIL": "user@example.invalid",
        ]
    }

    /// git as the user, in the repository (or `directory`); throws unless it exits 0.
    @discardableResult
    public func git(_ arguments: String..., in directory: URL? = nil) throws -> String {
        try checked(["git"] + arguments, in: directory ?? repo, environment: environment)
    }

    public func write(_ text: String, to relative: String, in directory: URL? = nil) throws {
        let file = (directory ?? repo).appendingPathComponent(relative)
        try FileManager.default.createDirectory(
            at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
    }

    public func read(_ relative: String, in directory: URL? = nil) throws -> String {
        String(decoding: try Data(contentsOf: (directory ?? repo).appendingPathComponent(relative)), as: UTF8.self)
    }

    public func exists(_ url: URL) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: url.path)) != nil
    }

    public func checked(_ command: [String], in directory: URL, environment: [String: String]) throws -> String {
        let result = try run(command, in: directory, environment: environment)
        guard result.status == 0 else {
            throw GitFixtureError(description: "\(command.joined(separator: " ")) exited \(result.status): \(result.error)")
        }
        return result.output
    }

    public func run(_ command: [String], in directory: URL? = nil, environment: [String: String]? = nil) throws
        -> (status: Int32, output: String, error: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.currentDirectoryURL = directory ?? root
        process.environment = environment ?? self.environment
        let outputFile = root.appendingPathComponent(".out-\(UUID().uuidString)")
        let errorFile = root.appendingPathComponent(".err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outputFile)
            try? FileManager.default.removeItem(at: errorFile)
        }
        let output = try FileHandle(forWritingTo: outputFile)
        let error = try FileHandle(forWritingTo: errorFile)
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try output.close()
        try error.close()
        return (process.terminationStatus,
                String(decoding: try Data(contentsOf: outputFile), as: UTF8.self),
                String(decoding: try Data(contentsOf: errorFile), as: UTF8.self))
    }
}

/// A fixture with a run set up as patina sets it up: a branch at the base commit, its
/// worktree outside the repository, and the sandbox's private git directory.
public final class GitRunFixture {
    public let fixture: GitFixture
    public let host: Repository
    public let base: ObjectID
    public let branch = "patina/run-1"
    public let worktreeName = "patina-run-1"
    public let worktree: URL
    public let sandboxGit: URL

    /// `prepare` shapes the repository before the run starts from its HEAD.
    /// `sparse`: the run checks out only these directories (and the top level's files).
    public init(sparse: [String] = [], prepare: (GitFixture) throws -> Void = { _ in }) throws {
        fixture = try GitFixture()
        try fixture.write("*.log\n", to: ".gitignore")
        try fixture.git("add", ".gitignore")
        try fixture.git("commit", "-q", "-m", "ignore logs")
        try prepare(fixture)
        host = try Repository.discover(from: fixture.repo)
        base = try host.resolveCommit("HEAD")
        worktree = fixture.url("runs/run-1/worktree")
        sandboxGit = fixture.url("runs/run-1/git")
        try host.createBranch(branch, at: base)
        try host.addWorktree(name: worktreeName, path: worktree, branch: branch, sparse: sparse)
        // The container would see the host's objects at a mount point; here the test's git
        // plays the container and reads them where they are.
        try SandboxGitDirectory.create(
            at: sandboxGit, host: host, branch: branch, base: base,
            hostObjectsPathInContainer: host.objectsDirectory.path,
            indexFrom: host.worktreeGitDirectory(name: worktreeName).appendingPathComponent("index"),
            sparse: sparse)
    }

    /// git as the agent.
    @discardableResult
    public func agent(_ arguments: String...) throws -> String {
        var environment = ["PATH": fixture.environment["PATH"]!, "HOME": fixture.home.path, "LANG": "C",
                           "GIT_CONFIG_NOSYSTEM": "1"]
        environment["GIT_DIR"] = sandboxGit.path
        environment["GIT_WORK_TREE"] = worktree.path
        return try fixture.checked(["git"] + arguments, in: worktree, environment: environment)
    }

    /// The agent writes a file and commits it; returns the commit id.
    @discardableResult
    public func agentCommits(_ file: String, _ text: String, message: String) throws -> ObjectID {
        try fixture.write(text, to: file, in: worktree)
        try agent("add", "-A")
        try agent("commit", "-q", "-m", message)
        return try #require(ObjectID(hex: try agent("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The user's git in the worktree, host side.
    @discardableResult
    public func hostGitInWorktree(_ arguments: String...) throws -> String {
        try fixture.checked(["git", "-c", "safe.directory=*"] + arguments, in: worktree, environment: fixture.environment)
    }
}

extension GitFixture {
    /// Writes `files`, commits everything, returns the new HEAD.
    @discardableResult
    public func commit(_ files: [String: String], message: String = "change") throws -> ObjectID {
        for (path, text) in files { try write(text, to: path) }
        try git("add", "-A")
        try git("commit", "-q", "-m", message)
        return try head()
    }

    public func head(_ revision: String = "HEAD") throws -> ObjectID {
        try #require(ObjectID(hex: try git("rev-parse", revision).trimmingCharacters(in: .whitespacesAndNewlines)))
    }
}
