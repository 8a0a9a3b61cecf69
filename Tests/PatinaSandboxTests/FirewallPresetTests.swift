import Foundation
import PatinaTemplates
import Testing
@testable import PatinaSandbox

/// The repository's own data folder (holds templates/ and firewall/).
let firewallDataDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite("Firewall presets")
struct FirewallPresetTests {
    let templates = TemplateSet(dataDirectory: firewallDataDirectory, overrideDirectory: nil)

    @Test("shipped presets load", arguments: ["github", "npm", "pypi", "debian", "anthropic"])
    func shipped(name: String) throws {
        let entries = try Preset.load(name: name, templates: templates)
        #expect(!entries.isEmpty)
        #expect(entries.allSatisfy { $0.source.hasPrefix("preset \(name), line ") })
        // Presets open named ports only, and never SSH.
        #expect(entries.allSatisfy { $0.port != nil && !$0.namesSSH })
    }

    @Test func knownPresets() {
        let known = Preset.known(templates: templates)
        for name in ["github", "npm", "pypi", "debian", "anthropic"] { #expect(known.contains(name)) }
    }

    @Test func unknownPresetListsTheKnownOnes() {
        do {
            _ = try Preset.load(name: "nosuch", templates: templates)
            Issue.record("expected an error")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("unknown firewall preset \"nosuch\" (known presets: "))
            #expect(text.contains("github"))
            #expect(text.contains("pypi"))
        }
        #expect(throws: FirewallError.self) { try Preset.load(name: "../defaults", templates: templates) }
    }

    @Test func repositoryAddsAndOverridesPresets() throws {
        let repo = FileManager.default.temporaryDirectory.appendingPathComponent("patina-preset-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: repo) }
        let presets = repo.appendingPathComponent("firewall/presets")
        try FileManager.default.createDirectory(at: presets, withIntermediateDirectories: true)
        try "internal.example.com:8443\n".write(to: presets.appendingPathComponent("corp.txt"), atomically: true, encoding: .utf8)
        try "pypi.internal.example.com:443/tcp\n".write(to: presets.appendingPathComponent("pypi.txt"), atomically: true, encoding: .utf8)
        let withRepo = TemplateSet(dataDirectory: firewallDataDirectory, overrideDirectory: repo)
        #expect(try Preset.load(name: "corp", templates: withRepo).map(\.description) == ["internal.example.com:8443"])
        #expect(try Preset.load(name: "pypi", templates: withRepo).map(\.description) == ["pypi.internal.example.com:443/tcp"])
        #expect(Preset.known(templates: withRepo).contains("corp"))
    }

    @Test func badPresetLineNamesFileAndLine() throws {
        let repo = FileManager.default.temporaryDirectory.appendingPathComponent("patina-preset-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: repo) }
        let presets = repo.appendingPathComponent("firewall/presets")
        try FileManager.default.createDirectory(at: presets, withIntermediateDirectories: true)
        try "# ok\nok.example.com\nbad:0\n".write(to: presets.appendingPathComponent("broken.txt"), atomically: true, encoding: .utf8)
        let withRepo = TemplateSet(dataDirectory: firewallDataDirectory, overrideDirectory: repo)
        #expect(throws: FirewallError.invalidEntry(entry: "bad:0", source: "preset broken, line 3", reason: "port 0 is out of range 1-65535")) {
            try Preset.load(name: "broken", templates: withRepo)
        }
    }

    @Test func defaultsAreEmpty() throws {
        #expect(try Preset.defaults(templates: templates).isEmpty)
    }
}
