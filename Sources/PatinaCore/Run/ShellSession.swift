import Foundation
import PatinaGit

/// A shell's commits that could not move the run's branch (it moved meanwhile): kept at a tag.
struct ShellCommitsKept: Error, CustomStringConvertible {
    let tag: String
    let reason: String
    var description: String { "\(reason); the shell's commits are kept at tag \(tag)" }
}

/// What recovery needs of a `patina shell` whose patina died (a shell keeps no run
/// record): `shell.json` in the shell's scratch directory, written before its branch step.
struct ShellSession: Codable, Sendable {
    /// The run the shell was opened in.
    var runID: String
    var branch: String
    /// The branch's tip when the shell started: the shell's commits sit on it.
    var base: String
    var worktree: String

    static func url(in directory: URL) -> URL { directory.appendingPathComponent("shell.json") }

    func save(in directory: URL) throws {
        try JSONEncoder().encode(self).write(to: Self.url(in: directory), options: .atomic)
    }

    static func load(from directory: URL) -> ShellSession? {
        guard let data = FileManager.default.contents(atPath: url(in: directory).path) else { return nil }
        return try? JSONDecoder().decode(ShellSession.self, from: data)
    }

    /// The shell's collection: its scratch directory and the run's branch and worktree.
    func collection(repository: Repository, directory: URL, shellID: String) -> RunCollection? {
        guard let base = ObjectID(hex: base) else { return nil }
        return RunCollection(repository: repository, layout: RunLayout(runDirectory: directory),
                             worktree: URL(fileURLWithPath: worktree), branch: branch, base: base, runID: shellID)
    }
}
