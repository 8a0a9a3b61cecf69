import Foundation
import PatinaGit
import PatinaSandbox

/// `patina prune`: which runs go, what of them, and what is kept and why.
public struct PruneFilter: Sendable {
    public var olderThan: Double?
    public var statuses: Set<RunStatus> = []
    public var mergedOnly = false
    public var batch: String?
    public var force = false

    public init() {}
}

public struct PrunePlan: Sendable {
    public struct Item: Sendable {
        public var record: RunRecord
        /// Branch, worktree, tags and the run directory: what exists of them.
        public var removes: [String]
        /// What its worktree and run directory take on disk (allocated blocks): what
        /// removing them gives back.
        public var bytes: Int = 0
    }
    /// A Claude Code volume (`ClaudeVolume`) of a binary no longer used, or an orphaned store.
    public struct Leftover: Sendable {
        public var name: String
        /// The volume's Claude Code version; the store's links (where its home was).
        public var about: String
        public var bytes: Int
    }
    public var remove: [Item] = []
    public var kept: [(id: String, reason: String)] = []
    public var containers: [String] = []
    public var images: [String] = []
    public var volumes: [Leftover] = []
    /// Volumes kept and why; `quietly` for the ones every prune keeps (the current binary's).
    public var keptVolumes: [(name: String, reason: String, quietly: Bool)] = []
    public var stores: [Leftover] = []
    var orphans: [StorePlacement.Orphan] = []
    public var keptStores: [(folder: String, reason: String)] = []
    /// This user's neutral folders without a claim (made by an older patina): never removed.
    public var unclaimedStores: [String] = []

    public var isEmpty: Bool { remove.isEmpty && containers.isEmpty && images.isEmpty && volumes.isEmpty && stores.isEmpty }
    /// What removing the runs gives back on disk (worktrees and run directories).
    public var bytes: Int { remove.reduce(0) { $0 + $1.bytes } }
    public var volumeBytes: Int { volumes.reduce(0) { $0 + $1.bytes } }
    public var storeBytes: Int { stores.reduce(0) { $0 + $1.bytes } }
}

extension Review {
    /// Decides what `prune` removes; changes nothing.
    public func planPrune(_ filter: PruneFilter, engine: DockerEngine?, now: Date = Date(),
                          neutralRoot: URL = StorePlacement.neutralRoot) async -> PrunePlan {
        var plan = PrunePlan()
        let all = store.list()
        let selected = all.filter { record in
            if let age = filter.olderThan, now.timeIntervalSince(record.finished ?? record.started) < age { return false }
            if !filter.statuses.isEmpty && !filter.statuses.contains(record.status) { return false }
            if let batch = filter.batch, record.batch != batch { return false }
            if filter.mergedOnly, ![.merged, .none, .discarded].contains(branchState(record)) { return false }
            return true
        }
        let selectedIDs = Set(selected.map(\.id))
        for record in selected {
            if RunLiveness.inFlight(record) {
                plan.kept.append((record.id, "still running"))
                continue
            }
            if record.status == .running {
                plan.kept.append((record.id, "never collected (its patina process is gone)"))
                continue
            }
            let sharing = runsSharingBranch(record, in: all).filter { !selectedIDs.contains($0.id) && $0.discarded == nil }
            if !sharing.isEmpty {
                plan.kept.append((record.id, "its branch is continued by run \(sharing[0].id)"))
                continue
            }
            // A squash-merged run's commits are nowhere else, but its changes are: merged.
            if !filter.force && holdsUnreachableWork(record) && branchState(record) != .merged {
                plan.kept.append((record.id, "unmerged: \(record.branch) holds commits no other branch has (merge it, or prune with --force)"))
                continue
            }
            let bytes = [record.worktree, record.runDir].reduce(0) { $0 + DiskUsage.allocated(URL(fileURLWithPath: $1)) }
            plan.remove.append(PrunePlan.Item(record: record, removes: existingParts(of: record), bytes: bytes))
        }
        if let engine {
            let (containers, images) = await leftoverDocker(engine: engine, pruning: Set(plan.remove.map(\.record.id)), all: all)
            plan.containers = containers
            plan.images = images
            await planClaudeVolumes(engine: engine, all: all, plan: &plan)
        }
        let scan = StorePlacement.orphans(home: home, neutralRoot: neutralRoot)
        plan.orphans = scan.orphans
        plan.stores = scan.orphans.map {
            PrunePlan.Leftover(name: $0.folder.path, about: $0.links.joined(separator: ", "), bytes: DiskUsage.allocated($0.folder))
        }
        plan.keptStores = scan.kept
        plan.unclaimedStores = scan.unclaimed
        return plan
    }

