import Foundation

/// Parses durations like `20s`, `15m`, `2h`, `1h30m`, `90` (seconds).
public enum DurationParser {
    public struct Invalid: Error, CustomStringConvertible {
        public let text: String
        public var description: String {
            "invalid duration \"\(text)\": use a number with a unit, like 90s, 15m or 2h (at most 30d)"
        }
    }

    /// 30 days: longer is a typo, and would overflow the timers.
    public static let maximum = 30.0 * 86400

    public static func seconds(_ text: String) throws -> Double {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw Invalid(text: text) }
        if let plain = Double(trimmed) {
            guard plain > 0, plain.isFinite, plain <= maximum else { throw Invalid(text: text) }
            return plain
        }
        var total = 0.0
        var number = ""
        var sawUnit = false
        for ch in trimmed {
            if ch.isNumber || ch == "." {
                number.append(ch)
                continue
            }
            guard let value = Double(number) else { throw Invalid(text: text) }
            switch ch {
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            case "d": total += value * 86400
            default: throw Invalid(text: text)
            }
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit, total > 0, total <= maximum else { throw Invalid(text: text) }
        return total
    }

    /// `75` -> `1m15s`, for messages.
    public static func format(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return String(format: "%.1fs", seconds) }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }
}
