import Foundation

extension Review {
    /// What `patina discard` did to one run.
    public struct Discarded: Sendable {
        public var record: RunRecord
        public var removed: [String]
        /// Other runs on the same branch (resumed from it, or it from them), marked too.
        public var alsoMarked: [String]
    }

    /// Removes each run's branch, worktree and tags; keeps its directory and record,
    /// marked `discarded`. Every run is looked up and checked before anything changes.
    public func discard(_ queries: [String], now: Date = Date()) throws -> [Discarded] {
        var records: [RunRecord] = []
        for query in queries {
            let record = try resolve(query)
            try requireSettled(record, to: "discard")
            if !records.contains(where: { $0.id == record.id }) { records.append(record) }
        }
        let all = store.list()
        var results: [Discarded] = []
        for var record in records {
            let removed = try repository.removeRunGitState(of: record)
            record.discarded = now
            try store.save(record)
            var marked: [String] = []
            for var other in runsSharingBranch(record, in: all) where other.discarded == nil && !records.contains(where: { $0.id == other.id }) {
                other.discarded = now
                try store.save(other)
                marked.append(other.id)
            }
            results.append(Discarded(record: record, removed: removed, alsoMarked: marked))
        }
        return results
    }
}