    /// patina's home (`<home>/repos/<key>` is the store).
    var home: URL { store.root.deletingLastPathComponent().deletingLastPathComponent() }

    /// Claude Code volumes of binaries no longer used: every one except the binary a run here
    /// would use now, the one the newest run here used, the ones runs of this home in flight
    /// use, and any a container uses (docker refuses to remove those anyway). While a run of
    /// this home is starting (its Claude Code not recorded yet), none goes.
    func planClaudeVolumes(engine: DockerEngine, all: [RunRecord], plan: inout PrunePlan) async {
        guard let listed = await ClaudeVolume.listed(engine: engine), !listed.isEmpty else { return }
        let cache = ImageCache(engine: engine, cacheDirectory: home.appendingPathComponent("cache/images"))
        func volume(of path: String?) async -> String? {
            guard let path, FileManager.default.fileExists(atPath: path) else { return nil }
            return (try? await cache.digest(of: URL(fileURLWithPath: path))).map(ClaudeVolume.name(digest:))
        }
        var keep: [String: (reason: String, quietly: Bool)] = [:]
        if let root = repository.workingDirectory {
            let config = try? PatinaConfig.load(from: root.appendingPathComponent(".patina"))
            if let claude = try? await ClaudeCodeLocator.choose(flag: nil, config: config?.agentBinary, repositoryRoot: root,
                                                                environment: ProcessInfo.processInfo.environment),
               let name = await volume(of: claude.binary?.path) {
                keep[name] = ("the current Claude Code's (\(claude.description))", true)
            }
        }
        if let newest = all.max(by: { $0.started < $1.started }), let name = await volume(of: newest.claudeBinary), keep[name] == nil {
            keep[name] = ("the newest run here (\(newest.id)) used it", true)
        }
        var starting: String?
        let repositories = home.appendingPathComponent("repos")
        for key in (try? FileManager.default.contentsOfDirectory(atPath: repositories.path)) ?? [] where !key.hasPrefix(".") {
            let other = RunStore(root: repositories.appendingPathComponent(key))
            for id in (try? FileManager.default.contentsOfDirectory(atPath: other.runningDirectory.path)) ?? [] where RunID.isValid(id) {
                guard let record = try? other.load(id), RunLiveness.inFlight(record), let name = await volume(of: record.claudeBinary) else { continue }
                keep[name] = ("run \(record.id) is in flight with it", false)
            }
            for pending in other.pending() where pending.host.map({ $0 != RunExecutor.thisHost }) ?? false || RunLiveness.patinaAlive(pid: pending.pid) {
                starting = pending.id
            }
        }
        for volume in listed {
            let version = volume.version == "unknown" ? "Claude Code, version unknown" : "Claude Code \(volume.version)"
            if !volume.usedBy.isEmpty {
                plan.keptVolumes.append((volume.name, "in use by container \(volume.usedBy.joined(separator: ", "))", false))
            } else if let kept = keep[volume.name] {
                plan.keptVolumes.append((volume.name, kept.reason, kept.quietly))
            } else if let starting {
                plan.keptVolumes.append((volume.name, "run \(starting) of this patina home is starting (its Claude Code is not known yet)", false))
            } else {
                plan.volumes.append(PrunePlan.Leftover(name: volume.name, about: version, bytes: volume.bytes))
            }
        }
    }

