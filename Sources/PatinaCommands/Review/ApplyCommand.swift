import ArgumentParser
import Foundation
import PatinaCore
import PatinaGit
import PatinaSandbox

/// `patina apply RUN`: the run's changes into the working tree, uncommitted.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Put a run's changes into your working tree without committing (--staged: into the index too).",
        discussion: "Refuses on conflicts, naming the files; nothing is half-applied."
    )

    @Argument(help: "Run id (or a unique prefix of one), its branch, or `latest`.")
    var run: String

    @Flag(help: "Stage the changes as well.")
    var staged = false

    @Flag(name: .customLong("3way"), help: "Where the run and your working tree changed the same lines, leave conflict markers in those files (as `git apply --3way`) instead of refusing.")
    var threeWay = false

    @Flag(help: "Apply even though the run's branch rewrote the history it started from.")
    var yes = false

    @Flag(help: "Print the changed paths as JSON.")
    var json = false

    func run() async throws {
        let review = try Review.current()
        let take = try review.take(run, verb: "apply")
        try review.requireIntactHistory(take, verb: "apply", yes: yes)
        let paths: [String]
        let conflicted: [String]
        do {
            (paths, conflicted) = try review.repository.apply(from: take.base, to: take.head, staged: staged,
                                                              conflicts: threeWay ? .markers : .refuse)
        } catch {
            throw ReviewError("\(error)")
        }
        if let moved = take.moved { Terminal.write("note: run \(take.record.id): \(Terminal.line(moved))\n") }
        if let line = take.history?.backdatedLine { Terminal.write("warning: run \(take.record.id): \(Terminal.line(line))\n") }
        if json {
            try Output.json(["run": [take.record.id], "paths": paths, "conflicts": conflicted])
            if !conflicted.isEmpty { throw ExitCode(1) }
            return
        }
        say("applied run \(take.record.id) to the working tree\(staged ? " and the index" : ""): \(counted(paths.count, "file"))")
        for path in paths { say("  \(Terminal.line(path))" + (conflicted.contains(path) ? "  (conflict markers)" : "")) }
        if !conflicted.isEmpty {
            say("conflicts in \(conflicted.map(Terminal.line).joined(separator: ", ")): resolve the markers (<<<<<<< working tree / >>>>>>> run), then stage the files")
            throw ExitCode(1)
        }
        if !take.marked.isEmpty {
            say("note: it changes files that affect later sandboxes or your machine: " + take.marked.map(\.path).joined(separator: ", "))
        }
    }
}
