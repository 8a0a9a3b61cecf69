import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// The outcome of `patina seccomp check`: the compiled profile and what a child
/// process saw after loading it.
public struct SeccompCheckResult: Codable, Sendable, Equatable {
    /// "default" for the agent's profile, else the file checked.
    public let profile: String
    public let compile: SeccompCompileReport
    public let probe: SeccompProbeReport
    /// Wall-clock time of the probe child, from spawn to exit.
    public let probeSeconds: Double

    public var passed: Bool { probe.passed }
}

/// Runs the probe in a child process: loading a filter cannot be undone, so the
/// checking process itself stays unfiltered.
public enum SeccompCheck {
    /// Compiles `profile`, writes it to a temporary file and runs
    /// `probeCommand(file)`, which must print a `SeccompProbeReport` as JSON.
    public static func run(
        profile: SeccompProfile, label: String, probeCommand: (String) -> [String]
    ) async throws -> SeccompCheckResult {
        let compile = try profile.compile()
        let file = FileManager.default.temporaryDirectory
            .appendingPathComponent("patina-seccomp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json")
        try Data(profile.dockerJSON().utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let command = probeCommand(file.path)
        let started = Date()
        let result: ExecutionResult<Void, StringOutput<UTF8>, StringOutput<UTF8>>
        do {
            result = try await Subprocess.run(
                .path(FilePath(command[0])), arguments: Arguments(Array(command.dropFirst())),
                output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        } catch {
            throw SeccompError.probeFailed(reason: "cannot run \(command[0]): \(error)")
        }
        let seconds = Date().timeIntervalSince(started)
        let stderr = result.standardError.trimmingCharacters(in: .whitespacesAndNewlines)
        let lastLine = stderr.split(separator: "\n").last.map(String.init) ?? ""
        // The child prints its report even when checks fail (and exits non-zero);
        // no report at all means it could not load the filter or crashed.
        guard let report = try? JSONDecoder().decode(SeccompProbeReport.self, from: Data(result.standardOutput.utf8)) else {
            let status: String
            switch result.terminationStatus {
            case .exited(let code): status = "exit \(code)"
            case .signaled(let signal): status = "signal \(signal)"
            }
            throw SeccompError.probeFailed(reason: "`\(command.joined(separator: " "))` gave no report (\(status))" + (lastLine.isEmpty ? "" : ": \(lastLine)"))
        }
        return SeccompCheckResult(profile: label, compile: compile, probe: report, probeSeconds: seconds)
    }

    /// This executable, for re-running it as the probe child.
    public static func currentExecutable() throws -> String {
        do {
            return try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        } catch {
            throw SeccompError.probeFailed(reason: "cannot find this executable through /proc/self/exe")
        }
    }
}
