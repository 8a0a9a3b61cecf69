import Foundation
import PatinaSandbox

/// Claude Code's binary, one copy for the agent images of every repository: a Docker volume
/// per binary content (`patina-claude-<sha256 prefix>`) holding `claude`, mounted read-only
/// at /patina/claude, where the image's /usr/local/bin/claude points. Docker shares a layer
/// only between images with the same parents, so a binary copied into each image was a new
/// 378 MB layer per repository base; the volume is one, and its path is Docker's own
/// (/var/lib/docker/volumes/…), so the sandbox's mount table names nothing of the user.
enum ClaudeVolume {
    static let target = "/patina/claude"
    static let label = "patina.claude"

    static func name(digest: String) -> String { "patina-claude-\(digest.prefix(16))" }

    /// The volume holding `binary`, filled (once per binary per engine) by a short container
    /// of `image` when it is new; later runs only look the volume up. The fill copies to a
    /// temporary name and renames, so a fill cut short leaves no `claude` half-written, and
    /// patina remembers each volume it saw filled by its creation time (a volume removed and
    /// made again is filled again).
    /// The volume's name for `binary`, and whether patina saw it filled: one lookup, which
    /// the image step makes while it looks up (or builds) the agent's image.
    static func lookup(binary: URL, engine: DockerEngine, cache: ImageCache) async throws -> (name: String, filled: Bool) {
        let name = name(digest: try await cache.digest(of: binary))
        return (name, await filled(name, engine: engine, cache: cache))
    }

    static func marker(_ name: String, cache: ImageCache) -> URL {
        cache.cacheDirectory.appendingPathComponent("claude-volumes").appendingPathComponent(name)
    }

    static func filled(_ name: String, engine: DockerEngine, cache: ImageCache) async -> Bool {
        guard let created = await engine.volumeCreated(name) else { return false }
        return (try? String(contentsOf: marker(name, cache: cache), encoding: .utf8)) == created
    }

    /// Fills the volume `name` with `binary` (once per binary per engine) by a short container
    /// of `image`. The fill copies to a temporary name and renames, so a fill cut short leaves
    /// no `claude` half-written, and patina remembers each volume it saw filled by its creation
    /// time (a volume removed and made again is filled again).
    static func fill(_ name: String, binary: URL, version: String?, image: String, engine: DockerEngine, cache: ImageCache) async throws -> String {
        try await ImageBuilds.shared.once("volume-" + name) {
            let lock = try await HostLock.acquire("volume-" + name)
            defer { withExtendedLifetime(lock) {} }
            if await filled(name, engine: engine, cache: cache) { return }
            try await engine.check(["volume", "create", "--label", "\(label)=\(version ?? "unknown")", name])
            let script = #"""
                test -x /dst/claude && exit 0
                cp /src/claude "/dst/.claude.$$" && chmod 0755 "/dst/.claude.$$" && mv "/dst/.claude.$$" /dst/claude
                """#
            let result = try await engine.run([
                "run", "--rm", "--network", "none", "--user", "0:0", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "--entrypoint", "/bin/sh",
                "--mount", Mount(volume: name, target: "/dst", readOnly: false).argument,
                "--mount", Mount(source: binary.path, target: "/src/claude", readOnly: true).argument,
                image, "-c", script,
            ])
            guard result.succeeded else {
                throw ImageBuildFailure(tag: name, exitCode: result.exitCode,
                                        output: "putting Claude Code into the volume \(name) failed: " + result.standardError)
            }
            guard let created = await engine.volumeCreated(name) else { return }
            let marker = marker(name, cache: cache)
            try? FileManager.default.createDirectory(at: marker.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? Data(created.utf8).write(to: marker, options: .atomic)
        }
        return name
    }

    static func mount(_ name: String) -> Mount { Mount(volume: name, target: target, readOnly: true) }
}

/// `patina prune`'s view of the Claude Code volumes: every one patina made on this engine, which
/// containers use each, and what it takes on disk.
extension ClaudeVolume {
    struct Listed: Sendable {
        var name: String
        var version: String
        var bytes: Int
        var usedBy: [String]
    }

    /// Patina's volumes (by their label and name), nil when docker did not answer.
    static func listed(engine: DockerEngine) async -> [Listed]? {
        guard let volumes = try? await engine.check(["volume", "ls", "--filter", "label=\(label)",
                                                     "--format", "{{.Name}}\t{{.Label \"\(label)\"}}\t{{.Mountpoint}}"]) else { return nil }
        var listed: [Listed] = []
        for line in volumes.standardOutput.split(separator: "\n") {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, parts[0].hasPrefix("patina-claude-") else { continue }
            // A container that cannot be listed counts as a user: the volume stays.
            let users = (try? await engine.check(["ps", "--all", "--filter", "volume=\(parts[0])", "--format", "{{.Names}}"]))
                .map { $0.standardOutput.split(separator: "\n").map(String.init) } ?? ["(docker ps did not answer)"]
            listed.append(Listed(name: parts[0], version: parts[1], bytes: DiskUsage.allocated(URL(fileURLWithPath: parts[2])), usedBy: users))
        }
        return listed
    }

    /// Removes a volume no container uses (docker refuses one that is used) and forgets it was filled.
    static func remove(_ name: String, engine: DockerEngine, cache: ImageCache) async -> String? {
        let lock = try? await HostLock.acquire("volume-" + name)
        defer { withExtendedLifetime(lock) {} }
        guard let result = try? await engine.run(["volume", "rm", name]) else { return "docker did not answer" }
        guard result.succeeded else { return result.standardError.split(separator: "\n").first.map(String.init) ?? "not removed" }
        try? FileManager.default.removeItem(at: marker(name, cache: cache))
        return nil
    }
}
