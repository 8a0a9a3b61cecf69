import ArgumentParser
import Foundation
import PatinaCore

/// `patina detect`: what a run in this repository would be built on, without building anything.
struct DetectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Show the sandbox a run would get here: devcontainer, toolchains, presets, caches, Claude Code, and the rendered Dockerfile and devcontainer.json.",
        discussion: """
            Reads the repository's devcontainer.json (or detects its toolchains), .patina/config.json and \
            this machine's Claude Code, CA certificates and proxy, and prints what follows, then the \
            Dockerfile and devcontainer.json a run would render. Builds, starts and creates nothing.
            """
    )

    @Option(name: .customLong("base-image"), help: "Image the sandbox is built from without a devcontainer.")
    var baseImage: String?

    @Option(name: .customLong("agent-binary"), help: "The Claude Code executable a run would copy in.")
    var agentBinary: String?

    @Option(help: ArgumentHelp("Use .devcontainer/NAME/devcontainer.json (`none`: ignore the repository's devcontainer).", valueName: "name"))
    var devcontainer: String?

    @Option(name: .customLong("allow"), help: "An extra allow-list entry, as for `patina yolo`. Repeatable.")
    var allow: [String] = []

    @Option(name: .customLong("preset"), help: "An extra firewall preset, as for `patina yolo`. Repeatable.")
    var presets: [String] = []

    @Flag(name: .customLong("no-auto-presets"), help: "Leave the toolchains' registry presets out.")
    var noAutoPresets = false

    @Flag(name: .customLong("no-host-ca"), help: "Do not trust this machine's CA certificates.")
    var noHostCA = false

    @Flag(name: .customLong("no-firewall"), help: "As a run with --no-firewall would be.")
    var noFirewall = false

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        var options = YoloOptions(task: "patina detect")
        options.baseImage = baseImage
        options.agentBinary = agentBinary
        options.devcontainer = devcontainer
        options.allow = allow
        options.presets = presets
        options.noAutoPresets = noAutoPresets
        options.noHostCA = noHostCA
        options.noFirewall = noFirewall
        let plan = try await Planner.plan(options, checkEngine: false, requireCredentials: false)
        let detection = try await Detection.run(plan: plan)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(detection), as: UTF8.self))
            return
        }
        print(Self.text(detection))
    }

    static func text(_ d: Detection) -> String {
        var out = ["repository: \(d.repository)"]
        if d.devcontainer == nil { out.append("devcontainer: none (the image comes from patina's base image and the toolchains below)") }
        out += d.lines
        if d.toolchains.isEmpty { out.append("toolchains: none detected (.patina/config.json `toolchains` adds some)") }
        out.append("presets that follow: " + (d.autoPresets.isEmpty ? "none" : d.autoPresets.joined(separator: ", ") + " (--no-auto-presets leaves them out)"))
        out.append("allow-list: " + (d.allowList.isEmpty ? "none (--no-firewall)" : d.allowList.joined(separator: ", ")))
        out.append("agent image: \(d.agentImage) (not built by detect)")
        out.append("")
        out.append("== Dockerfile")
        out.append(d.dockerfile.trimmingCharacters(in: .newlines))
        out.append("")
        out.append("== .devcontainer/devcontainer.json")
        out.append(d.devcontainerJSON.trimmingCharacters(in: .newlines))
        return Terminal.inert(out.joined(separator: "\n"))
    }
}
