import Foundation

/// A filesystem below its floor: which of the run's paths it holds, where it is mounted,
/// and how much is free.
public struct DiskShortage: Sendable, Equatable, Codable, CustomStringConvertible {
    /// What patina keeps there, in the user's words ("the run's worktree", "patina's home").
    public var holds: String
    public var path: String
    /// The filesystem's mount point.
    public var filesystem: String
    public var freeBytes: Int
    public var floorBytes: Int
    public var totalBytes: Int
    /// For a run about to start: the room it holds for its records (`DiskReserve`), on top of the floor.
    public var reserveBytes: Int?

    enum CodingKeys: String, CodingKey {
        case holds, path, filesystem
        case freeBytes = "free_bytes"
        case floorBytes = "floor_bytes"
        case totalBytes = "total_bytes"
        case reserveBytes = "reserve_bytes"
    }

    public var description: String {
        "the filesystem at \(filesystem) (holding \(holds), \(path)) has \(ByteSize.format(freeBytes)) free of \(ByteSize.format(totalBytes)), below the \(ByteSize.format(floorBytes)) floor (--min-free)"
            + (reserveBytes.map { " and the \(ByteSize.format($0)) a run holds for its records" } ?? "")
    }
}
