import Foundation
import PatinaTemplates

/// A repository's changes to the agent's seccomp profile, from `.patina/config.json`.
public struct SeccompOverrides: Codable, Sendable, Equatable {
    /// Syscalls to deny on top of the default profile.
    public var extraDenied: [String]
    /// Syscalls the default profile denies (fully or for some arguments) that the
    /// repository needs; allowed with any arguments and recorded in the run record.
    public var relaxed: [String]

    public init(extraDenied: [String] = [], relaxed: [String] = []) {
        self.extraDenied = extraDenied
        self.relaxed = relaxed
    }

    public static let none = SeccompOverrides()
}

extension SeccompProfile {
    /// The profile template, its unconditional allow list, and patina's deny list,
    /// relative to the data directory (a repository may override the first two in `.patina/`).
    public static let templatePath = "templates/seccomp/profile.json.mustache"
    public static let allowedListPath = "templates/seccomp/allowed.txt"
    public static let deniedListPath = "templates/seccomp/denied.txt"

    /// The agent's profile for one run: rendered from `templates/seccomp/`, checked
    /// against patina's deny list, then changed by the repository's overrides.
    /// Every name (profile, deny list, overrides) must resolve on some target architecture.
    public static func agentDefault(templates: TemplateSet, overrides: SeccompOverrides = .none) throws -> SeccompProfile {
        try agentDefaultCompiled(templates: templates, overrides: overrides, capabilities: nil).profile
    }

    /// `agentDefault`, and when `capabilities` is given, the profile compiled for a container
    /// with them (its report): the compiled-filter check and the report from one compilation.
    public static func agentDefaultCompiled(
        templates: TemplateSet, overrides: SeccompOverrides = .none, capabilities: Set<String>?
    ) throws -> (profile: SeccompProfile, report: SeccompCompileReport?) {
        let allowedURL = try templates.url(for: allowedListPath)
        let allowed = try SyscallList.parse(try templates.read(allowedListPath), source: allowedURL.path)
        let denied = try deniedSyscalls(templates: templates)
        let namesJSON = "[" + allowed.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        let rendered = try templates.render(templatePath, ["allowedNames": namesJSON])
        var profile = try SeccompProfile(json: rendered, source: try templates.url(for: templatePath).path)
        try profile.validateNames(denied)
        try profile.validateOverrideNames(overrides)

        // A repository's template override must not quietly allow what patina
        // denies: that goes through `relax`, so the run record shows it.
        for name in denied where profile.permits(name) && !overrides.relaxed.contains(name) {
            throw SeccompError.allowsDenied(syscall: name)
        }
        try profile.apply(overrides, denied: Set(denied))
        // The rules are not the whole story (a default action, a broad rule elsewhere):
        // what libseccomp compiles must deny every name on the list that is not relaxed.
        let stillDenied = denied.filter { !overrides.relaxed.contains($0) }
        guard let capabilities else {
            let leaks = try profile.leaks(of: stillDenied)
            if !leaks.isEmpty { throw SeccompError.compiledFilterAllows(leaks) }
            return (profile, nil)
        }
        let (report, leaks) = try profile.compileCheckingLeaks(of: stillDenied, capabilities: capabilities)
        if !leaks.isEmpty { throw SeccompError.compiledFilterAllows(leaks) }
        return (profile, report)
    }

    func validateOverrideNames(_ overrides: SeccompOverrides) throws {
        let arches = Array(Set(try architectureSets().joined()))
        for name in Set(overrides.extraDenied + overrides.relaxed).sorted()
        where !arches.contains(where: { $0.number(of: name) != nil }) {
            throw SeccompError.unknownOverride(name)
        }
    }

    /// patina's deny list. Always the shipped file: a repository cannot shorten it.
    public static func deniedSyscalls(templates: TemplateSet) throws -> [String] {
        let url = templates.dataDirectory.appendingPathComponent(deniedListPath)
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw TemplateError.missing(deniedListPath)
        }
        return try SyscallList.parse(text, source: url.path)
    }

    /// Applies a repository's overrides: relaxed names are allowed with any
    /// arguments, extra denials drop the name from every rule that lets it through.
    /// Relaxing a name already allowed is a mistake, unless it is on patina's
    /// deny list (`denied`): then a template override allowed it, and the
    /// relaxation is what makes that visible.
    mutating func apply(_ overrides: SeccompOverrides, denied: Set<String>) throws {
        let relaxed = Array(Set(overrides.relaxed)).sorted()
        let extraDenied = Array(Set(overrides.extraDenied)).sorted()
        if let both = relaxed.first(where: extraDenied.contains) {
            throw SeccompError.conflictingOverride(syscall: both)
        }
        if let allowed = relaxed.first(where: { permitsUnconditionally($0) && !denied.contains($0) }) {
            throw SeccompError.notDenied(syscall: allowed)
        }
        // Relaxing replaces whatever rules the name had (e.g. clone3's ENOSYS).
        let removeEverywhere = Set(relaxed)
        let removeFromPermitting = Set(extraDenied)
        syscalls = syscalls.compactMap { rule in
            var rule = rule
            let permits = rule.permits
            rule.names.removeAll { removeEverywhere.contains($0) || (permits && removeFromPermitting.contains($0)) }
            return rule.names.isEmpty ? nil : rule
        }
        if !relaxed.isEmpty {
            syscalls.append(Rule(
                names: relaxed, action: "SCMP_ACT_ALLOW",
                comment: "relaxed by the repository (.patina/config.json)"))
        }
        relaxations = relaxed
        extraDenials = extraDenied
    }
}

/// A list of syscall names, one a line, `#` starting a comment.
enum SyscallList {
    static func parse(_ text: String, source: String) throws -> [String] {
        var names: [String] = []
        var seen = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let name = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first
                .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if name.isEmpty { continue }
            guard name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }) else {
                throw SeccompError.invalidProfile(path: source, reason: "line \(number + 1): \"\(name)\" is not a syscall name")
            }
            if seen.insert(name).inserted { names.append(name) }
        }
        return names.sorted()
    }
}
