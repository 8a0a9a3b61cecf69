import ArgumentParser
import Foundation
import PatinaCore
import PatinaSandbox

/// `patina prune`: remove what old runs left, never unmerged work unless forced.
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove runs' worktrees, branches, tags and directories, and patina containers, images, Claude Code volumes and stores nothing uses.",
        discussion: """
            Without filters every finished run of this repository is a candidate. A run whose branch holds \
            commits no other branch has is kept unless --force (a squash-merged run counts as merged). An \
            image goes only when a pruned run used it and no other run (of this or another repository) or \
            container does; the newest image of each kind stays (the next run would build it again). \
            Whatever the filters: Claude Code volumes of binaries no longer used (not the current one, not \
            the newest run's, none a container or a run in flight uses), and stores under \
            /var/lib/patina/stores whose patina home was deleted (see docs/SECURITY.md for the rule).
            """
    )

    @Option(name: .customLong("older-than"), help: "Only runs that ended longer ago than this, e.g. 7d, 12h, 30m.")
    var olderThan: String?

    @Option(help: ArgumentHelp("Only runs with this status (\(RunStatus.list(including: false))). Repeatable."))
    var status: [String] = []

    @Flag(help: "Only runs whose branch is merged into another branch (squash merges count).")
    var merged = false

    @Option(help: "Only runs of this batch.")
    var batch: String?

    @Flag(name: .customLong("dry-run"), help: "List exactly what would be removed; change nothing.")
    var dryRun = false

    @Flag(help: "Also remove branches holding commits that no other branch has.")
    var force = false

    @Flag(help: "Print the plan (and what was done) as JSON.")
    var json = false

    func validate() throws {
        for s in status where RunStatus(rawValue: s) == nil || s == "running" {
            throw ValidationError("--status \(s): use one of \(RunStatus.list(including: false))")
        }
        if let olderThan {
            do { _ = try DurationParser.seconds(olderThan) } catch { throw ValidationError("--older-than: \(error)") }
        }
    }

    struct PlanJSON: Encodable {
        var dryRun: Bool
        var runs: [[String: [String]]]
        var kept: [[String: String]]
        var containers: [String]
        var images: [String]
        var problems: [String]
        /// Worktrees and run directories, allocated blocks: what the runs' removal gives back.
        var bytes: Int
        var runBytes: [String: Int]
        var claudeVolumes: [[String: JSONValue]]
        var keptClaudeVolumes: [[String: String]]
        var stores: [[String: JSONValue]]
        var keptStores: [[String: String]]
        var unclaimedStores: [String]
        /// What the volumes' and the stores' removal gives back.
        var volumeBytes: Int
        var storeBytes: Int
        enum CodingKeys: String, CodingKey {
            case runs, kept, containers, images, problems, bytes, stores
            case dryRun = "dry_run"
            case runBytes = "run_bytes"
            case claudeVolumes = "claude_volumes"
            case keptClaudeVolumes = "kept_claude_volumes"
            case keptStores = "kept_stores"
            case unclaimedStores = "unclaimed_stores"
            case volumeBytes = "claude_volume_bytes"
            case storeBytes = "store_bytes"
        }
    }

    enum JSONValue: Encodable {
        case string(String), int(Int)
        func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let s): try container.encode(s)
            case .int(let i): try container.encode(i)
            }
        }
    }

    func run() async throws {
        let review = try Review.current()
        var filter = PruneFilter()
        filter.olderThan = try olderThan.map(DurationParser.seconds)
        filter.statuses = Set(status.compactMap(RunStatus.init(rawValue:)))
        filter.mergedOnly = merged
        filter.force = force
        if let batch {
            filter.batch = try BatchStore(runs: review.store).resolve(batch).id
        }
        let engine = DockerEngine()
        let dockerUp = (try? await engine.ensureAvailable()) != nil
        let plan = await review.planPrune(filter, engine: dockerUp ? engine : nil)
        var problems: [String] = []
        if !dryRun { problems = await review.prune(plan, engine: dockerUp ? engine : nil) }
        if json {
            try Output.json(PlanJSON(
                dryRun: dryRun, runs: plan.remove.map { [$0.record.id: $0.removes] },
                kept: plan.kept.map { ["id": $0.id, "reason": $0.reason] },
                containers: plan.containers, images: plan.images, problems: problems, bytes: plan.bytes,
                runBytes: Dictionary(plan.remove.map { ($0.record.id, $0.bytes) }, uniquingKeysWith: { a, _ in a }),
                claudeVolumes: plan.volumes.map { ["name": .string($0.name), "version": .string($0.about), "bytes": .int($0.bytes)] },
                keptClaudeVolumes: plan.keptVolumes.map { ["name": $0.name, "reason": $0.reason] },
                stores: plan.stores.map { ["path": .string($0.name), "links": .string($0.about), "bytes": .int($0.bytes)] },
                keptStores: plan.keptStores.map { ["path": $0.folder, "reason": $0.reason] },
                unclaimedStores: plan.unclaimedStores, volumeBytes: plan.volumeBytes, storeBytes: plan.storeBytes))
        } else {
            let verb = dryRun ? "would remove" : "removed"
            for item in plan.remove {
                say("\(verb) run \(item.record.id) (\(ByteSize.format(item.bytes))): \(item.removes.joined(separator: ", "))")
            }
            if !plan.remove.isEmpty {
                say("\(dryRun ? "would give back" : "gave back") \(ByteSize.format(plan.bytes)) on disk (worktrees and run directories; the branches' objects go at the repository's next git gc)")
            }
            for name in plan.containers { say("\(verb) container \(name)") }
            for image in plan.images { say("\(verb) image \(image)") }
            for volume in plan.volumes { say("\(verb) Claude Code volume \(volume.name) (\(volume.about), \(ByteSize.format(volume.bytes)))") }
            for store in plan.stores {
                say("\(verb) orphaned store \(store.name) (\(ByteSize.format(store.bytes)))" + (store.about.isEmpty ? "" : ": its home's link was \(store.about)"))
            }
            if !plan.volumes.isEmpty || !plan.stores.isEmpty {
                say("\(dryRun ? "would give back" : "gave back") \(ByteSize.format(plan.volumeBytes + plan.storeBytes)) on disk (Claude Code volumes and orphaned stores)")
            }
            for kept in plan.kept { say("kept run \(kept.id): \(kept.reason)") }
            for kept in plan.keptVolumes where !kept.quietly { say("kept Claude Code volume \(kept.name): \(kept.reason)") }
            for kept in plan.keptStores { say("kept store \(kept.folder): \(kept.reason)") }
            if !plan.unclaimedStores.isEmpty {
                say("note: \(plan.unclaimedStores.count) store(s) of yours in \(StorePlacement.neutralRoot.path) carry no claim (made by an older patina); they are claimed when their repository is next used, and never pruned unclaimed")
            }
            if plan.isEmpty && plan.kept.isEmpty { say("nothing to prune") }
            if !dockerUp { say("note: docker is not answering; containers and images were not looked at") }
        }
        if !problems.isEmpty {
            for p in problems { Terminal.write("error: \(p)\n") }
            throw ExitCode.failure
        }
    }
}
