import Foundation

/// The top of a repository as the toolchain detectors see it: its file names and, on
/// demand, a file's text.
struct RepositoryFiles {
    let root: URL
    let names: Set<String>

    init(root: URL) {
        self.root = root
        names = Set((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [])
    }

    func contains(_ name: String) -> Bool { names.contains(name) }

    func read(_ name: String) -> String? {
        guard names.contains(name) else { return nil }
        return try? String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)
    }
}

/// How a repository shows it needs one toolchain. A new toolchain is a `Toolchains.Kind`
/// (its packages, preset, caches) and one detector here, listed in `Toolchains.detectors`.
protocol ToolchainDetector: Sendable {
    /// The toolchain the files show, or nil.
    func detect(_ files: RepositoryFiles) -> Toolchain?
}

extension Toolchains {
    /// In the order of `known`; each one looks at the files on its own.
    static let detectors: [any ToolchainDetector] = [
        PythonDetector(), NodeDetector(), GoDetector(), RustDetector(), SwiftDetector(), RubyDetector(), JavaDetector(),
        BuildToolDetector(),
    ]
}

struct PythonDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        let requirements = files.names.filter { $0.hasPrefix("requirements") && $0.hasSuffix(".txt") }.sorted()
        let evidence = ["pyproject.toml", "setup.py", "setup.cfg", "uv.lock", "Pipfile"].filter(files.contains) + requirements
        guard !evidence.isEmpty else { return nil }
        var t = Toolchains.make("python", evidence: evidence)
        if let pinned = files.read(".python-version")?.firstLine, !pinned.isEmpty {
            t = Toolchains.pin(t, requested: Toolchains.majorMinor(pinned), by: ".python-version")
        } else if let constraint = files.read("pyproject.toml").flatMap({ Toolchains.tomlString($0, key: "requires-python") }) {
            t = Toolchains.constrain(t, constraint: constraint, by: "pyproject.toml requires-python")
        }
        if files.contains("uv.lock") {
            t.pipPackages.append("uv")
            t.caches.append("uv")
            t.notes.append("uv.lock: uv is not packaged by Debian bookworm; the image gets it from the package index")
        }
        if files.contains("poetry.lock") {
            t.notes.append("poetry.lock: poetry comes from the package index (`pip install poetry`), not from Debian")
        }
        return t
    }
}

struct NodeDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        guard let package = files.read("package.json") else { return nil }
        var t = Toolchains.make("node", evidence: ["package.json"])
        let manifest = (try? JSONSerialization.jsonObject(with: Data(package.utf8))) as? [String: Any]
        if let file = [".nvmrc", ".node-version"].first(where: files.contains), let pinned = files.read(file)?.firstLine, !pinned.isEmpty {
            t = Toolchains.pinNode(t, pinned, by: file)
        } else if let engines = manifest?["engines"] as? [String: Any], let node = engines["node"] as? String {
            t = Toolchains.constrain(t, constraint: node, by: "package.json engines.node")
        }
        let declared = (manifest?["packageManager"] as? String)?.split(separator: "@").first.map(String.init)
        if files.contains("pnpm-lock.yaml") || declared == "pnpm" {
            t.evidence += files.contains("pnpm-lock.yaml") ? ["pnpm-lock.yaml"] : []
            t.caches.append("pnpm")
            t.notes.append("pnpm is not packaged by Debian bookworm; `npx pnpm` fetches it through the npm preset")
        }
        if files.contains("yarn.lock") || declared == "yarn" {
            t.evidence += files.contains("yarn.lock") ? ["yarn.lock"] : []
            t.packages.append("yarnpkg")
            t.caches.append("yarn")
            t.notes.append("yarn is Debian's yarnpkg (yarn 1); later yarn versions come with corepack, which Debian bookworm does not package")
        }
        return t
    }
}

