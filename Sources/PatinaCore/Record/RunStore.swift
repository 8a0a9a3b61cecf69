import Foundation
import PatinaGit

/// Where runs live: `$PATINA_HOME` (default `$XDG_DATA_HOME/patina`, else
/// `~/.local/share/patina`), one folder per repository:
///
///     repos/<name>-<hash>/runs/<run-id>/      run.json, logs, rendered configs
///     repos/<name>-<hash>/worktrees/<run-id>/ the run's worktree
///
/// Outside the repository's working tree and its `.git`, so neither the agent
/// nor a `git clean` in the checkout can reach another run's record. `repos/<name>-<hash>`
/// is usually a link to a neutral folder where the files lie (`StorePlacement`).
public struct RunStore: Sendable {
    public let root: URL
    public let repositoryKey: String
    /// Whether this process still owns run `id`'s record (nil: always). A Slurm task's
    /// patina stops writing a run's record once the submitting patina handed the task's
    /// next start a new run: a node back from a partition cannot overwrite what the
    /// submitting patina collected.
    public var owns: (@Sendable (String) -> Bool)?

    /// `save` was refused: another patina settled the run since.
    public struct Superseded: Error, CustomStringConvertible {
        public let id: String
        public var description: String { "run \(id) was collected by the submitting patina after its slurm task was requeued: this patina leaves its record alone" }
    }

    public init(home: URL, repositoryCommonDirectory: URL) {
        let canonical = repositoryCommonDirectory.standardizedFileURL.resolvingSymlinksInPath()
        let repoDir = canonical.lastPathComponent == ".git" ? canonical.deletingLastPathComponent() : canonical
        let name = RunID.slug(repoDir.lastPathComponent, maxLength: 24)
        self.repositoryKey = (name.isEmpty ? "repo" : name) + "-" + Self.fnv1a(canonical.path)
        self.root = home.appendingPathComponent("repos").appendingPathComponent(repositoryKey)
    }

    /// The store whose files lie at `root` (a neutral folder seen without its link).
    init(root: URL) {
        self.root = root
        self.repositoryKey = root.lastPathComponent
    }

