import Foundation
import PatinaGit
import PatinaCore

/// A throwaway git repository (made with the git CLI) and its own patina home.
public final class TemporaryRepository: @unchecked Sendable {
    public let root: URL
    public let path: URL
    public let home: URL

    /// `under`: the directory to make it in (default: the temporary directory); `name`: the
    /// repository's folder name.
    public init(files: [String: String] = ["README.md": "# demo\n"], under parent: URL? = nil, name: String = "repo") throws {
        root = (parent ?? FileManager.default.temporaryDirectory).appendingPathComponent("patina-test-\(UUID().uuidString.prefix(8))")
        path = root.appendingPathComponent(name)
        home = root.appendingPathComponent("patina-home")
        try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        try git("init", "-q", "-b", "main")
        try git("config", "user.name", "Test User")
        try git("config", "user.email", "test@example.invalid")
        for (name, content) in files { try write(name, content) }
        try git("add", "-A")
        try git("commit", "-q", "-m", "initial commit")
    }

    deinit {
        // A store placed in patina's neutral folder (StorePlacement) goes with the home.
        let repos = home.appendingPathComponent("repos")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: repos.path)) ?? [] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: repos.appendingPathComponent(name).path) {
                if (try? FileManager.default.removeItem(atPath: target)) == nil { DeepRemoval.remove(target) }
            }
        }
        if (try? FileManager.default.removeItem(at: root)) == nil { DeepRemoval.remove(root.path) }
    }

    /// The repository's store in patina's home, its link followed (StorePlacement): where a
    /// walk finds the runs' files.
    public var store: URL {
        RunStore(home: home, repositoryCommonDirectory: path.appendingPathComponent(".git")).root.resolvingSymlinksInPath()
    }

    public func write(_ relative: String, _ content: String) throws {
        let url = path.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(content.utf8).write(to: url)
    }

    @discardableResult
    public func git(_ args: String...) throws -> String {
        try ProcessRunner.check(["git", "-C", path.path] + args).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func gitResult(_ args: [String]) throws -> ProcessRunner.Output {
        try ProcessRunner.run(["git", "-C", path.path] + args)
    }

    /// Every file under .git except objects and logs, with contents: to prove
    /// hooks, config and refs are byte-for-byte unchanged.
    public func gitMetadataSnapshot() throws -> [String: Data] {
        let gitDir = path.appendingPathComponent(".git")
        var snapshot: [String: Data] = [:]
        let walker = FileManager.default.enumerator(atPath: gitDir.path)
        while let relative = walker?.nextObject() as? String {
            if relative.hasPrefix("objects") || relative.hasPrefix("logs") || relative.hasPrefix("worktrees")
                || relative == "index" || relative.hasPrefix("refs/heads/patina")
                || relative.hasPrefix("refs/session-") || relative.hasPrefix("refs/tags/session-")
                || relative == "packed-refs" { continue }
            var isDirectory: ObjCBool = false
            let url = gitDir.appendingPathComponent(relative)
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            snapshot[relative] = try Data(contentsOf: url)
        }
        return snapshot
    }
}
