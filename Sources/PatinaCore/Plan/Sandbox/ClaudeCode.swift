import Foundation
import PatinaSandbox

/// The Claude Code that goes into the agent's image, and where it came from:
/// `--agent-binary` > `agent_binary` in `.patina/config.json` > the user's own
/// `claude` (the native installer's standalone binary, found on PATH or in its
/// usual places, for this machine's architecture) > npm at a pinned version.
public struct ClaudeCode: Sendable, Equatable {
    public enum Source: String, Sendable, Codable {
        case flag = "--agent-binary"
        case config = "agent_binary"
        case host = "installed"
        case npm
    }

    public var source: Source
    /// The executable copied into the image (links followed); nil for npm.
    public var binary: URL?
    /// Where it was found, as the user knows it (`~/.local/bin/claude`, on PATH).
    public var foundAt: String?
    public var version: String?
    /// Candidates that were not used, and why (shown when falling back to npm).
    public var passedOver: [String] = []

    /// One line saying what the run uses.
    public var description: String {
        let v = version.map { "Claude Code \($0)" } ?? "Claude Code (version unknown)"
        switch source {
        case .flag: return "\(v) from --agent-binary \(binary?.path ?? "")"
        case .config: return "\(v) from agent_binary in .patina/config.json (\(binary?.path ?? ""))"
        case .host: return "\(v): the one installed on this machine, \(foundAt ?? binary?.path ?? "")" + (foundAt != binary?.path ? " → \(binary?.path ?? "")" : "")
        case .npm: return "Claude Code \(version ?? RunPlan.pinnedClaudeVersion) installed with npm at image build"
        }
    }

    /// The one line said when npm is the last resort.
    public var npmWarning: String? {
        guard source == .npm else { return nil }
        let why = passedOver.isEmpty ? "found no claude on PATH, in ~/.local/bin or ~/.claude/local" : passedOver.joined(separator: "; ")
        return "no usable local Claude Code (\(why)): the image installs @anthropic-ai/claude-code@\(version ?? RunPlan.pinnedClaudeVersion) with npm, which needs registry.npmjs.org while building and fails offline; --agent-binary PATH uses a local one"
    }
}

/// Finds and checks Claude Code executables.
public enum ClaudeCodeLocator {
    public static func choose(
        flag: String?, config: String?, repositoryRoot: URL, environment: [String: String]
    ) async throws -> ClaudeCode {
        if let flag {
            let binary = try check(flag, what: "--agent-binary \(flag)", base: nil, environment: environment)
            return ClaudeCode(source: .flag, binary: binary, foundAt: flag, version: await version(of: binary))
        }
        if let config {
            let binary = try check(config, what: "agent_binary \(config) in .patina/config.json", base: repositoryRoot, environment: environment)
            return ClaudeCode(source: .config, binary: binary, foundAt: config, version: await version(of: binary))
        }
        var passedOver: [String] = []
        for (candidate, shown) in candidates(environment: environment) {
            switch inspect(candidate) {
            case .success(let binary):
                return ClaudeCode(source: .host, binary: binary, foundAt: shown, version: await version(of: binary))
            case .failure(let reason):
                passedOver.append("\(shown): \(reason)")
            }
        }
        return ClaudeCode(source: .npm, binary: nil, foundAt: nil, version: RunPlan.pinnedClaudeVersion, passedOver: passedOver)
    }

