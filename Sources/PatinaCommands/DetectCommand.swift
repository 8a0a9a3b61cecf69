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

    @OptionGroup var sandbox: SandboxFlags

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        var options = YoloOptions(task: "patina detect")
        sandbox.apply(to: &options)
        let plan = try await Planner.plan(options, checkEngine: false, requireCredentials: false)
        let detection = try await Detection.run(plan: plan)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            printJSON(String(decoding: try encoder.encode(detection), as: UTF8.self))
            return
        }
        say(Self.text(detection))
    }

    static func text(_ d: Detection) -> String {
        var out = ["repository: \(d.repository)"]
        if d.devcontainer == nil { out.append("devcontainer: none (the image comes from patina's base image and the toolchains below)") }
        out += d.lines
        if d.toolchains.isEmpty { out.append("toolchains: none detected (.patina/config.json `toolchains` adds some)") }
        out.append("presets that follow: " + (d.autoPresets.isEmpty ? "none" : d.autoPresets.joined(separator: ", ") + " (--no-auto-presets leaves them out)"))
        if !d.firewall {
            out.append("firewall: OFF (--no-firewall): the agent can reach any address this machine can")
        } else {
            // The run's own model proxy is added when it listens; everything else is refused.
            out.append("firewall: on; the sandbox may reach the run's model proxy"
                + (d.allowList.isEmpty ? " and nothing else" : " and: " + d.allowList.joined(separator: ", ")))
        }
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
