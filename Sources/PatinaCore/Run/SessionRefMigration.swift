import Foundation
import PatinaGit

/// Runs recorded before session marks left `refs/tags/` had `session-<id>-start/-end` as
/// tags, which changed what `git describe --tags`, setuptools-scm and `git push --tags`
/// saw in the user's repository. The first patina command after the change moves each
/// such tag of a run in this repository's store to `refs/session-<id>-…` (same short name,
/// so `git diff session-<id>-start..session-<id>-end` keeps working), then marks the store
/// so it never looks again. Tags of that shape that patina did not make are left alone.
public enum SessionRefMigration {
    /// The store's mark that the migration ran.
    static func marker(_ store: RunStore) -> URL { store.root.appendingPathComponent("session-refs-moved") }

    /// Returns the names moved (empty when there was nothing to do).
    @discardableResult
    public static func run(repository: Repository, store: RunStore) -> (moved: [String], problems: [String]) {
        let fm = FileManager.default
        // No runs here: nothing of patina's to move, and nothing to mark.
        guard fm.fileExists(atPath: store.runsDirectory.path), !fm.fileExists(atPath: marker(store).path) else { return ([], []) }
        var moved: [String] = [], problems: [String] = []
        let names = (try? repository.tagNames(prefix: "session-")) ?? []
        for name in names {
            guard let id = runID(ofSessionTag: name), fm.fileExists(atPath: store.runDirectory(id).path) else { continue }
            do {
                if try repository.moveTagToSessionRef(name, message: "patina: session tag moved out of refs/tags") { moved.append(name) }
            } catch {
                problems.append("could not move tag \(name) to refs/\(name): \(error)")
            }
        }
        // A problem is tried again by the next command.
        if problems.isEmpty { _ = fm.createFile(atPath: marker(store).path, contents: Data("moved \(moved.count)\n".utf8)) }
        return (moved, problems)
    }

    /// `session-<id>-start` / `session-<id>-end` → `<id>`.
    static func runID(ofSessionTag name: String) -> String? {
        guard name.hasPrefix("session-") else { return nil }
        for suffix in ["-start", "-end"] where name.hasSuffix(suffix) {
            let id = String(name.dropFirst("session-".count).dropLast(suffix.count))
            if !id.isEmpty && !id.contains("/") { return id }
        }
        return nil
    }
}