    /// `claude` on PATH, then where the native installer and older local installs put it.
    static func candidates(environment: [String: String]) -> [(URL, String)] {
        var seen = Set<String>()
        var out: [(URL, String)] = []
        func add(_ path: String, _ shown: String) {
            guard FileManager.default.fileExists(atPath: path), seen.insert(URL(fileURLWithPath: path).resolvingSymlinksInPath().path).inserted else { return }
            out.append((URL(fileURLWithPath: path), shown))
        }
        for dir in (environment["PATH"] ?? "").split(separator: ":") where dir.hasPrefix("/") {
            add("\(dir)/claude", "\(dir)/claude (on PATH)")
        }
        if let home = environment["HOME"], !home.isEmpty {
            add("\(home)/.local/bin/claude", "~/.local/bin/claude")
            add("\(home)/.claude/local/claude", "~/.claude/local/claude")
            // The native installer keeps each version here; the newest one.
            let versions = "\(home)/.local/share/claude/versions"
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: versions)) ?? []).sorted { Version($0) > Version($1) }
            if let newest = names.first { add("\(versions)/\(newest)", "~/.local/share/claude/versions/\(newest)") }
        }
        add("/usr/local/bin/claude", "/usr/local/bin/claude")
        return out
    }

    /// A path the user named: it must be a Linux executable for this machine.
    static func check(_ path: String, what: String, base: URL?, environment: [String: String]) throws -> URL {
        var expanded = path
        if expanded.hasPrefix("~/"), let home = environment["HOME"] { expanded = home + expanded.dropFirst() }
        let url = expanded.hasPrefix("/") || base == nil ? URL(fileURLWithPath: expanded) : base!.appendingPathComponent(expanded)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw PlanError("\(what): no such file")
        }
        switch inspect(url.standardizedFileURL) {
        case .success(let binary): return binary
        case .failure(let reason):
            if reason.description.hasPrefix("not readable") { throw PlanError("\(what): not readable") }
            throw PlanError("\(what): not a Linux executable (expected the standalone `claude` ELF binary): \(reason)")
        }
    }

    struct Unusable: Error, CustomStringConvertible {
        let description: String
    }

    /// The file behind `url` (links followed) when it is an ELF executable for this machine.
    static func inspect(_ url: URL) -> Result<URL, Unusable> {
        let resolved = url.resolvingSymlinksInPath()
        guard let handle = FileHandle(forReadingAtPath: resolved.path) else { return .failure(Unusable(description: "not readable")) }
        defer { try? handle.close() }
        let header = [UInt8](handle.readData(ofLength: 20))
        guard header.count == 20, header.starts(with: [0x7F, 0x45, 0x4C, 0x46]) else {
            let script = header.starts(with: [0x23, 0x21])  // "#!"
            return .failure(Unusable(description: script ? "a script (the npm package's launcher), not the standalone binary" : "not an ELF executable"))
        }
        let machine = header[5] == 1 ? UInt16(header[18]) | UInt16(header[19]) << 8 : UInt16(header[18]) << 8 | UInt16(header[19])
        guard header[4] == 2, machine == hostMachine else {
            return .failure(Unusable(description: "built for another architecture than this machine's \(hostArchitecture)"))
        }
        return .success(resolved)
    }

    static var hostArchitecture: String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// ELF e_machine of this machine: EM_X86_64 or EM_AARCH64.
    static var hostMachine: UInt16 {
        switch hostArchitecture {
        case "x86_64": 62
        case "aarch64", "arm64": 183
        default: 0
        }
    }

    /// `claude --version` ("2.1.29 (Claude Code)"): the version part, or nil. Starting the
    /// binary costs a good part of a run's launch, so the answer is kept in patina's cache,
    /// keyed by the file's path, inode, size and change time (a new binary is asked again).
    static func version(of binary: URL) async -> String? {
        var info = stat()
        let cache = RunStore.home().appendingPathComponent("cache/claude-versions")
        var key: String?
        if stat(binary.path, &info) == 0 {
            key = "\(info.st_dev)-\(info.st_ino)-\(info.st_size)-\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
            if let cached = try? String(contentsOf: cache.appendingPathComponent(key!), encoding: .utf8), !cached.isEmpty {
                return cached
            }
        }
        guard let result = try? await Command.run(["timeout", "10", binary.path, "--version"]), result.succeeded else { return nil }
        let text = result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let range = text.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*"#, options: .regularExpression) else { return nil }
        let version = String(text[range])
        if let key {
            try? FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
            try? Data(version.utf8).write(to: cache.appendingPathComponent(key), options: .atomic)
        }
        return version
    }
}