struct GoDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        guard let goMod = files.read("go.mod") else { return nil }
        var t = Toolchains.make("go", evidence: ["go.mod"])
        if let version = goMod.split(separator: "\n").lazy.map({ $0.trimmingCharacters(in: .whitespaces) })
            .first(where: { $0.hasPrefix("go ") }).map({ String($0.dropFirst(3)).trimmingCharacters(in: .whitespaces) }) {
            t = Toolchains.pin(t, requested: Toolchains.majorMinor(version), by: "go.mod")
        }
        return t
    }
}

struct RustDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        guard files.contains("Cargo.toml") else { return nil }
        var t = Toolchains.make("rust", evidence: ["Cargo.toml"])
        if let toolchain = files.read("rust-toolchain.toml").flatMap({ Toolchains.tomlString($0, key: "channel") }) ?? files.read("rust-toolchain")?.firstLine,
           let first = toolchain.first, first.isNumber {
            t = Toolchains.pin(t, requested: Toolchains.majorMinor(toolchain),
                               by: files.contains("rust-toolchain.toml") ? "rust-toolchain.toml" : "rust-toolchain")
        } else if let msrv = files.read("Cargo.toml").flatMap({ Toolchains.tomlString($0, key: "rust-version") }) {
            t = Toolchains.pin(t, requested: Toolchains.majorMinor(msrv), by: "Cargo.toml rust-version")
        }
        return t
    }
}

struct SwiftDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        guard let manifest = files.read("Package.swift") else { return nil }
        var t = Toolchains.make("swift", evidence: ["Package.swift"])
        if let line = manifest.firstLine, let range = line.range(of: #"swift-tools-version:\s*([0-9.]+)"#, options: .regularExpression) {
            let version = line[range].split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            t.requested = Toolchains.majorMinor(version)
            t.requestedBy = "Package.swift"
        }
        t.notes.append("Swift is not packaged by Debian bookworm: give the repository a devcontainer.json with a Swift image (e.g. swift:6.0), or pass --base-image")
        t.notes.append("SwiftPM fetches dependencies from their git hosts: allow them (e.g. --preset github)")
        return t
    }
}

struct RubyDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        guard let gemfile = files.read("Gemfile") else { return nil }
        var t = Toolchains.make("ruby", evidence: ["Gemfile"] + (files.contains("Gemfile.lock") ? ["Gemfile.lock"] : []))
        if let pinned = files.read(".ruby-version")?.firstLine, !pinned.isEmpty {
            t = Toolchains.pin(t, requested: Toolchains.majorMinor(pinned), by: ".ruby-version")
        } else if let range = gemfile.range(of: #"(?m)^\s*ruby\s+["']([0-9.]+)["']"#, options: .regularExpression) {
            let version = gemfile[range].split(whereSeparator: { $0 == "\"" || $0 == "'" }).dropFirst().first.map(String.init) ?? ""
            t = Toolchains.pin(t, requested: Toolchains.majorMinor(version), by: "Gemfile")
        }
        return t
    }
}

struct JavaDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        let gradle = ["build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts"].filter(files.contains)
        guard files.contains("pom.xml") || !gradle.isEmpty else { return nil }
        var t = Toolchains.make("java", evidence: (files.contains("pom.xml") ? ["pom.xml"] : []) + gradle)
        if files.contains("pom.xml") { t.packages.append("maven") }
        if !gradle.isEmpty {
            if files.contains("gradlew") {
                t.notes.append("./gradlew downloads Gradle from services.gradle.org (in the maven preset)")
            } else {
                t.packages.append("gradle")
                t.notes.append("Debian bookworm's gradle is 4.4; a project needing a later one should commit the Gradle wrapper")
            }
        }
        return t
    }
}

/// CMake (which brings make) or else make: one build tool, not both.
struct BuildToolDetector: ToolchainDetector {
    func detect(_ files: RepositoryFiles) -> Toolchain? {
        if files.contains("CMakeLists.txt") { return Toolchains.make("cmake", evidence: ["CMakeLists.txt"]) }
        if let makefile = ["Makefile", "makefile", "GNUmakefile"].first(where: files.contains) {
            return Toolchains.make("make", evidence: [makefile])
        }
        return nil
    }
}
