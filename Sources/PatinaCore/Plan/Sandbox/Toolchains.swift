import Foundation

/// A toolchain the repository needs: found from its files (or named in
/// `.patina/config.json`), installed in the image from distribution packages,
/// with the registry preset and download caches that go with it.
public struct Toolchain: Sendable, Equatable, Codable {
    public var name: String
    /// The files that showed it (`pyproject.toml`), or `.patina/config.json`.
    public var evidence: [String]
    /// The version a file asks for, and which file.
    public var requested: String?
    public var requestedBy: String?
    /// Distribution packages installed for it (empty when the image already provides it).
    public var packages: [String]
    /// Tools the distribution does not package, installed with pip from the package index at image build.
    public var pipPackages: [String] = []
    /// The version those packages give (Debian bookworm's).
    public var provides: String?
    public var preset: String?
    public var caches: [String]
    /// What could not be done as asked (a pin the packages cannot meet, a tool not packaged).
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case name, evidence, requested, packages, provides, preset, caches, notes
        case requestedBy = "requested_by"
        case pipPackages = "pip_packages"
    }

    /// One line for the step log and `patina detect`.
    public var summary: String {
        var line = name + (provides.map { " \($0)" } ?? "")
        line += " (\(evidence.joined(separator: ", ")))"
        if let requested, let requestedBy { line += ", \(requestedBy) asks for \(requested)" }
        line += packages.isEmpty ? ": no packages" : ": " + packages.joined(separator: " ")
        if !pipPackages.isEmpty { line += "; from the package index: " + pipPackages.joined(separator: " ") }
        return line
    }
}

/// What `.patina/config.json` says about toolchains: `["python"]` adds to the
/// detection, `{"only": ["python"]}` replaces it (`{"add": [...]}` also adds).
public enum ToolchainSetting: Codable, Sendable, Equatable {
    case add([String])
    case only([String])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let names = try? container.decode([String].self) {
            self = .add(names)
            return
        }
        struct Object: Decodable { var add: [String]?; var only: [String]? }
        let object = try container.decode(Object.self)
        if let only = object.only { self = .only(only + (object.add ?? [])) } else { self = .add(object.add ?? []) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .add(let names): try container.encode(names)
        case .only(let names): try container.encode(["only": names])
        }
    }
}

/// The toolchains patina knows, what Debian bookworm (patina's default base) packages
/// for each, and how a repository shows it needs one.
public enum Toolchains {
    struct Kind {
        let name: String
        let packages: [String]
        /// The version Debian bookworm's packages give; nil when it packages none.
        let provides: String?
        let preset: String?
        let caches: [String]
        /// A pin is met when the packaged version is at least the one asked for (a
        /// minimum, like go.mod's `go` line) rather than the same major.minor.
        let pinIsMinimum: Bool
    }

    static let kinds: [Kind] = [
        Kind(name: "python", packages: ["python3", "python3-pip", "python3-venv"], provides: "3.11", preset: "pypi", caches: ["pip"], pinIsMinimum: false),
        Kind(name: "node", packages: ["nodejs", "npm"], provides: "18.19", preset: "npm", caches: ["npm"], pinIsMinimum: false),
        // gcc and libc6-dev: cgo is Go's default (anything importing net needs it).
        Kind(name: "go", packages: ["golang-go", "gcc", "libc6-dev"], provides: "1.19", preset: "golang", caches: ["go"], pinIsMinimum: true),
        Kind(name: "rust", packages: ["cargo", "rustc"], provides: "1.63", preset: "crates", caches: ["cargo"], pinIsMinimum: true),
        Kind(name: "swift", packages: [], provides: nil, preset: nil, caches: ["swiftpm"], pinIsMinimum: true),
        Kind(name: "ruby", packages: ["ruby", "ruby-dev", "bundler"], provides: "3.1", preset: "rubygems", caches: [], pinIsMinimum: false),
        Kind(name: "java", packages: ["default-jdk-headless"], provides: "17", preset: "maven", caches: [], pinIsMinimum: true),
        Kind(name: "make", packages: ["make"], provides: "4.3", preset: nil, caches: [], pinIsMinimum: true),
        Kind(name: "cmake", packages: ["cmake", "make", "g++"], provides: "3.25", preset: nil, caches: [], pinIsMinimum: true),
    ]

    public static var known: [String] { kinds.map(\.name) }

    /// The toolchains the repository's files show, in the order of `known`: each
    /// toolchain's detector (ToolchainDetectors.swift) on the repository's top level.
    public static func detect(in root: URL) -> [Toolchain] {
        let files = RepositoryFiles(root: root)
        return detectors.compactMap { $0.detect(files) }
    }

    /// Detection and `.patina/config.json` together. Unknown names are bad input.
    public static func resolve(detected: [Toolchain], setting: ToolchainSetting?) throws -> [Toolchain] {
        var result = detected
        var named: [String] = []
        switch setting {
        case .add(let names)?: named = names
        case .only(let names)?:
            named = names
            result = detected.filter { names.contains($0.name) }
        case nil: break
        }
        for name in named {
            guard kinds.contains(where: { $0.name == name }) else {
                throw PlanError("unknown toolchain \"\(name)\" in .patina/config.json (known: \(known.joined(separator: ", ")))")
            }
            if !result.contains(where: { $0.name == name }) { result.append(make(name, evidence: [".patina/config.json"])) }
        }
        return result.sorted { a, b in
            (known.firstIndex(of: a.name) ?? 0) < (known.firstIndex(of: b.name) ?? 0)
        }
    }

