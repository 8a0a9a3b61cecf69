import Foundation
import PatinaGit

extension Review {
    /// A run as its branch is now, which is what `merge` and `apply` take: the record's
    /// files, head and history check recomputed on the branch's current tip when the
    /// branch moved after the run ended (`patina shell`, `patina resume`, or anything else).
    public struct Current: Sendable {
        /// The record, refreshed on the current head.
        public var record: RunRecord
        public var base: ObjectID
        public var head: ObjectID
        /// The head the run ended with.
        public var recorded: ObjectID
        /// How the branch moved since, when it did.
        public var moved: String?
    }

    /// The run's branch now (its tip; the recorded head when the branch is gone).
    /// Throws for a run without a collected branch.
    public func current(_ record: RunRecord, all: [RunRecord]? = nil) throws -> Current {
        guard let recorded = record.headCommit.flatMap(ObjectID.init(hex:)), let base = ObjectID(hex: record.baseCommit) else {
            throw ReviewError("run \(record.id) has no collected branch (the agent never started): there is nothing to show")
        }
        guard record.discarded == nil, let tip = (try? repository.branchTip(record.branch)) ?? nil, tip != recorded else {
            var same = record
            // Recorded before patina checked history at collection: check it now.
            if record.historyRewritten == nil, record.discarded == nil { same.checkHistory(in: repository, base: base, head: recorded) }
            return Current(record: same, base: base, head: recorded, recorded: recorded, moved: nil)
        }
        var refreshed = record
        refreshed.headCommit = tip.hex
        if let stats = try? repository.gitDirectoryOnly().diffStat(from: base, to: tip) {
            refreshed.filesChanged = stats.map {
                FileChangeRecord(path: $0.path, additions: $0.additions, deletions: $0.deletions, status: $0.status.rawValue)
            }
            refreshed.sensitiveChanges = refreshed.markedPaths.map(\.path)
        }
        refreshed.commits = (try? repository.commits(from: base, to: tip).count) ?? record.commits
        refreshed.checkHistory(in: repository, base: base, head: tip)
        return Current(record: refreshed, base: base, head: tip, recorded: recorded,
                       moved: movement(of: record, from: recorded, to: tip, all: all ?? store.list()))
    }

    /// "moved after the run ended: …", naming the runs that resumed it when they did.
    func movement(of record: RunRecord, from recorded: ObjectID, to tip: ObjectID, all: [RunRecord]) -> String {
        let descends = (try? repository.isAncestor(recorded, of: tip)) ?? false
        let later = all.filter { $0.branch == record.branch && $0.id != record.id && $0.started > record.started }
        let by = later.isEmpty ? "by `patina shell` or by hand" : "resumed by run " + later.map(\.id).joined(separator: ", ")
        guard descends else {
            return "its branch \(record.branch) was moved after the run ended (\(by)) to \(tip.short), which does not descend from the run's head \(recorded.short); shown and merged as it is now"
        }
        let count = (try? repository.commits(from: recorded, to: tip).count) ?? 0
        return "its branch \(record.branch) moved after the run ended: \(count) more commit\(count == 1 ? "" : "s") (\(by)), \(recorded.short)..\(tip.short); shown and merged as it is now"
    }
}
