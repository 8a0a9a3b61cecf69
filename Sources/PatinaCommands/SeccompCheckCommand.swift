import ArgumentParser
import Foundation
import PatinaSandbox

/// `patina seccomp check`: compile the profile with libseccomp, load it into a
/// child process and show that denied calls fail while a normal workload runs.
struct SeccompCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Compile the seccomp profile and prove it in a child process.",
        discussion: """
            Resolves every syscall name for each architecture, compiles the profile to BPF \
            (instruction counts are shown), then loads it into a child process that tries \
            the calls the agent must not make (ptrace, unshare, mount, bpf, …) and a normal \
            workload (exec, files, threads, sockets). Exits non-zero if anything is off.
            """
    )

    @Option(help: ArgumentHelp("A profile in Docker's JSON format, instead of the agent's default.", valueName: "file"))
    var profile: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let (profile, label) = try SeccompCommand.profile(at: profile)
        let executable = try SeccompCheck.currentExecutable()
        let result = try await SeccompCheck.run(profile: profile, label: label) { file in
            [executable, "seccomp", "probe", "--profile", file]
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            printJSON(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            say(Self.table(result))
        }
        if !result.passed { throw ExitCode(1) }
    }

    static func table(_ result: SeccompCheckResult) -> String {
        var lines = ["profile: \(result.profile)"]
        for set in result.compile.sets {
            lines.append("BPF \(set.label): \(set.instructions) instructions, \(set.rules) rules")
        }
        let probe = result.probe
        lines.append(String(
            format: "probe: %@ filter loaded (%d instructions), %d checks in %.2f s",
            probe.architectures.joined(separator: "+"), probe.instructions, probe.checks.count, result.probeSeconds))
        lines.append("")
        let rows = [["CHECK", "EXPECTED", "GOT", "OK"]] + probe.checks.map { [$0.name, $0.expected, $0.got, $0.ok ? "ok" : "FAIL"] }
        let widths = (0..<3).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            lines.append((0..<3).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") + "  " + row[3])
        }
        lines.append("")
        let failed = probe.failures.count
        lines.append(failed == 0 ? "all \(probe.checks.count) checks passed" : "\(failed) of \(probe.checks.count) checks FAILED")
        return lines.joined(separator: "\n")
    }
}

/// `patina seccomp probe`: the child side of `check`. Loads the profile into this
/// process for good, so it is never run by hand.
struct SeccompProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Load a seccomp profile into this process and try denied calls and a workload.",
        shouldDisplay: false
    )

    @Option(help: ArgumentHelp("The profile, in Docker's JSON format.", valueName: "file"))
    var profile: String

    func run() throws {
        let report = try SeccompProbe.run(profile: try SeccompProfile.load(contentsOf: URL(fileURLWithPath: profile)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        printJSON(String(decoding: try encoder.encode(report), as: UTF8.self))
        if !report.passed { throw ExitCode(1) }
    }
}
