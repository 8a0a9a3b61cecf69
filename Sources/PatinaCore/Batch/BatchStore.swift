import Foundation

/// Where batches live: `batches/<batch-id>/` beside `runs/` in the repository's
/// store: batch.json, report.md, report.html.
public struct BatchStore: Sendable {
    public let runs: RunStore

    public init(runs: RunStore) {
        self.runs = runs
    }

    public var directory: URL { runs.root.appendingPathComponent("batches") }
    public func batchDirectory(_ id: String) -> URL { directory.appendingPathComponent(id) }
    public func recordURL(_ id: String) -> URL { batchDirectory(id).appendingPathComponent("batch.json") }

    /// Batches marked running (`save`): recovery reads these only.
    var runningDirectory: URL { directory.appendingPathComponent(".running") }

    /// Atomic: a reader never sees half a record. A running batch is marked in
    /// `batches/.running/`, so recovery finds one whose patina died without reading every batch.
    public func save(_ batch: BatchRecord) throws {
        let url = recordURL(batch.id)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let marker = runningDirectory.appendingPathComponent(batch.id)
        if batch.status == .running {
            try? FileManager.default.createDirectory(at: runningDirectory, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: marker.path, contents: nil)
        }
        try Data(batch.json().utf8 + [0x0A]).write(to: url, options: .atomic)
        if batch.status != .running { try? FileManager.default.removeItem(at: marker) }
    }

    /// The batches marked running (whether or not their patina is alive).
    public func running() -> [BatchRecord] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: runningDirectory.path)) ?? []
        return ids.sorted().compactMap { id in
            guard let batch = try? load(id) else {
                try? FileManager.default.removeItem(at: runningDirectory.appendingPathComponent(id))
                return nil
            }
            return batch
        }
    }

    public func load(_ id: String) throws -> BatchRecord {
        guard RunID.isValid(id), let data = FileManager.default.contents(atPath: recordURL(id).path) else {
            throw RunStore.StoreError.unknownBatch(id)
        }
        do {
            return try RunRecord.decoder.decode(BatchRecord.self, from: data)
        } catch {
            throw RunStore.StoreError.corrupt(recordURL(id).path, "\(error)")
        }
    }

    /// Newest first; unreadable records are skipped.
    public func list() -> [BatchRecord] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return ids.sorted(by: >).compactMap { try? load($0) }
    }

    /// A batch by id, unique prefix or substring, or `latest`.
    public func resolve(_ query: String) throws -> BatchRecord {
        try RunStore.pick(query, from: list(), id: \.id, none: .unknownBatch(query), empty: .unknownBatch(query))
    }
}
