import Foundation
import Testing
@testable import PatinaCore

@Suite("Toolchain detection")
struct ToolchainDetectionTests {
    func detect(_ files: [String: String]) throws -> [Toolchain] {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        for (name, text) in files { try Data(text.utf8).write(to: root.appendingPathComponent(name)) }
        return Toolchains.detect(in: root)
    }

    func one(_ files: [String: String]) throws -> Toolchain {
        let found = try detect(files)
        try #require(found.count == 1, "found \(found.map(\.name))")
        return found[0]
    }

    @Test func python() throws {
        let t = try one(["pyproject.toml": "[project]\nname = \"x\"\nrequires-python = \">=3.9\"\n", "requirements-dev.txt": "pytest\n"])
        #expect(t.name == "python")
        #expect(t.evidence == ["pyproject.toml", "requirements-dev.txt"])
        #expect(t.packages == ["python3", "python3-pip", "python3-venv"])
        #expect(t.requested == ">=3.9" && t.notes.isEmpty)
        #expect(t.preset == "pypi" && t.caches == ["pip"])
        let pinned = try one(["requirements.txt": "", ".python-version": "3.12.1\n"])
        #expect(pinned.requested == "3.12" && pinned.requestedBy == ".python-version")
        #expect(pinned.notes.first?.contains("asks for python 3.12; Debian bookworm's packages give 3.11") == true)
        let uv = try one(["pyproject.toml": "", "uv.lock": "version = 1\n"])
        #expect(uv.pipPackages == ["uv"] && uv.caches == ["pip", "uv"])
        #expect(try one([".python-version": "3.11\n", "setup.py": ""]).notes.isEmpty)
    }

