import Foundation

/// How much of what the agent left collection reads: bounded by the change it collects,
/// never by what the agent can make its tree or its git directory claim (a 16 GB sparse
/// file, sixteen 400 MB zero blobs that pack into 14 MB, a directory 2,100 levels deep).
/// What is over a limit is not collected and is said so: the agent's commits stay out
/// (`importBytes`), a leftover stays in the worktree, uncommitted (`Leftovers.overLimit`).
public struct CollectionLimits: Sendable, Equatable {
    /// The most the objects imported from the sandbox's git directory may hold, inflated
    /// (from their headers, before any is read), and the most its objects may take on disk.
    public var importBytes: Int
    /// A leftover file larger than this (its apparent size: a sparse file counts whole)
    /// is not committed.
    public var leftoverFileBytes: Int
    /// New paths (not in the branch) committed from the worktree at most.
    public var leftoverNewPaths: Int
    /// When collection stops reading: what was not read by then stays in the worktree.
    public var deadline: Date?

    public static let defaultImportBytes = 2 << 30
    public static let defaultLeftoverFileBytes = 50 << 20
    public static let defaultLeftoverNewPaths = 10_000
    /// The time budget of one run's collection, in seconds.
    public static let defaultTimeBudget: TimeInterval = 600

    /// Deeper directories are left in the worktree: libgit2 refuses to walk past 100
    /// levels ("directory nesting too deep") and would fail the whole stage.
    public static let maximumDepth = 90
    /// Longer paths (relative to the worktree, in bytes) are left in the worktree too:
    /// libgit2 refuses paths longer than 4096 bytes with the worktree's own in front.
    public static let maximumPathBytes = 3000

    public init(
        importBytes: Int = Self.defaultImportBytes,
        leftoverFileBytes: Int = Self.defaultLeftoverFileBytes,
        leftoverNewPaths: Int = Self.defaultLeftoverNewPaths,
        deadline: Date? = nil
    ) {
        self.importBytes = importBytes
        self.leftoverFileBytes = leftoverFileBytes
        self.leftoverNewPaths = leftoverNewPaths
        self.deadline = deadline
    }

    /// No limit but libgit2's own (the per-object one of `ObjectImport` stays).
    public static let none = CollectionLimits(importBytes: .max, leftoverFileBytes: .max, leftoverNewPaths: .max)

    var expired: Bool { deadline.map { Date() >= $0 } ?? false }
}

/// A leftover not committed because of a limit: it stays in the worktree.
public struct SkippedLeftover: Sendable, Equatable, Codable {
    public var path: String
    /// Its apparent size, for a file over the size limit.
    public var size: Int?
    public var reason: String

    public init(path: String, size: Int?, reason: String) {
        self.path = path
        self.size = size
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case path
        case size = "size_bytes"
        case reason
    }
}
