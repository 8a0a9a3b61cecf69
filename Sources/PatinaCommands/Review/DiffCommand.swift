import ArgumentParser
import Foundation
import PatinaCore
import PatinaGit

/// `patina diff RUN`: the run's changes, base..head; marked paths first.
struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show a run's changes (its base..head); changes to sandbox, CI, hook and build files first, marked."
    )

    @Argument(help: "Run id (or a unique prefix of one), its branch, or `latest`.")
    var run: String

    @Flag(help: "Only the files changed, with +/- counts.")
    var stat = false

    @Flag(help: "Print the files as a JSON array (path, status, additions, deletions, sensitive, patch).")
    var json = false

    @Argument(parsing: .postTerminator, help: "Only these paths (after `--`).")
    var paths: [String] = []

    struct FileJSON: Encodable {
        var path: String
        var status: String
        var additions: Int
        var deletions: Int
        var sensitive: String?
        var patch: String
    }

    func run() async throws {
        let review = try Review.current()
        let record = try review.resolve(run)
        let diff = try RunDiff(review: review, record: record, paths: paths)
        if json {
            // stdout stays the JSON array; what it cannot show goes to stderr.
            if let history = diff.history {
                if history.rewritten { Terminal.write("warning: run \(record.id) \(Terminal.line(history.rewrittenLine))\n") }
                if let line = history.backdatedLine { Terminal.write("warning: run \(record.id): \(Terminal.line(line))\n") }
            }
            if let moved = diff.moved { Terminal.write("note: run \(record.id): \(Terminal.line(moved))\n") }
            try Output.json(diff.files.map { FileJSON(path: $0.path, status: $0.status, additions: $0.additions, deletions: $0.deletions, sensitive: $0.sensitive, patch: $0.patch) })
            return
        }
        let colour = Output.standardOutputIsTerminal
        var out = ""
        // What the branch did to history comes first: the tree diff alone does not show it.
        if let history = diff.history {
            if history.rewritten { out += Output.paint("! run \(record.id) \(Terminal.line(history.rewrittenLine))", .red, when: colour) + "\n" }
            if let line = history.backdatedLine { out += Output.paint("! \(Terminal.line(line))", .yellow, when: colour) + "\n" }
        }
        if let moved = diff.moved { out += "note: \(Terminal.line(moved))\n" }
        if diff.history != nil || diff.moved != nil { out += "\n" }
        if !diff.marked.isEmpty {
            out += Output.paint("! this run changed files that affect later sandboxes or what runs on your machine:", .yellow, when: colour) + "\n"
            for f in diff.marked { out += "!   \(Terminal.line(f.path))  (\(f.sensitive!))\n" }
            out += "\n"
        }
        if stat || diff.files.isEmpty {
            for f in diff.files {
                out += (f.sensitive != nil ? "! " : "  ") + Terminal.line(f.path) + "  " + Output.paint("+\(f.additions)", .green, when: colour) + " " + Output.paint("-\(f.deletions)", .red, when: colour) + "\n"
            }
            let adds = diff.files.reduce(0) { $0 + $1.additions }, dels = diff.files.reduce(0) { $0 + $1.deletions }
            out += "\(diff.files.count) file\(diff.files.count == 1 ? "" : "s") changed, +\(adds) -\(dels) (\(diff.base.short)..\(diff.head.short))\n"
            StandardOutput.write(out)
            return
        }
        for f in diff.files {
            for line in f.patch.split(separator: "\n", omittingEmptySubsequences: false) {
                let text = Terminal.inert(String(line))
                if line.hasPrefix("diff --git") || line.hasPrefix("+++") || line.hasPrefix("---") {
                    out += Output.paint(text, .bold, when: colour)
                } else if line.hasPrefix("+") {
                    out += Output.paint(text, .green, when: colour)
                } else if line.hasPrefix("-") {
                    out += Output.paint(text, .red, when: colour)
                } else if line.hasPrefix("@@") {
                    out += Output.paint(text, .cyan, when: colour)
                } else {
                    out += text
                }
                out += "\n"
            }
            if out.hasSuffix("\n\n") { out.removeLast() }
        }
        Output.page(out)
    }
}
