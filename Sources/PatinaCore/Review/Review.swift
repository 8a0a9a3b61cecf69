import Foundation
import PatinaGit

/// What the review verbs (log, diff, compare, merge, apply, discard, prune,
/// resume, shell) share: the repository around the current directory, its run
/// store, and the questions they all ask about a run.
public struct Review: Sendable {
    public let repository: Repository
    public let store: RunStore

    public init(repository: Repository, store: RunStore) {
        self.repository = repository
        self.store = store
    }

    /// The repository around `directory` and its runs.
    public static func current(directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws -> Review {
        let repository = try Repository.discover(from: directory)
        return Review(repository: repository, store: RunStore(home: RunStore.home(), repositoryCommonDirectory: repository.commonDirectory))
    }

    public func resolve(_ query: String) throws -> RunRecord { try store.resolve(query) }

    public func layout(_ record: RunRecord) -> RunLayout { RunLayout(runDirectory: URL(fileURLWithPath: record.runDir)) }

    /// Refuses a run whose patina process is still working on it.
    public func requireSettled(_ record: RunRecord, to verb: String) throws {
        if RunLiveness.inFlight(record) {
            throw ReviewError("run \(record.id) is still running; wait for it to finish (or stop it with Ctrl-C) before you \(verb) it")
        }
        if record.status == .running {
            // Recovery (run by every command first) could not collect it: say why not to act.
            throw ReviewError("run \(record.id) was left running by a patina that is gone and could not be collected yet (see the note above); try again once docker answers")
        }
    }


    /// Whether the run's work is in another branch, still only on its own, or gone.
    public enum BranchState: String, Sendable, Codable {
        case merged, unmerged, discarded
        /// The agent never started: no branch was kept.
        case none
    }

    public func branchState(_ record: RunRecord) -> BranchState {
        if record.discarded != nil { return .discarded }
        guard let head = record.headCommit.flatMap(ObjectID.init(hex:)) else { return .none }
        guard let tip = try? repository.branchTip(record.branch) else { return .discarded }
        // A later run may have continued the branch: judge the branch as it is now.
        let commit = tip == head || ((try? repository.isAncestor(head, of: tip)) ?? false) ? tip : head
        let others = (try? repository.branchesContaining(commit, excluding: [record.branch])) ?? []
        if others.contains(where: { !$0.hasPrefix("patina/") }) { return .merged }
        // Squash-merged (or cherry-picked): a branch of the user's already holds the changes.
        let holding = (try? repository.branchesHoldingChanges(of: commit) { $0 == record.branch || $0.hasPrefix("patina/") }) ?? []
        return holding.isEmpty ? .unmerged : .merged
    }

    /// True when the branch holds commits that no other branch (patina's own
    /// included) reaches: deleting it would lose them.
    public func holdsUnreachableWork(_ record: RunRecord) -> Bool {
        guard let tip = try? repository.branchTip(record.branch) else { return false }
        let others = (try? repository.branchesContaining(tip, excluding: [record.branch])) ?? []
        return others.isEmpty && tip.hex != record.baseCommit
    }

    /// Other runs on the same branch (a run and the runs that resumed it).
    public func runsSharingBranch(_ record: RunRecord, in all: [RunRecord]) -> [RunRecord] {
        all.filter { $0.branch == record.branch && $0.id != record.id }
    }
}

/// A review verb cannot do what was asked: one line, exit 2, nothing changed.
public struct ReviewError: BadInput, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