    /// Carries out a plan made by `planPrune`. Returns the problems met (the rest still goes).
    public func prune(_ plan: PrunePlan, engine: DockerEngine?) async -> [String] {
        var problems: [String] = []
        for item in plan.remove {
            do {
                try repository.removeRunGitState(of: item.record)
                try FileManager.default.removeItem(at: URL(fileURLWithPath: item.record.runDir))
            } catch {
                problems.append("run \(item.record.id): \(error)")
            }
        }
        if let engine {
            if !plan.containers.isEmpty { await engine.remove(plan.containers) }
            for image in plan.images {
                if let result = try? await engine.run(["image", "rm", image]), !result.succeeded {
                    problems.append("image \(image): " + (result.standardError.split(separator: "\n").first.map(String.init) ?? "not removed"))
                }
            }
            let cache = ImageCache(engine: engine, cacheDirectory: home.appendingPathComponent("cache/images"))
            for volume in plan.volumes {
                if let problem = await ClaudeVolume.remove(volume.name, engine: engine, cache: cache) {
                    problems.append("Claude Code volume \(volume.name): \(problem)")
                }
            }
        }
        for orphan in plan.orphans {
            do { try StorePlacement.remove(orphan) } catch {
                problems.append("store \(orphan.folder.path): \((error as NSError).localizedDescription)")
            }
        }
        return problems
    }

    func existingParts(of record: RunRecord) -> [String] {
        var parts: [String] = []
        if FileManager.default.fileExists(atPath: record.worktree) { parts.append("worktree \(record.worktree)") }
        if repository.branchExists(record.branch) { parts.append("branch \(record.branch)") }
        for tag in record.sessionRefs where (try? repository.sessionRefTarget(tag)) != nil { parts.append("ref \(tag)") }
        for tag in record.sessionRefs where (try? repository.tagTarget(tag)) != nil { parts.append("tag \(tag)") }
        if FileManager.default.fileExists(atPath: record.runDir) { parts.append("run directory \(record.runDir)") }
        return parts
    }

    /// This repository's patina containers whose run is not in flight, and the images only
    /// the runs being pruned used: none that a run kept here or a run of another repository
    /// (under the same patina home) used, none a container uses, and never the newest of
    /// each kind (the next run would only build it again). Pruning no run removes no image.
    func leftoverDocker(engine: DockerEngine, pruning: Set<String>, all: [RunRecord]) async -> ([String], [String]) {
        let live = Set(all.filter(RunLiveness.inFlight).map(\.id))
        var containers: [String] = []
        let listed = (try? await engine.check(["ps", "--all", "--filter", "label=patina.repo=\(store.repositoryKey)",
                                               "--format", "{{.Names}}\t{{.Label \"patina.run\"}}"]))?.standardOutput ?? ""
        for line in listed.split(separator: "\n") {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, !live.contains(parts[1]) else { continue }
            containers.append(parts[0])
        }
        let used = Set(((try? await engine.check(["ps", "--all", "--format", "{{.Image}}"]))?.standardOutput ?? "")
            .split(separator: "\n").map(String.init))
        var candidates = Set(all.filter { pruning.contains($0.id) }.compactMap(\.image))
        candidates.subtract(all.filter { !pruning.contains($0.id) }.compactMap(\.image))
        candidates.subtract(imagesOfOtherRepositories())
        guard !candidates.isEmpty else { return (containers, []) }
        let images = (try? await engine.check(["images", "--filter", "label=patina.image",
                                               "--format", "{{.Repository}}:{{.Tag}}\t{{.CreatedAt}}"]))?.standardOutput ?? ""
        var byKind: [String: [(ref: String, created: String)]] = [:]
        for line in images.split(separator: "\n") {
            let parts = line.split(separator: "\t").map(String.init)
            guard parts.count == 2 else { continue }
            let kind = String(parts[0].split(separator: ":").first ?? "")
            byKind[kind, default: []].append((parts[0], parts[1]))
        }
        var stale: [String] = []
        for (_, list) in byKind {
            let sorted = list.sorted { $0.created > $1.created }
            stale += sorted.dropFirst().map(\.ref).filter { !used.contains($0) && candidates.contains($0) }
        }
        return (containers, stale.sorted())
    }

    /// The images the runs of every other repository in patina's home were made with.
    func imagesOfOtherRepositories() -> Set<String> {
        let repositories = store.root.deletingLastPathComponent()
        var images = Set<String>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: repositories.path)) ?? [] where name != store.repositoryKey {
            let runs = repositories.appendingPathComponent(name).appendingPathComponent("runs")
            for id in (try? FileManager.default.contentsOfDirectory(atPath: runs.path)) ?? [] {
                guard let data = FileManager.default.contents(atPath: runs.appendingPathComponent(id).appendingPathComponent("run.json").path),
                      let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                      let image = object["image"] as? String else { continue }
                images.insert(image)
            }
        }
        return images
    }
}
