import ArgumentParser
import Foundation
import PatinaSandbox
import PatinaTemplates

/// `patina seccomp …`: the agent's seccomp profile.
struct SeccompCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seccomp",
        abstract: "Show and check the agent's seccomp profile.",
        subcommands: [SeccompCheckCommand.self, SeccompShowCommand.self, SeccompProbeCommand.self]
    )

    /// The agent's default profile as shipped (a run's own, with the repository's
    /// overrides, is `seccomp.json` in its run directory: pass it with --profile).
    static func defaultProfile() throws -> SeccompProfile {
        let templates = TemplateSet(dataDirectory: try DataDirectory.locate(), overrideDirectory: nil)
        return try SeccompProfile.agentDefault(templates: templates)
    }

    static func profile(at path: String?) throws -> (profile: SeccompProfile, label: String) {
        if let path { return (try SeccompProfile.load(contentsOf: URL(fileURLWithPath: path)), path) }
        return (try defaultProfile(), "default")
    }
}

/// `patina seccomp show`: the profile as Docker receives it.
struct SeccompShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print the agent's seccomp profile in Docker's JSON format."
    )

    func run() throws {
        printJSON(try SeccompCommand.profile(at: nil).profile.dockerJSON(), terminator: "")
    }
}
