import Foundation
import PatinaGit

/// A run's changes, base..head, file by file: the files that matter for later
/// sandboxes and the user's machine (`SensitivePaths`) first.
public struct RunDiff: Sendable {
    public struct File: Sendable {
        public var path: String
        public var oldPath: String
        public var patch: String
        public var additions: Int
        public var deletions: Int
        public var status: String
        /// Why the path is marked, when it is.
        public var sensitive: String?
    }

    public var base: ObjectID
    public var head: ObjectID
    public var files: [File]
    /// How the branch moved after the run ended, when it did (the diff is of the branch now).
    public var moved: String?
    /// The history check of base..head, when it found something.
    public var history: HistoryCheck?

    public var marked: [File] { files.filter { $0.sensitive != nil } }

    /// `paths`: only files at or under these paths (as `git diff -- PATHS`).
    /// The run's branch as it is now (what `merge` takes), from its base.
    public init(review: Review, record: RunRecord, paths: [String] = []) throws {
        let now = try review.current(record)
        try self.init(repository: review.repository, base: now.base, head: now.head, paths: paths)
        moved = now.moved
        history = now.record.history
    }

    public init(repository: Repository, base: ObjectID, head: ObjectID, paths: [String] = []) throws {
        self.base = base
        self.head = head
        let stats = Dictionary(try repository.diffStat(from: base, to: head).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let wanted = paths.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }.filter { !$0.isEmpty && $0 != "." }
        func selected(_ path: String) -> Bool {
            wanted.isEmpty || wanted.contains { path == $0 || path.hasPrefix($0 + "/") }
        }
        let all = try repository.filePatches(from: base, to: head).filter { selected($0.path) || selected($0.oldPath) }.map { entry in
            let stat = stats[entry.path]
            return File(path: entry.path, oldPath: entry.oldPath, patch: entry.patch,
                        additions: stat?.additions ?? 0, deletions: stat?.deletions ?? 0,
                        status: stat?.status.rawValue ?? "modified",
                        sensitive: (SensitivePaths.match(entry.path) ?? SensitivePaths.match(entry.oldPath))?.reason)
        }
        files = all.filter { $0.sensitive != nil } + all.filter { $0.sensitive == nil }
    }
}
