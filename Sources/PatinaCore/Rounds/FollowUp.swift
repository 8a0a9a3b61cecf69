import Foundation
import PatinaTemplates

/// What opens a round after the first: the failed check, as data, from
/// `templates/round-follow-up.mustache` (a repository may override it in .patina/templates/).
/// Everything taken from the check (its output, test names, messages) was written by code the
/// agent controls: control characters go, each field and the whole are bounded.
public enum FollowUp {
    public static let template = "templates/round-follow-up.mustache"
    /// Failing tests named one by one; the rest are counted.
    public static let listedFailures = 10
    public static let outputLines = 30
    public static let fieldLimit = 300
    public static let byteLimit = 8000

    /// `interrupted`: the previous round was stopped before its check ran (a resumed batch
    /// run): the follow-up asks the agent to carry on instead of quoting a check.
    public static func render(check: CheckResult, round: Int, rounds: Int, templates: TemplateSet, interrupted: Bool = false) throws -> String {
        let failures = check.failures ?? []
        let listed = failures.prefix(listedFailures).map { failure -> [String: Any] in
            let name = [failure.classname, failure.name].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ".")
            let location = failure.file.map { file in failure.line.map { "\(file):\($0)" } ?? file }
            return [
                "name": clean(name, limit: fieldLimit),
                "has_location": location != nil, "location": clean(location ?? "", limit: fieldLimit),
                "has_message": failure.message != nil, "message": clean(failure.message ?? "", limit: fieldLimit),
            ]
        }
        let more = failures.count - listed.count + (check.failuresNotKept ?? 0)
        let output = tail(check.outputTail)
        let context: [String: Any] = [
            "command": clean(check.command, limit: fieldLimit),
            "has_exit_code": check.exitCode != nil, "exit_code": check.exitCode.map(String.init) ?? "",
            "round": round, "rounds": rounds, "interrupted": interrupted, "previous": round - 1,
            "has_failures": !listed.isEmpty, "failures": listed,
            "failed": check.tests?.failed ?? failures.count, "total": check.tests?.total ?? failures.count,
            "has_more": more > 0, "more": more,
            "output": output.isEmpty ? "(no output)" : output, "fence": fence(for: output),
        ]
        let text = try templates.render(template, context)
        guard text.utf8.count > byteLimit else { return text }
        return String(decoding: Array(text.utf8.prefix(byteLimit)), as: UTF8.self) + "\n[cut at \(byteLimit) bytes]"
    }

    /// The last lines of the check's output, cleaned, at most `outputLines` and 4,000 bytes.
    static func tail(_ output: String) -> String {
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false).suffix(outputLines).map { clean(String($0), limit: 500) }
        while lines.joined(separator: "\n").utf8.count > 4000, lines.count > 1 { lines.removeFirst() }
        return lines.joined(separator: "\n").trimmingCharacters(in: .newlines)
    }

    /// No control character but tabs (and newlines where kept); at most `limit` characters.
    static func clean(_ text: String, limit: Int) -> String {
        let scalars = text.unicodeScalars.filter { $0 == "\t" || !($0.properties.generalCategory == .control || $0.properties.generalCategory == .format) }
        let cleaned = String(String.UnicodeScalarView(scalars))
        return cleaned.count <= limit ? cleaned : String(cleaned.prefix(limit)) + "…"
    }

    /// A code fence longer than any run of backticks in `text`, so the output cannot close it.
    static func fence(for text: String) -> String {
        var longest = 0, run = 0
        for c in text { if c == "`" { run += 1; longest = max(longest, run) } else { run = 0 } }
        return String(repeating: "`", count: max(3, longest + 1))
    }
}
