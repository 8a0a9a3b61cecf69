import Foundation
import PatinaGit

/// Sizes as people type them: `50m`, `300MB`, `2g`, `1.5GiB`, `4096` (bytes). Units are
/// binary (k = 1024), as Docker's and `du -h`'s are.
public enum ByteSize {
    public static func parse(_ text: String, setting: String) throws -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let digits = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        var unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        // "mib" and "mb" are "m"; "b" alone is bytes.
        if unit.count == 3, unit.hasSuffix("ib") { unit.removeLast(2) }
        if unit.hasSuffix("b") { unit.removeLast() }
        let scale: Double? = switch unit {
        case "": 1
        case "k": 1024
        case "m": 1024 * 1024
        case "g": 1024 * 1024 * 1024
        case "t": 1024 * 1024 * 1024 * 1024
        default: nil
        }
        guard let scale, let number = Double(digits), number.isFinite, number > 0,
              number * scale < Double(Int64.max / 2), (number * scale).rounded(.down) >= 1 else {
            throw PlanError("\(setting) must be a size like 50m, 300MB or 2g (got \"\(Escaping.visible(text))\")")
        }
        return Int((number * scale).rounded(.down))
    }

    /// `52428800` → "50 MB", `1536` → "1.5 KB" (binary units, one decimal below 10).
    public static func format(_ bytes: Int) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB"]
        var value = Double(bytes), index = 0
        while value >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        if index == 0 { return "\(bytes) bytes" }
        // One decimal below 100, where a rounded figure could read as the limit it is under.
        let text = value < 100 && (value * 10).rounded(.down) != value.rounded(.down) * 10 ? String(format: "%.1f", (value * 10).rounded(.down) / 10)
            : String(format: "%.0f", value.rounded(.down))
        return "\(text) \(units[index])"
    }
}

/// `--min-free`: the free space below which a run's agent is stopped. A size, a share of the
/// filesystem (`5%`), or the default: the smaller of 2 GB and 10% of the filesystem.
public enum DiskFloor: Sendable, Equatable {
    case standard
    case bytes(Int)
    case percent(Double)

    public static let standardBytes = 2 << 30
    public static let standardPercent = 10.0

    public static func parse(_ text: String, setting: String) throws -> DiskFloor {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix("%") {
            let number = trimmed.dropLast().trimmingCharacters(in: .whitespaces)
            guard number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let value = Double(number),
                  value > 0, value < 100 else {
                throw PlanError("\(setting) must be a size like 2g or a share of the filesystem like 5% (got \"\(Escaping.visible(text))\")")
            }
            return .percent(value)
        }
        // "0" switches the floor off: a size of zero bytes.
        if trimmed == "0" { return .bytes(0) }
        do {
            return .bytes(try ByteSize.parse(trimmed, setting: setting))
        } catch {
            throw PlanError("\(setting) must be a size like 2g or a share of the filesystem like 5% (got \"\(Escaping.visible(text))\")")
        }
    }

    /// The floor on a filesystem of `total` bytes.
    public func bytes(ofFilesystem total: Int) -> Int {
        switch self {
        case .standard: min(Self.standardBytes, Int(Double(total) * Self.standardPercent / 100))
        case .bytes(let bytes): bytes
        case .percent(let share): Int(Double(total) * share / 100)
        }
    }

    public var description: String {
        switch self {
        case .standard: "the smaller of 2 GB and 10% of the filesystem"
        case .bytes(let bytes): ByteSize.format(bytes)
        case .percent(let share): "\(share.formatted())% of the filesystem"
        }
    }
}

extension Double {
    fileprivate func formatted() -> String { self == rounded() ? String(Int(self)) : String(self) }
}

/// The disk a run may use: what collection commits from the worktree, and the free space
/// it leaves on the filesystems holding the worktree and patina's home.
public struct DiskPolicy: Sendable, Equatable {
    /// A leftover larger than this is not committed (`--max-file-size`, `max_file_size`).
    public var maxFileBytes = CollectionLimits.defaultLeftoverFileBytes
    /// New paths committed from the worktree at most (`max_new_paths`).
    public var maxNewPaths = CollectionLimits.defaultLeftoverNewPaths
    /// `--min-free`, `min_free`.
    public var floor = DiskFloor.standard

    public init() {}

    /// From the flags (`options`) over the repository's config; bad input throws one line.
    public static func plan(options: YoloOptions, config: PatinaConfig) throws -> DiskPolicy {
        var policy = DiskPolicy()
        if let text = options.maxFileSize {
            policy.maxFileBytes = try ByteSize.parse(text, setting: "--max-file-size")
        } else if let text = config.maxFileSize {
            policy.maxFileBytes = try ByteSize.parse(text.text, setting: "max_file_size in .patina/config.json")
        }
        if let count = options.maxNewPaths ?? config.maxNewPaths {
            guard count >= 1 else {
                throw PlanError("\(options.maxNewPaths != nil ? "--max-new-paths" : "max_new_paths in .patina/config.json") must be at least 1 (got \(count))")
            }
            policy.maxNewPaths = count
        }
        if let text = options.minFree {
            policy.floor = try DiskFloor.parse(text, setting: "--min-free")
        } else if let text = config.minFree {
            policy.floor = try DiskFloor.parse(text.text, setting: "min_free in .patina/config.json")
        }
        return policy
    }
}

/// A size in `.patina/config.json`: a string (`"50m"`) or a number of bytes.
public struct SizeSetting: Codable, Sendable, Equatable {
    public var text: String

    public init(_ text: String) { self.text = text }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let number = try? c.decode(Int.self) {
            text = String(number)
        } else {
            text = try c.decode(String.self)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

extension RunRecord {
    /// What the disk limits did to the run, one plain line each (empty when nothing): the
    /// leftovers not committed, and files over the limit the agent committed itself (they stay).
    public var diskNotes: [String] {
        var notes: [String] = []
        if let count = leftoversSkippedCount, count > 0 {
            let listed = (leftoversSkipped ?? []).prefix(5).map { skipped in
                skipped.path + (skipped.size.map { " (\(ByteSize.format($0)))" } ?? "") + ": " + skipped.reason
            }
            notes.append("\(count) leftover path\(count == 1 ? "" : "s") not committed (over the leftovers limits; still in the worktree until discard or prune): "
                + listed.joined(separator: "; ") + (count > listed.count ? "; …" : ""))
        }
        if let large = largeFilesCommitted, !large.isEmpty {
            let limit = maxFileSizeBytes.map(ByteSize.format) ?? ByteSize.format(CollectionLimits.defaultLeftoverFileBytes)
            let listed = large.prefix(5).map { "\($0.path) (\(ByteSize.format($0.size)), commit \($0.commit.prefix(8)))" }
            notes.append("the agent's own commits hold \(large.count)\(large.count >= 20 ? "+" : "") file\(large.count == 1 ? "" : "s") over \(limit) (kept on the branch; merging brings them into your repository): "
                + listed.joined(separator: ", ") + (large.count > listed.count ? ", …" : ""))
        }
        return notes
    }
}
