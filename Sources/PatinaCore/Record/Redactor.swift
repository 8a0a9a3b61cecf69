import Foundation

/// Replaces every credential value patina knows with `[redacted]`: in every line it
/// writes (session.jsonl, steps.log, check.log, run.json, the transcript copy) and every
/// event it prints. The sandbox never holds a credential; this is the second line.
public struct Redactor: Sendable {
    public let secrets: [String]
    public static let replacement = "[redacted]"

    public init(secrets: [String]) {
        // A value and its JSON-escaped spelling (a key with a quote or backslash in it).
        var all: [String] = []
        for secret in secrets where !secret.isEmpty {
            all.append(secret)
            if let data = try? JSONSerialization.data(withJSONObject: [secret], options: [.withoutEscapingSlashes]) {
                let escaped = String(decoding: data, as: UTF8.self).dropFirst(2).dropLast(2)
                if escaped != secret { all.append(String(escaped)) }
            }
        }
        self.secrets = all
    }

    public var isEmpty: Bool { secrets.isEmpty }

    public func callAsFunction(_ text: String) -> String {
        guard !secrets.isEmpty, secrets.contains(where: text.contains) else { return text }
        return Escaping.redact(text, secrets: secrets, replacement: Self.replacement)
    }

    /// A record with every string in it redacted (its JSON, redacted, read back).
    public func callAsFunction(_ record: RunRecord) -> RunRecord {
        guard !secrets.isEmpty, let data = try? RunRecord.encoder.encode(record) else { return record }
        let text = String(decoding: data, as: UTF8.self)
        guard secrets.contains(where: text.contains),
              var redacted = try? RunRecord.decoder.decode(RunRecord.self, from: Data(self(text).utf8)) else { return record }
        redacted.createdNothing = record.createdNothing
        redacted.failure = record.failure
        return redacted
    }

    /// Rewrites a file in place when it holds a secret; files that do not are left alone.
    /// Read line by line (a secret never spans lines: JSON escapes its line breaks), so
    /// memory stays bounded whatever the file's size.
    public func scrub(_ url: URL) {
        guard !secrets.isEmpty else { return }
        var found = false
        guard (try? LineFile.forEachLine(of: url, lineLimit: Self.lineLimit) { line in
            if !found, secrets.contains(where: line.contains) { found = true }
        }) != nil, found else { return }
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).redacting")
        do {
            let writer = try LineWriter(creating: temporary)
            _ = try LineFile.forEachLine(of: url, lineLimit: Self.lineLimit) { line in try? writer.write(self(line)) }
            try writer.close()
            // The lines come back each with its "\n": the last one had none.
            if !LineFile.endsWithNewline(url) {
                var info = stat()
                if stat(temporary.path, &info) == 0, info.st_size > 0 { _ = truncate(temporary.path, info.st_size - 1) }
            }
            guard rename(temporary.path, url.path) == 0 else { throw LineFileError(path: url.path, reason: "cannot replace it") }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
        }
    }

    /// Lines of patina's own logs are far shorter (session.jsonl's are cut at 8 MB).
    static let lineLimit = 16 << 20
}