    public static func home(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let explicit = environment["PATINA_HOME"], !explicit.isEmpty {
            return URL(fileURLWithPath: explicit, isDirectory: true)
        }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent("patina")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".local/share/patina")
    }

    /// The store of the repository around the current directory.
    public static func forCurrentRepository() throws -> RunStore {
        let repository = try Repository.discover(from: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        return RunStore(home: home(), repositoryCommonDirectory: repository.commonDirectory)
    }

    public var runsDirectory: URL { root.appendingPathComponent("runs") }
    public var worktreesDirectory: URL { root.appendingPathComponent("worktrees") }

    public func runDirectory(_ id: String) -> URL { runsDirectory.appendingPathComponent(id) }
    /// A `patina shell`'s scratch directory: a shell keeps no record, so it is not among the runs.
    public func shellDirectory(_ id: String) -> URL { root.appendingPathComponent("shells").appendingPathComponent(id) }
    public func worktree(_ id: String) -> URL { worktreesDirectory.appendingPathComponent(id) }
    public func recordURL(_ id: String) -> URL { runDirectory(id).appendingPathComponent("run.json") }

    /// Writes run.json atomically, so a reader never sees half a record. A `running` record
    /// is marked in `runningDirectory` before it is written; the mark goes once its record
    /// says otherwise.
    public func save(_ record: RunRecord) throws {
        if let owns, !owns(record.id) { throw Superseded(id: record.id) }
        let url = recordURL(record.id)
        if record.status == .running { try markRunning(record.id) }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(record.json().utf8 + [0x0A]).write(to: url, options: .atomic)
        if record.status != .running { clearRunning(record.id) }
    }

    public func load(_ id: String) throws -> RunRecord {
        // Ids become paths: only the shape RunID makes is looked up.
        guard RunID.isValid(id) else { throw StoreError.unknownRun(id) }
        let url = recordURL(id)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw StoreError.unknownRun(id) }
        do {
            return try RunRecord.decoder.decode(RunRecord.self, from: data)
        } catch {
            throw StoreError.corrupt(url.path, "\(error)")
        }
    }

    /// Runs whose sandbox started before their record exists (the network holder starts
    /// while the run is planned): one file per run id holding the pid of its patina,
    /// written before the holder starts, removed once the record exists or the holder is
    /// gone. The next patina command removes what a dead patina left (Recovery).
    public var pendingDirectory: URL { root.appendingPathComponent("pending") }

    /// The file holds `PID HOST`: a pid means something only on the host that wrote it (a
    /// Slurm node shares this directory with other hosts).
    public func markPending(_ id: String, pid: Int32, host: String = RunExecutor.thisHost) throws {
        try FileManager.default.createDirectory(at: pendingDirectory, withIntermediateDirectories: true)
        try Data("\(pid) \(host)\n".utf8).write(to: pendingDirectory.appendingPathComponent(id), options: .atomic)
    }

    public func clearPending(_ id: String) {
        try? FileManager.default.removeItem(at: pendingDirectory.appendingPathComponent(id))
    }

    /// Every pending run: its id, the pid of the patina that started it (nil when unreadable)
    /// and the host it runs on (nil: written before hosts were recorded, this one).
    public func pending() -> [(id: String, pid: Int32?, host: String?)] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: pendingDirectory.path)) ?? []
        return ids.filter(RunID.isValid).sorted().map { id in
            let text = (try? String(contentsOf: pendingDirectory.appendingPathComponent(id), encoding: .utf8)) ?? ""
            let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
            return (id, fields.first.flatMap { Int32($0) }, fields.count > 1 ? fields[1] : nil)
        }
    }

    /// Runs collected by a patina on another host than the one they ran on (a Slurm task
    /// that died: its record and branch are on the shared filesystem, its containers on its
    /// node): `left-on-host/HOST/RUN`, one empty file each. The next patina command on HOST
    /// removes the run's containers there (Recovery); no other host's patina touches them.
    public var leftOnHostDirectory: URL { root.appendingPathComponent("left-on-host") }

    static func hostComponent(_ host: String) -> String {
        String(host.map { $0 == "/" || $0.isWhitespace ? "_" : $0 })
    }

    public func markLeft(_ id: String, onHost host: String) throws {
        let directory = leftOnHostDirectory.appendingPathComponent(Self.hostComponent(host))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: directory.appendingPathComponent(id).path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: directory.appendingPathComponent(id).path])
        }
    }

    /// Runs whose containers were left on `host`.
    public func leftOnHost(_ host: String = RunExecutor.thisHost) -> [String] {
        let directory = leftOnHostDirectory.appendingPathComponent(Self.hostComponent(host))
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter(RunID.isValid).sorted()
    }

    public func clearLeft(_ id: String, onHost host: String = RunExecutor.thisHost) {
        try? FileManager.default.removeItem(at: leftOnHostDirectory.appendingPathComponent(Self.hostComponent(host)).appendingPathComponent(id))
    }

    /// One empty file per run whose record says `running`, so that every command's recovery
    /// reads those records only (reading all of them cost every command ~0.05 ms a run).
    public var runningDirectory: URL { root.appendingPathComponent("running") }

    private func markRunning(_ id: String) throws {
        try FileManager.default.createDirectory(at: runningDirectory, withIntermediateDirectories: true)
        try Data().write(to: runningDirectory.appendingPathComponent(id))
    }

    /// For a run whose directory is removed with its record (it created nothing).
    public func clearRunning(_ id: String) {
        try? FileManager.default.removeItem(at: runningDirectory.appendingPathComponent(id))
    }

    /// The runs recorded as `running`, newest first: what every command's recovery looks at.
    /// A store written before the marks existed is read whole once, and marked. A mark
    /// whose record says otherwise goes; one without a record only once it is a minute old
    /// (its record may be about to be written).
    public func running() -> [RunRecord] {
        let fm = FileManager.default
        guard let marked = try? fm.contentsOfDirectory(atPath: runningDirectory.path) else {
            return markEveryRunning()
        }
        return marked.filter(RunID.isValid).sorted(by: >).compactMap { id -> RunRecord? in
            let mark = runningDirectory.appendingPathComponent(id)
            guard fm.fileExists(atPath: recordURL(id).path) else {
                let made = (try? fm.attributesOfItem(atPath: mark.path)[.modificationDate] as? Date) ?? .distantPast
                if Date().timeIntervalSince(made) > 60 { try? fm.removeItem(at: mark) }
                return nil
            }
            guard let record = try? load(id) else { return nil }
            if record.status != .running { try? fm.removeItem(at: mark) }
            return record.status == .running ? record : nil
        }
    }

    /// Every record read (only those with the word decoded), the running ones marked.
    private func markEveryRunning() -> [RunRecord] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: runsDirectory.path)) ?? []
        let word = Data("\"running\"".utf8)
        let found = ids.sorted(by: >).compactMap { id -> RunRecord? in
            guard RunID.isValid(id), let data = FileManager.default.contents(atPath: recordURL(id).path),
                  data.range(of: word) != nil else { return nil }
            return (try? load(id)).flatMap { $0.status == .running ? $0 : nil }
        }
        // Only where the store exists: a command in a repository with no runs creates nothing.
        // The folder that makes the marks count exists only once every one was made.
        guard FileManager.default.fileExists(atPath: runsDirectory.path) else { return found }
        let staging = root.appendingPathComponent("running.new")
        do {
            try? FileManager.default.removeItem(at: staging)
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
            for record in found { try Data().write(to: staging.appendingPathComponent(record.id)) }
            try FileManager.default.moveItem(at: staging, to: runningDirectory)
        } catch {
            try? FileManager.default.removeItem(at: staging)
            // Another patina made the folder meanwhile (a new run's mark): marked into it.
            for record in found { try? markRunning(record.id) }
        }
        return found
    }

    /// All runs of the repository, newest first. Unreadable records are skipped.
    public func list() -> [RunRecord] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: runsDirectory.path)) ?? []
        return ids.sorted(by: >).compactMap { try? load($0) }
    }

    /// Finds a run by full id, its branch, a unique prefix or substring of the id, or `latest`.
    public func resolve(_ query: String) throws -> RunRecord {
        try Self.pick(query, from: list(), id: \.id, alsoExact: { $0.branch == query }, none: .unknownRun(query), empty: .noRuns)
    }

    /// The one record `query` names: `latest`/`last` (the first, newest), an exact id
    /// (or what `alsoExact` accepts), else a unique prefix or substring of an id.
    static func pick<Record>(
        _ query: String, from all: [Record], id: (Record) -> String, alsoExact: (Record) -> Bool = { _ in false },
        none: StoreError, empty: StoreError
    ) throws -> Record {
        if query == "latest" || query == "last" {
            guard let first = all.first else { throw empty }
            return first
        }
        if let exact = all.first(where: { id($0) == query || alsoExact($0) }) { return exact }
        let matches = all.filter { id($0).hasPrefix(query) || id($0).contains(query) }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw none
        default: throw StoreError.ambiguous(query, matches.prefix(5).map(id))
        }
    }

    public enum StoreError: BadInput, CustomStringConvertible {
        case unknownRun(String)
        case ambiguous(String, [String])
        case corrupt(String, String)
        case noRuns
        case unknownBatch(String)

        public var description: String {
            switch self {
            case .unknownRun(let q): return "no run matches \"\(q)\"; `patina runs` lists this repository's runs"
            case .ambiguous(let q, let ids): return "\"\(q)\" matches several runs (\(ids.joined(separator: ", "))); give more of the id"
            case .corrupt(let path, let why): return "run record \(path) is unreadable: \(why)"
            case .noRuns: return "this repository has no patina runs yet"
            case .unknownBatch(let q): return "no batch matches \"\(q)\"; `patina batches` lists this repository's batches"
            }
        }
    }

    /// A short stable hash for folder names (not for security).
    static func fnv1a(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16).leftPadded(to: 16).prefix(10).description
    }
}

extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
