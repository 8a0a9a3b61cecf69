import ArgumentParser
import Foundation
import PatinaCore

/// `patina runs`: this repository's runs, newest first.
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List this repository's runs, newest first, with whether each branch is merged, unmerged or discarded."
    )

    @Option(help: ArgumentHelp("Only runs with this status (\(RunStatus.list())), or `discarded` for the runs `patina discard` removed. Repeatable."))
    var status: [String] = []

    @Option(help: "Only runs of this batch (id, unique prefix, or `latest`).")
    var batch: String?

    @Option(help: "Only runs started within this long (e.g. 2h, 3d) or since this date (YYYY-MM-DD).")
    var since: String?

    @Option(parsing: .unconditional, help: "At most this many runs.")
    var limit: Int?

    @Flag(help: "Print a JSON array of run records (each with a `branch_state`).")
    var json = false

    func validate() throws {
        for s in status where RunStatus(rawValue: s) == nil && s != "discarded" {
            throw ValidationError("--status \(s): use one of \(RunStatus.list()), discarded")
        }
        if let limit, limit < 1 { throw ValidationError("--limit \(limit) is out of range: give at least 1") }
        if let since { _ = try Self.cutoff(since, now: Date()) }
    }

    static func cutoff(_ text: String, now: Date) throws -> Date {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        if let date = formatter.date(from: text) { return date }
        guard let seconds = try? DurationParser.seconds(text) else {
            throw ValidationError("--since \(text): give a duration like 2h or 3d, or a date like 2026-11-30")
        }
        return now.addingTimeInterval(-seconds)
    }

    struct Listed: Encodable {
        var record: RunRecord
        var branchState: Review.BranchState
        /// What the run's worktree takes on disk now (allocated blocks); nil without a worktree.
        var worktreeBytes: Int?
        func encode(to encoder: any Encoder) throws {
            try record.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(branchState, forKey: .branchState)
            try container.encode(worktreeBytes, forKey: .worktreeBytes)
        }
        enum Key: String, CodingKey {
            case branchState = "branch_state"
            case worktreeBytes = "worktree_bytes"
        }
    }

    func run() async throws {
        let review = try Review.current()
        var records = review.store.list()
        if !status.isEmpty {
            records = records.filter { status.contains($0.status.rawValue) || (status.contains("discarded") && $0.discarded != nil) }
        }
        if let batch {
            let id = try BatchStore(runs: review.store).resolve(batch).id
            records = records.filter { $0.batch == id }
        }
        if let since {
            let cutoff = try Self.cutoff(since, now: Date())
            records = records.filter { $0.started >= cutoff }
        }
        if let limit { records = Array(records.prefix(limit)) }
        let listed = records.map { record in
            Listed(record: record, branchState: review.branchState(record),
                   worktreeBytes: FileManager.default.fileExists(atPath: record.worktree)
                       ? DiskUsage.allocated(URL(fileURLWithPath: record.worktree)) : nil)
        }
        if json {
            try Output.json(listed)
            return
        }
        guard !listed.isEmpty else {
            say(status.isEmpty && batch == nil && since == nil
                  ? "no runs yet in this repository; start one with: patina yolo \"TASK\""
                  : "no runs match")
            return
        }
        // Each run as its branch is now (a later shell or resume may have moved it).
        let all = review.store.list()
        let current = listed.map { item in
            ((try? review.current(item.record, all: all))?.record ?? item.record, item.branchState, item.worktreeBytes)
        }
        for line in RunSummary.table(current) { say(line) }
        let held = listed.compactMap(\.worktreeBytes).reduce(0, +)
        if held > 0 {
            say("worktrees hold \(ByteSize.format(held)) on disk; `patina prune --dry-run` shows what pruning would give back")
        }
    }
}