    @Test func node() throws {
        let t = try one(["package.json": #"{"name": "x", "engines": {"node": ">=18"}}"#, "package-lock.json": "{}"])
        #expect(t.name == "node" && t.packages == ["nodejs", "npm"] && t.preset == "npm" && t.caches == ["npm"])
        #expect(t.notes.isEmpty)
        let nvm = try one(["package.json": "{}", ".nvmrc": "v20.11.0\n", "pnpm-lock.yaml": ""])
        #expect(nvm.requested == "20" && nvm.requestedBy == ".nvmrc")
        #expect(nvm.notes.contains { $0.contains("asks for node 20") })
        #expect(nvm.caches == ["npm", "pnpm"] && nvm.notes.contains { $0.contains("pnpm is not packaged") })
        let lts = try one(["package.json": #"{"packageManager": "yarn@1.22.19"}"#, ".node-version": "lts/hydrogen"])
        #expect(lts.requested == "18" && !lts.notes.contains { $0.contains("asks for") })
        #expect(lts.packages.contains("yarnpkg") && lts.caches.contains("yarn"))
        #expect(try one(["package.json": #"{"engines": {"node": "^20 || ^22"}}"#]).notes.count == 1)
    }

    @Test func go() throws {
        let t = try one(["go.mod": "module example.com/x\n\ngo 1.22.3\n\ntoolchain go1.22.5\n"])
        #expect(t.name == "go" && t.requested == "1.22" && t.packages == ["golang-go", "gcc", "libc6-dev"] && t.preset == "golang" && t.caches == ["go"])
        #expect(t.notes.first?.contains("go.mod asks for go 1.22; Debian bookworm's packages give 1.19") == true)
        #expect(try one(["go.mod": "module x\ngo 1.18\n"]).notes.isEmpty)
    }

    @Test func rust() throws {
        let t = try one(["Cargo.toml": "[package]\nname = \"x\"\nrust-version = \"1.70\"\n"])
        #expect(t.name == "rust" && t.packages == ["cargo", "rustc"] && t.preset == "crates" && t.caches == ["cargo"])
        #expect(t.requested == "1.70" && t.notes.count == 1)
        let channel = try one(["Cargo.toml": "", "rust-toolchain.toml": "[toolchain]\nchannel = \"1.60.0\"\n"])
        #expect(channel.requestedBy == "rust-toolchain.toml" && channel.notes.isEmpty)
        #expect(try one(["Cargo.toml": "", "rust-toolchain": "stable\n"]).requested == nil)
    }

    @Test func swiftIsNotPackagedAndSaysSo() throws {
        let t = try one(["Package.swift": "// swift-tools-version:6.0\nimport PackageDescription\n"])
        #expect(t.name == "swift" && t.packages.isEmpty && t.preset == nil && t.caches == ["swiftpm"])
        #expect(t.requested == "6.0")
        #expect(t.notes.contains { $0.contains("Swift is not packaged by Debian bookworm") })
    }

    @Test func rubyJavaAndBuildTools() throws {
        let ruby = try one(["Gemfile": "source 'https://rubygems.org'\nruby \"3.2.2\"\n", "Gemfile.lock": ""])
        #expect(ruby.name == "ruby" && ruby.requested == "3.2" && ruby.preset == "rubygems" && ruby.notes.count == 1)
        let maven = try one(["pom.xml": "<project/>"])
        #expect(maven.name == "java" && maven.packages == ["default-jdk-headless", "maven"] && maven.preset == "maven")
        let gradle = try one(["build.gradle.kts": "", "gradlew": ""])
        #expect(gradle.packages == ["default-jdk-headless"] && gradle.notes.contains { $0.contains("./gradlew") })
        #expect(try one(["Makefile": "all:\n"]).packages == ["make"])
        #expect(try one(["CMakeLists.txt": "", "Makefile": ""]).name == "cmake")
    }

    @Test func severalAtOnceAndNothing() throws {
        #expect(try detect(["README.md": ""]).isEmpty)
        let found = try detect(["Makefile": "", "go.mod": "module x\n", "package.json": "{}", "requirements.txt": ""])
        #expect(found.map(\.name) == ["python", "node", "go", "make"])
    }

    @Test func configAddsOrReplaces() throws {
        let detected = try detect(["package.json": "{}", "Makefile": ""])
        #expect(try Toolchains.resolve(detected: detected, setting: .add(["python"])).map(\.name) == ["python", "node", "make"])
        #expect(try Toolchains.resolve(detected: detected, setting: .only(["make", "go"])).map(\.name) == ["go", "make"])
        #expect(try Toolchains.resolve(detected: detected, setting: .add(["python"])).first?.evidence == [".patina/config.json"])
        #expect(throws: PlanError.self) { try Toolchains.resolve(detected: detected, setting: .add(["cobol"])) }
        do {
            _ = try Toolchains.resolve(detected: [], setting: .only(["cobol"]))
        } catch {
            #expect("\(error)".contains("unknown toolchain \"cobol\" in .patina/config.json (known: python, node, go"))
        }
    }

    @Test func configSettingDecodes() throws {
        let add = try JSONDecoder().decode(PatinaConfig.self, from: Data(#"{"toolchains": ["python"]}"#.utf8))
        #expect(add.toolchains == .add(["python"]))
        let only = try JSONDecoder().decode(PatinaConfig.self, from: Data(#"{"toolchains": {"only": ["go"]}}"#.utf8))
        #expect(only.toolchains == .only(["go"]))
    }

    @Test(arguments: [
        ("3.11", ">=3.9", true), ("3.11", ">=3.12", false), ("3.11", ">=3.8,<4", true), ("3.11", "~=3.10", true),
        ("3.11", "==3.11.*", true), ("18.19", "^18", true), ("18.19", "^20 || ^22", false), ("18.19", "18.x", true),
        ("18.19", ">=16 <19", true), ("18.19", "~18.2", false), ("18.19", "*", true), ("3.11", "!=3.11", false),
    ])
    func versionRanges(_ version: String, _ constraint: String, _ met: Bool) {
        #expect(Version.satisfies(Version(version), constraint) == met)
    }
}
