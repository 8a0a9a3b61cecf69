import ArgumentParser
import Foundation
import PatinaCore
import PatinaGit

/// `patina merge RUN`: the run's branch into the checked-out branch (or --into).
struct MergeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge a run's branch into the checked-out branch (or --into BRANCH): fast-forward when possible, else a merge commit.",
        discussion: """
            Refuses, changing nothing, on a checkout with uncommitted changes or on conflicts (naming the \
            files). A run that changed sandbox, CI, hook or build files, or whose branch rewrote the \
            history it started from (its head does not descend from its base), needs --yes; even then \
            the target branch only moves forward (a fast-forward or a merge commit), its history kept. \
            What is merged is the run's branch as it is now, which is what `patina diff` shows.
            """
    )

    @Argument(help: "Run id (or a unique prefix of one), its branch, or `latest`.")
    var run: String

    @Flag(help: "One commit with the run's changes, its message built from the task and the session.")
    var squash = false

    @Option(help: "Merge into this branch instead of the checked-out one.")
    var into: String?

    @Flag(help: "Merge even though the run changed files that affect later sandboxes or your machine, or rewrote history.")
    var yes = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    struct Result: Encodable {
        var run: String
        var branch: String
        var kind: String
        var commit: String
        var previous: String
    }

    func run() async throws {
        let review = try Review.current()
        let take = try review.take(run, verb: "merge")
        guard let target = into ?? review.repository.currentBranch else {
            throw ReviewError("HEAD is detached: check out the branch to merge into, or pass --into BRANCH")
        }
        if target == take.record.branch { throw ReviewError("\(target) is the run's own branch; merge it into another branch") }
        guard review.repository.branchExists(target) else { throw ReviewError("no branch named \(target)") }
        try review.requireIntactHistory(take, verb: "merge", yes: yes)
        if !take.marked.isEmpty && !yes {
            let list = take.marked.prefix(5).map { "\($0.path) (\($0.reason))" }.joined(separator: ", ")
            throw ReviewError("run \(take.record.id) changed files that affect later sandboxes or your machine: \(list)\(take.movedClause); review them with `patina diff \(take.record.id)` and merge with --yes")
        }
        let message = squash ? review.squashMessage(take) : review.mergeMessage(take, into: target)
        let result: MergeResult
        do {
            result = try review.repository.merge(take.head, into: target, mode: squash ? .squash : .merge, message: message, identity: review.repository.userIdentity())
        } catch {
            throw ReviewError("\(error)")
        }
        if let moved = take.moved { Terminal.write("note: run \(take.record.id): \(Terminal.line(moved))\n") }
        if let history = take.history {
            if history.rewritten { Terminal.write("warning: run \(take.record.id) \(Terminal.line(history.rewrittenLine)); merged with --yes\n") }
            if let line = history.backdatedLine { Terminal.write("warning: run \(take.record.id): \(Terminal.line(line))\n") }
        }
        if json {
            try Output.json(Result(run: take.record.id, branch: target, kind: result.kind.rawValue, commit: result.commit.hex, previous: result.previous.hex))
            return
        }
        switch result.kind {
        case .alreadyMerged: say("\(target) already has everything of run \(take.record.id); nothing changed")
        case .fastForward: say("fast-forwarded \(target) to \(result.commit.short) (run \(take.record.id))")
        case .mergeCommit: say("merged run \(take.record.id) into \(target): merge commit \(result.commit.short)")
        case .squashed: say("squashed run \(take.record.id) into one commit on \(target): \(result.commit.short)")
        }
    }
}
