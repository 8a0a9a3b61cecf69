import Foundation
import Testing
@testable import PatinaTemplates

@Suite struct TemplateSetTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("tpl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("share/templates"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("share/firewall"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("repo/.patina/templates"), withIntermediateDirectories: true)
        try Data("FROM {{base_image}}\nRUN echo \"{{quoted}}\" <&>\n".utf8).write(to: root.appendingPathComponent("share/templates/Dockerfile.mustache"))
        try Data("shipped\n".utf8).write(to: root.appendingPathComponent("share/templates/other.txt"))
    }

    var set: TemplateSet {
        TemplateSet(dataDirectory: root.appendingPathComponent("share"), overrideDirectory: root.appendingPathComponent("repo/.patina"))
    }

    @Test func rendersWithoutHTMLEscaping() throws {
        let text = try set.render("templates/Dockerfile.mustache", ["base_image": "debian:bookworm-slim", "quoted": "a&b<c>"])
        #expect(text == "FROM debian:bookworm-slim\nRUN echo \"a&b<c>\" <&>\n")
    }

    @Test func repositoryOverrideWins() throws {
        try Data("FROM custom\n".utf8).write(to: root.appendingPathComponent("repo/.patina/templates/Dockerfile.mustache"))
        #expect(try set.render("templates/Dockerfile.mustache", [:]) == "FROM custom\n")
        #expect(set.isOverridden("templates/Dockerfile.mustache"))
        #expect(try set.read("templates/other.txt") == "shipped\n")
        #expect(!set.isOverridden("templates/other.txt"))
    }

    @Test func invalidTemplateNamesFileAndLine() throws {
        try Data("line one\n{{#open}}\n".utf8).write(to: root.appendingPathComponent("repo/.patina/templates/Dockerfile.mustache"))
        #expect {
            try set.render("templates/Dockerfile.mustache", [:])
        } throws: { error in
            let text = "\(error)"
            return text.contains(".patina/templates/Dockerfile.mustache") && text.contains("never closed")
        }
    }

    @Test func missingAndUnreadable() throws {
        #expect(throws: TemplateError.missing("templates/nope.mustache")) { try set.read("templates/nope.mustache") }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("repo/.patina/templates/other.txt"), withIntermediateDirectories: true)
        #expect { try set.read("templates/other.txt") } throws: { "\($0)".contains("cannot read template") }
    }

    @Test func dataDirectoryIsFoundFromTheExecutableNotTheCurrentDirectory() throws {
        let prefix = root.appendingPathComponent("prefix")
        try FileManager.default.createDirectory(at: prefix.appendingPathComponent("bin"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: prefix.appendingPathComponent("share/patina/templates"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: prefix.appendingPathComponent("share/patina/firewall"), withIntermediateDirectories: true)
        let found = try DataDirectory.locate(environment: [:], executable: prefix.appendingPathComponent("bin/patina"))
        #expect(found.standardizedFileURL.path == prefix.appendingPathComponent("share/patina").standardizedFileURL.path)
        let explicit = try DataDirectory.locate(environment: ["PATINA_DATA_DIR": prefix.appendingPathComponent("share/patina").path],
                                                executable: URL(fileURLWithPath: "/nowhere/patina"))
        #expect(explicit.path.hasSuffix("share/patina"))
        #expect(throws: TemplateError.self) {
            try DataDirectory.locate(environment: [:], executable: URL(fileURLWithPath: "/nowhere/bin/patina"))
        }
    }
}
