import Foundation

/// A seccomp profile in Docker's JSON format (moby `profiles/seccomp/default.json`):
/// what `docker run --security-opt seccomp=FILE` reads.
public struct SeccompProfile: Codable, Sendable, Equatable {
    /// One `archMap` entry: a main architecture and the ones its kernel also runs.
    public struct ArchMapEntry: Codable, Sendable, Equatable {
        public var architecture: String
        public var subArchitectures: [String]?

        public init(architecture: String, subArchitectures: [String]? = nil) {
            self.architecture = architecture
            self.subArchitectures = subArchitectures
        }
    }

    /// Docker's `includes` / `excludes` of a rule.
    public struct Condition: Codable, Sendable, Equatable {
        public var arches: [String]?
        public var caps: [String]?
        public var minKernel: String?

        public init(arches: [String]? = nil, caps: [String]? = nil, minKernel: String? = nil) {
            self.arches = arches
            self.caps = caps
            self.minKernel = minKernel
        }
    }

    /// One argument comparison; for `SCMP_CMP_MASKED_EQ`, `value` is the mask and
    /// `valueTwo` the expected result.
    public struct Argument: Codable, Sendable, Equatable {
        public var index: UInt
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: String

        public init(index: UInt, value: UInt64, valueTwo: UInt64? = nil, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    /// One `syscalls` entry. Its argument comparisons must all hold; separate
    /// entries for the same name are alternatives.
    public struct Rule: Codable, Sendable, Equatable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt?
        public var args: [Argument]?
        public var comment: String?
        public var includes: Condition?
        public var excludes: Condition?

        public init(names: [String], action: String, errnoRet: UInt? = nil, args: [Argument]? = nil, comment: String? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
            self.comment = comment
        }

        /// Whether a matching call goes through (as opposed to failing or killing).
        public var permits: Bool { action == "SCMP_ACT_ALLOW" || action == "SCMP_ACT_LOG" }

        /// Permits the call whatever its arguments, on every architecture and capability set.
        public var permitsUnconditionally: Bool {
            permits && (args ?? []).isEmpty && includes == nil && excludes == nil
        }
    }

    public var defaultAction: String
    public var defaultErrnoRet: UInt?
    public var archMap: [ArchMapEntry]?
    public var architectures: [String]?
    public var syscalls: [Rule]

    /// Syscalls the repository relaxed (allowed although patina's default denies
    /// them), sorted. Recorded in the run record; not part of Docker's format.
    public internal(set) var relaxations: [String] = []
    /// Syscalls the repository denied on top of the default, sorted.
    public internal(set) var extraDenials: [String] = []

    enum CodingKeys: String, CodingKey {
        case defaultAction, defaultErrnoRet, archMap, architectures, syscalls
    }

    public init(defaultAction: String, defaultErrnoRet: UInt? = nil, archMap: [ArchMapEntry]? = nil, architectures: [String]? = nil, syscalls: [Rule]) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.archMap = archMap
        self.architectures = architectures
        self.syscalls = syscalls
    }

    /// Parses Docker's JSON format; `source` names the file in errors.
    public init(json: String, source: String) throws {
        do {
            self = try JSONDecoder().decode(SeccompProfile.self, from: Data(json.utf8))
        } catch let DecodingError.keyNotFound(key, context) {
            throw SeccompError.invalidProfile(path: source, reason: "missing \"\(Self.path(context.codingPath + [key]))\"")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw SeccompError.invalidProfile(path: source, reason: "wrong type for \"\(Self.path(context.codingPath))\"")
        } catch let DecodingError.dataCorrupted(context) {
            let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String ?? context.debugDescription
            throw SeccompError.invalidProfile(path: source, reason: "not valid JSON (\(detail))")
        } catch {
            throw SeccompError.invalidProfile(path: source, reason: "\(error)")
        }
    }

    /// Reads a profile file in Docker's JSON format.
    public static func load(contentsOf url: URL) throws -> SeccompProfile {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw SeccompError.invalidProfile(path: url.path, reason: "unreadable (\((error as NSError).localizedDescription))")
        }
        return try SeccompProfile(json: text, source: url.path)
    }

    /// The profile as Docker reads it: pretty-printed with sorted keys, so the
    /// same profile always gives the same bytes (and the same image-cache hash).
    public func dockerJSON() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and numbers cannot fail.
        let data = try! encoder.encode(self)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Every syscall name any rule mentions, sorted.
    public var syscallNames: [String] {
        Array(Set(syscalls.flatMap(\.names))).sorted()
    }

    /// Whether some rule lets `name` through, with or without conditions.
    public func permits(_ name: String) -> Bool {
        syscalls.contains { $0.permits && $0.names.contains(name) }
    }

    /// Whether `name` goes through whatever its arguments.
    public func permitsUnconditionally(_ name: String) -> Bool {
        syscalls.contains { $0.permitsUnconditionally && $0.names.contains(name) }
    }

    /// The architecture sets the profile is compiled for, as Docker would pick
    /// them on each kind of host: one per `archMap` entry, or the legacy
    /// `architectures` list as one set, or just this machine's architecture.
    public func architectureSets() throws -> [[SeccompArchitecture]] {
        if archMap != nil && architectures != nil {
            throw SeccompError.conflictingArchitectures
        }
        if let archMap, !archMap.isEmpty {
            return try archMap.map { entry in
                try ([entry.architecture] + (entry.subArchitectures ?? [])).map(SeccompArchitecture.init)
            }
        }
        if let architectures, !architectures.isEmpty {
            return [try architectures.map(SeccompArchitecture.init)]
        }
        return [[try SeccompArchitecture.native()]]
    }

    /// Resolves every syscall name in the profile, plus `extra`, on each target
    /// architecture. A name that exists on none of them is an error naming it;
    /// one missing on some is skipped there when compiling.
    public func validateNames(_ extra: [String] = []) throws {
        let arches = Array(Set(try architectureSets().joined()))
        for name in Set(syscallNames + extra).sorted() where !arches.contains(where: { $0.number(of: name) != nil }) {
            throw SeccompError.unknownSyscall(name)
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
}
