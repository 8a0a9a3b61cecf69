import Foundation

/// An image described by its Dockerfile and the files copied into its build
/// context. The tag is a content hash of all of it, so an unchanged image is
/// reused and any change builds a new one.
public struct ImageRecipe: Sendable {
    public var repository: String
    public var dockerfile: String
    /// Files copied into the build context: name in the context (may hold `/`) -> source path.
    public var files: [String: URL]
    /// Files written into the build context from text: name -> contents.
    public var contents: [String: String]
    /// Variables handed to the build by name (`--build-arg NAME`): Docker's predefined
    /// proxy arguments, which stay out of the image's history.
    public var passedBuildArguments: [String]

    public init(repository: String, dockerfile: String, files: [String: URL] = [:], contents: [String: String] = [:],
                passedBuildArguments: [String] = []) {
        self.repository = repository
        self.dockerfile = dockerfile
        self.files = files
        self.contents = contents
        self.passedBuildArguments = passedBuildArguments
    }
}

/// Builds images by content hash, reusing what is already there.
public struct ImageCache: Sendable {
    public let engine: DockerEngine
    public let cacheDirectory: URL

    public init(engine: DockerEngine, cacheDirectory: URL) {
        self.engine = engine
        self.cacheDirectory = cacheDirectory
    }

    /// `repository:<hash>` for the recipe; hashing large files is cached by
    /// path, size and modification time (`rememberHashes: false` writes nothing).
    public func tag(for recipe: ImageRecipe, rememberHashes: Bool = true) async throws -> String {
        var manifest = "dockerfile \(try await Self.sha256(text: recipe.dockerfile))\n"
        for name in recipe.files.keys.sorted() {
            manifest += "file \(name) \(try await sha256(file: recipe.files[name]!, remember: rememberHashes))\n"
        }
        for name in recipe.contents.keys.sorted() {
            manifest += "content \(name) \(recipe.contents[name]!.utf8.count)\n\(recipe.contents[name]!)\n"
        }
        let digest = try await Self.sha256(text: manifest)
        return "\(recipe.repository):\(digest.prefix(16))"
    }

    /// Returns the recipe's tag, building the image first when it does not exist
    /// (`beforeBuilding` runs just before a build, with the tag).
    public func ensure(
        _ recipe: ImageRecipe, labels: [String: String],
        beforeBuilding: @escaping @Sendable (String) async throws -> Void = { _ in }
    ) async throws -> String {
        let tag = try await tag(for: recipe)
        if await engine.imageExists(tag) { return tag }
        // Runs of one process that need the same image wait for one build.
        try await ImageBuilds.shared.once(tag) {
            if await engine.imageExists(tag) { return }
            // Other patina processes of this host (Slurm tasks starting on one node) too.
            let lock = try await HostLock.acquire("image-" + tag)
            defer { withExtendedLifetime(lock) {} }
            if await engine.imageExists(tag) { return }
            try await beforeBuilding(tag)
            try await build(recipe, tag: tag, labels: labels)
        }
        return tag
    }

    private func build(_ recipe: ImageRecipe, tag: String, labels: [String: String]) async throws {
        let context = cacheDirectory.appendingPathComponent("build-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: context, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: context) }
        let dockerfile = context.appendingPathComponent("Dockerfile")
        try Data(recipe.dockerfile.utf8).write(to: dockerfile)
        for (name, source) in recipe.files {
            let target = context.appendingPathComponent(name)
            try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            // A hard link avoids copying a large binary; fall back to a copy across filesystems.
            if (try? fm.linkItem(at: source, to: target)) == nil {
                try fm.copyItem(at: source, to: target)
            }
        }
        for (name, text) in recipe.contents {
            let target = context.appendingPathComponent(name)
            try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: target)
        }
        try await engine.build(context: context, dockerfile: dockerfile, tag: tag, labels: labels,
                               passedBuildArguments: recipe.passedBuildArguments)
    }

    public static func sha256(text: String) async throws -> String {
        SHA256.hex(of: Array(text.utf8))
    }

    /// A file's SHA-256, remembered like the tags' (by path, size and modification time).
    /// `remember: false` (`patina detect`) writes nothing, though it reads what was remembered.
    public func digest(of file: URL, remember: Bool = true) async throws -> String {
        try await sha256(file: file, remember: remember)
    }

    private func sha256(file: URL, remember: Bool) async throws -> String {
        let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
        let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let key = "\(file.standardizedFileURL.path)|\(size)|\(mtime)"
        let cacheFile = cacheDirectory.appendingPathComponent("hashes.json")
        var cache = (try? JSONDecoder().decode([String: String].self, from: Data(contentsOf: cacheFile))) ?? [:]
        if let hit = cache[key] { return hit }
        // Small files in-process; a large one (Claude Code's binary) through sha256sum, once.
        let digest = size >= 0 && size < 16 << 20
            ? SHA256.hex(of: try Data(contentsOf: file))
            : String(try await Command.check(["sha256sum", file.path]).standardOutput.prefix(64))
        guard remember else { return digest }
        cache[key] = digest
        try? FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        try? JSONEncoder().encode(cache).write(to: cacheFile, options: .atomic)
        return digest
    }
}

/// Image builds in flight in this process, by tag: a second caller waits for
/// the first one's build instead of starting an identical one.
public actor ImageBuilds {
    public static let shared = ImageBuilds()
    private var inFlight: [String: Task<Void, Error>] = [:]

    public func once(_ tag: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        if let running = inFlight[tag] {
            try await running.value
            return
        }
        let task = Task { try await body() }
        inFlight[tag] = task
        defer { inFlight[tag] = nil }
        try await task.value
    }
}