    static func make(_ name: String, evidence: [String]) -> Toolchain {
        let kind = kinds.first { $0.name == name }!
        return Toolchain(name: name, evidence: evidence, requested: nil, requestedBy: nil, packages: kind.packages,
                         provides: kind.provides, preset: kind.preset, caches: kind.caches, notes: [])
    }

    /// A version a file pins: met when Debian's packages give it (or, for minimum
    /// versions, something later); said so when not.
    static func pin(_ toolchain: Toolchain, requested: String, by file: String) -> Toolchain {
        var t = toolchain
        guard !requested.isEmpty else { return t }
        t.requested = requested
        t.requestedBy = file
        let kind = kinds.first { $0.name == t.name }!
        guard let provides = kind.provides else { return t }
        let met = kind.pinIsMinimum
            ? Version(provides) >= Version(requested)
            : Version(provides).components.starts(with: Version(requested).components.prefix(2))
        if !met {
            t.notes.append("\(file) asks for \(t.name) \(requested); Debian bookworm's packages give \(provides), which is what the image gets (for \(requested), use a devcontainer.json or --base-image that provides it)")
        }
        return t
    }

    /// A version range (`>=3.9`, `^20`, `18.x || 20.x`): met or said not to be.
    static func constrain(_ toolchain: Toolchain, constraint: String, by source: String) -> Toolchain {
        var t = toolchain
        t.requested = constraint
        t.requestedBy = source
        if let provides = t.provides, !Version.satisfies(Version(provides), constraint) {
            t.notes.append("\(source) asks for \(constraint); Debian bookworm's packages give \(t.name) \(provides), which is what the image gets")
        }
        return t
    }

    static let nodeCodenames = ["argon": "4", "boron": "6", "carbon": "8", "dubnium": "10", "erbium": "12",
                                "fermium": "14", "gallium": "16", "hydrogen": "18", "iron": "20", "jod": "22"]

    static func pinNode(_ toolchain: Toolchain, _ raw: String, by file: String) -> Toolchain {
        var text = raw.lowercased().trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("lts/") {
            let name = String(text.dropFirst(4))
            guard let version = nodeCodenames[name] else {
                var t = toolchain
                t.requested = raw
                t.requestedBy = file
                return t  // lts/*: any LTS; Debian's 18 is one
            }
            text = version
        }
        if text == "node" || text == "stable" || text == "latest" { return toolchain }
        if text.hasPrefix("v") { text.removeFirst() }
        return pin(toolchain, requested: String(text.split(separator: ".").first ?? ""), by: file)
    }

    static func majorMinor(_ text: String) -> String {
        var t = text.trimmingCharacters(in: .whitespaces)
        for prefix in ["python-", "ruby-", "go", "v"] where t.hasPrefix(prefix) { t.removeFirst(prefix.count) }
        return t.split(separator: ".").prefix(2).joined(separator: ".")
    }

    /// `key = "value"` in a TOML file (the first one).
    static func tomlString(_ text: String, key: String) -> String? {
        let pattern = #"(?m)^\s*"# + NSRegularExpression.escapedPattern(for: key) + #"\s*=\s*["']([^"']*)["']"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let range = Range(match.range(at: 1), in: text)
        else { return nil }
        return String(text[range])
    }
}

/// A dotted version, compared component by component.
struct Version: Comparable {
    let components: [Int]

    init(_ text: String) {
        components = text.trimmingCharacters(in: .whitespaces).split(separator: ".").map { part in
            Int(part.prefix { $0.isNumber }) ?? 0
        }
    }

    static func < (a: Version, b: Version) -> Bool {
        for i in 0..<max(a.components.count, b.components.count) {
            let x = i < a.components.count ? a.components[i] : 0
            let y = i < b.components.count ? b.components[i] : 0
            if x != y { return x < y }
        }
        return false
    }

    /// npm- and PEP 440-style ranges: `>=3.9`, `>=18 <21`, `^20`, `~3.11`, `18.x`, `a || b`, `>=3.8,<4`.
    static func satisfies(_ version: Version, _ constraint: String) -> Bool {
        constraint.components(separatedBy: "||").contains { alternative in
            let parts = alternative.replacingOccurrences(of: ",", with: " ").split(separator: " ").map(String.init)
            return parts.allSatisfy { part in
                var op = "", rest = Substring(part)
                for candidate in [">=", "<=", "==", "~=", "!=", ">", "<", "=", "^", "~"] where rest.hasPrefix(candidate) {
                    op = candidate
                    rest = rest.dropFirst(candidate.count)
                    break
                }
                let text = rest.replacingOccurrences(of: ".x", with: "").replacingOccurrences(of: ".*", with: "")
                guard let first = text.first, first.isNumber else { return true }  // "*", "latest": anything
                let bound = Version(text)
                let given = text.split(separator: ".").count
                switch op {
                case ">=": return version >= bound
                case ">": return version > bound
                case "<=": return version <= bound
                case "<": return version < bound
                case "!=": return version.components.prefix(given) != bound.components.prefix(given)
                case "^": return version >= bound && version.components.first == bound.components.first
                case "~", "~=":
                    let keep = max(1, op == "~=" ? given - 1 : min(given, 2))
                    return version >= bound && Array(version.components.prefix(keep)) == Array(bound.components.prefix(keep))
                default: return Array(version.components.prefix(given)) == Array(bound.components.prefix(given))
                }
            }
        }
    }
}

extension String {
    var firstLine: String? {
        split(separator: "\n", omittingEmptySubsequences: true).first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}
