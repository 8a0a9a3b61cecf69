import Foundation
import Synchronization

/// Run ids are unique, sortable and readable:
/// `20261121-043015-add-a-health-endpoint-k3x9` (UTC date and time, a slug of the
/// task, a short random suffix).
public enum RunID {
    public static func make(task: String, at date: Date = Date(), suffix: String = randomSuffix()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let slug = self.slug(task)
        return [formatter.string(from: date), slug.isEmpty ? nil : slug, suffix].compactMap { $0 }.joined(separator: "-")
    }

    /// Lowercase ASCII words joined by `-`, at most 32 characters, cut at a word boundary.
    public static func slug(_ text: String, maxLength: Int = 32) -> String {
        var words: [String] = []
        var current = ""
        for scalar in text.lowercased().unicodeScalars {
            if scalar.isASCII, CharacterSet.alphanumerics.contains(scalar) {
                current.unicodeScalars.append(scalar)
            } else if !current.isEmpty {
                words.append(current)
                current = ""
            }
        }
        if !current.isEmpty { words.append(current) }
        var slug = ""
        for word in words {
            let candidate = slug.isEmpty ? word : slug + "-" + word
            if candidate.count > maxLength {
                if slug.isEmpty { slug = String(word.prefix(maxLength)) }
                break
            }
            slug = candidate
        }
        return slug
    }

    /// Ids handed out by this process: several runs planned in the same second
    /// from the same task must still get different ids.
    private static let reserved = Mutex<Set<String>>([])

    /// A new id that this process has not handed out and that `taken` says is free.
    public static func reserve(task: String, taken: (String) -> Bool) -> String {
        while true {
            let id = make(task: task)
            let fresh = reserved.withLock { set in set.insert(id).inserted }
            if fresh && !taken(id) { return id }
        }
    }

    /// Each id by the shortest end of it that no other id in `all` contains (at least
    /// `minimum` characters: the random suffix), as git abbreviates hashes. A run is
    /// named by any unique part of its id, so each abbreviation names its run.
    public static func abbreviations(_ ids: [String], among all: [String] = [], minimum: Int = 4) -> [String: String] {
        let everyone = Array(Set(ids + all))
        var result: [String: String] = [:]
        for id in ids {
            var length = min(minimum, id.count)
            while length < id.count {
                let tail = id.suffix(length)
                if !tail.hasPrefix("-"), !everyone.contains(where: { $0 != id && $0.contains(tail) }) { break }
                length += 1
            }
            result[id] = String(id.suffix(length))
        }
        return result
    }

    public static func randomSuffix() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")
        return String((0..<4).map { _ in alphabet.randomElement()! })
    }

    /// Accepts exactly what `make` produces, so an id can be used safely in paths,
    /// branch names and container names.
    public static func isValid(_ id: String) -> Bool {
        guard (16...80).contains(id.count) else { return false }
        return id.unicodeScalars.allSatisfy { ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "-" }
            && !id.hasPrefix("-") && !id.hasSuffix("-")
    }
}
