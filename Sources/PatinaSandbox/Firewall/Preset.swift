import Foundation
import PatinaTemplates

/// Named allow-lists shipped as data in `firewall/presets/NAME.txt` (a repository's
/// `.patina/firewall/presets/` adds or replaces presets).
public enum Preset {
    public static let directory = "firewall/presets"
    public static let defaultsFile = "firewall/defaults.txt"

    public static func load(name: String, templates: TemplateSet) throws -> [AllowEntry] {
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }),
              templates.exists(path(name))
        else {
            throw FirewallError.unknownPreset(name: name, known: known(templates: templates))
        }
        let text = try templates.read(path(name))
        return try AllowList.parseFile(text, source: "preset \(name)", allowPresets: false).entries
    }

    /// Loads several presets, in order.
    public static func load(names: [String], templates: TemplateSet) throws -> [AllowEntry] {
        try names.flatMap { try load(name: $0, templates: templates) }
    }

    /// The entries every run gets (`firewall/defaults.txt`, which may switch presets on).
    public static func defaults(templates: TemplateSet) throws -> [AllowEntry] {
        guard templates.exists(defaultsFile) else { return [] }
        let file = try AllowList.parseFile(try templates.read(defaultsFile), source: defaultsFile)
        return try load(names: file.presets, templates: templates) + file.entries
    }

    /// Every preset name, shipped or from the repository, sorted.
    public static func known(templates: TemplateSet) -> [String] {
        var names = Set<String>()
        for root in [templates.dataDirectory, templates.overrideDirectory].compactMap({ $0 }) {
            let dir = root.appendingPathComponent(directory, isDirectory: true)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for file in files where file.hasSuffix(".txt") { names.insert(String(file.dropLast(4))) }
        }
        return names.sorted()
    }

    static func path(_ name: String) -> String { "\(directory)/\(name).txt" }
}

extension TemplateSet {
    func exists(_ relativePath: String) -> Bool {
        (try? url(for: relativePath)) != nil
    }
}
