import Foundation

/// Escaping for what patina writes and prints (the terminal, the batch report, the session log). Everything in
/// them that came from a record or an agent is data: escaped for its format, with control
/// characters shown as text, so it can neither drive a terminal nor forge the report's structure.
public enum Escaping {
    /// Control characters (C0, DEL, C1) and invisible bidi/zero-width marks as `\xNN` /
    /// `\u{NNNN}` text, so a record cannot drive the terminal or reorder what is shown.
    /// `keepLines` keeps newline and tab, for preformatted blocks.
    public static func visible(_ s: String, keepLines: Bool = false) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            switch u.value {
            case 0x0A where keepLines, 0x09 where keepLines: out.append(u)
            case 0x0A: out.append(contentsOf: #"\n"#.unicodeScalars)
            case 0x09: out.append(contentsOf: #"\t"#.unicodeScalars)
            case 0x0D: out.append(contentsOf: #"\r"#.unicodeScalars)
            case 0x00...0x1F, 0x7F...0x9F: out.append(contentsOf: String(format: #"\x%02x"#, u.value).unicodeScalars)
            case 0x200B, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069, 0x2028, 0x2029, 0xFEFF:
                out.append(contentsOf: String(format: #"\u{%04x}"#, u.value).unicodeScalars)
            default: out.append(u)
            }
        }
        return String(out)
    }

    /// Inline markdown: punctuation that starts emphasis, code, links, HTML, entities or
    /// table cells is backslash-escaped, and lines are joined with `<br>`.
    static func markdown(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { escapeMarkdown(String($0)) }.joined(separator: "<br>")
    }

    /// One line of inline markdown: `collapse`d, then escaped as `markdown` does.
    static func markdownLine(_ s: String, limit: Int) -> String {
        escapeMarkdown(collapse(s, limit: limit))
    }

    /// `s` (one line) made visible, with every markdown metacharacter backslash-escaped. By
    /// scalar, not by character: `[` followed by a combining mark is one Swift character but
    /// still a bracket to a markdown parser.
    private static func escapeMarkdown(_ line: String) -> String {
        var out = String.UnicodeScalarView()
        for u in visible(line).unicodeScalars {
            if "\\`*_[]<>|~&!#".unicodeScalars.contains(u) { out.append("\\") }
            out.append(u)
        }
        return String(out)
    }

    /// An inline code span of `s` (`collapse`d, made visible), fenced by more backticks than
    /// the longest run inside, so nothing in it can close the span; "" for empty text.
    static func codeSpan(_ s: String, limit: Int) -> String {
        let text = visible(collapse(s, limit: limit))
        guard !text.isEmpty else { return "" }
        var longest = 0, run = 0
        for u in text.unicodeScalars {  // by scalar, as markdown counts them (see `escapeMarkdown`)
            run = u == "`" ? run + 1 : 0
            longest = max(longest, run)
        }
        let fence = String(repeating: "`", count: longest + 1)
        // A backtick at either end needs a space between it and the fence; markdown strips one
        // space each side (the text itself has none there: `collapse` trims).
        let pad = text.unicodeScalars.first == "`" || text.unicodeScalars.last == "`" ? " " : ""
        return fence + pad + text + pad + fence
    }

    /// One line: the lines of `s` trimmed and joined with " ⏎ " (blank ones dropped), tabs
    /// as spaces, clipped to `limit` characters. Other control characters stay for `visible`.
    static func collapse(_ s: String, limit: Int) -> String {
        let lines = s.split { $0 == "\n" || $0 == "\r\n" }
            .map { $0.replacingOccurrences(of: "\t", with: " ").trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return clip(lines.joined(separator: " ⏎ "), limit)
    }

    static func clip(_ s: String, _ n: Int) -> String { s.count <= n ? s : String(s.prefix(max(n - 1, 0))) + "…" }

    /// `s` with every secret replaced by `replacement`, longest secret first so a secret that
    /// contains another goes whole. Matched byte for byte, so a combining mark after a secret
    /// (one character with its last letter) does not hide it. Empty secrets are ignored.
    static func redact(_ s: String, secrets: [String], replacement: String = "[redacted]") -> String {
        let ordered = secrets.filter { !$0.isEmpty }.sorted { $0.utf8.count > $1.utf8.count }
        guard !ordered.isEmpty else { return s }
        var bytes = Array(s.utf8)
        for secret in ordered {
            bytes = bytes.replacing(Array(secret.utf8), with: Array(replacement.utf8))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// HTML text: `&<>"'` as entities, control characters made visible.
    static func html(_ s: String, keepLines: Bool = false) -> String {
        var out = ""
        for ch in visible(s, keepLines: keepLines).unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
