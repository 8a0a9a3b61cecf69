import Foundation
import PatinaSandbox
import Synchronization

/// Step "lifecycle": the devcontainer's onCreate, updateContent and postCreate
/// commands, in a container started like the agent's (its user, its protections,
/// the firewall on, its worktree, home and caches) but holding no credential,
/// before the agent starts. Their output goes to the step log; a failure stops the
/// run with the end of that output, and the agent never starts.
extension RunLifecycle {
    func runLifecycleCommands(_ commands: [LifecycleCommand], in context: SandboxContext, record: inout RunRecord) async throws {
        try Data(LifecycleScript.render(commands).utf8).write(to: layout.lifecycleScript)
        var spec = AgentSandbox.spec(plan: plan, layout: layout, image: context.image, network: context.sandbox.network,
                                     labels: containerLabels, extras: context.extras, worktree: context.worktree)
        spec.name = "patina-\(plan.id)-lifecycle"
        spec.labels["patina.role"] = "lifecycle"
        spec.passEnvironment = plan.sandbox.trust.passedVariables
        spec.mounts.append(Mount(source: layout.lifecycleScript.path, target: RunLayout.containerLifecycle, readOnly: true))
        spec.command = ["/bin/sh", RunLayout.containerLifecycle]
        progress.step("devcontainer: " + commands.map(\.label).joined(separator: ", "))

        let tail = LineTail(limit: 20)
        let outcome = LifecycleOutcome(commands: commands)
        let steps = self.steps
        let (result, state) = try await runWatched(spec, role: "lifecycle", sandbox: context.sandbox, timeout: plan.timeoutSeconds) { line in
            if let event = LifecycleScript.event(line) {
                outcome.record(event)
                steps.note(line)
            } else {
                steps.note("| " + line)
                tail.append(line)
            }
        }
        for line in result.standardError.split(separator: "\n") {
            steps.note("| " + line)
            tail.append(String(line))
        }
        record.lifecycle = outcome.results
        if let reason = await control.reason { throw Stopped(reason: reason) }
        let exitCode = state?.exitCode ?? Int(result.exitCode)
        guard exitCode == 0 else {
            let failed = outcome.failed ?? outcome.current ?? "the devcontainer's lifecycle commands"
            let last = tail.text.split(separator: "\n").suffix(5).joined(separator: " ⏎ ")
            throw SandboxFailure("\(failed) failed (exit \(exitCode)) before the agent started: \(last.isEmpty ? "no output" : last)")
        }
        progress.step("devcontainer commands done")
    }
}

/// The shell script that runs the lifecycle commands in order, marking each one's
/// start and end on its own line so patina can tell which one failed.
enum LifecycleScript {
    static let marker = "patina> "

    static func render(_ commands: [LifecycleCommand]) -> String {
        var script = """
            # patina: the devcontainer's lifecycle commands, run as the agent in the sandbox
            # before it starts. A failure stops here, and the run with it.
            exec 2>&1
            run() {
              label=$1; shift
              echo "\(marker)start $label"
              "$@"
              status=$?
              if [ "$status" -ne 0 ]; then echo "\(marker)failed $status $label"; exit "$status"; fi
              echo "\(marker)ok $label"
            }

            """
        for command in commands {
            script += "run " + ([command.label] + command.arguments).map(AgentImage.shellQuoted).joined(separator: " ") + "\n"
        }
        return script
    }

    enum Event: Equatable {
        case start(String)
        case ok(String)
        case failed(String, Int)
    }

    static func event(_ line: String) -> Event? {
        guard line.hasPrefix(marker) else { return nil }
        let words = line.dropFirst(marker.count).split(separator: " ", maxSplits: 1).map(String.init)
        guard words.count == 2 else { return nil }
        switch words[0] {
        case "start": return .start(words[1])
        case "ok": return .ok(words[1])
        case "failed":
            let rest = words[1].split(separator: " ", maxSplits: 1).map(String.init)
            guard rest.count == 2, let code = Int(rest[0]) else { return nil }
            return .failed(rest[1], code)
        default: return nil
        }
    }
}

/// What the lifecycle script reported, as it streams.
final class LifecycleOutcome: Sendable {
    private struct State {
        var byLabel: [String: Int] = [:]
        var current: String?
        var failed: String?
    }
    private let state = Mutex(State())
    private let labels: [String]

    init(commands: [LifecycleCommand]) { labels = commands.map(\.label) }

    var current: String? { state.withLock { $0.current } }
    var failed: String? { state.withLock { $0.failed } }

    func record(_ event: LifecycleScript.Event) {
        state.withLock { state in
            switch event {
            case .start(let label): state.current = label
            case .ok(let label): state.byLabel[label] = 0
            case .failed(let label, let code):
                state.byLabel[label] = code
                state.failed = label
            }
        }
    }

    var results: [LifecycleResult] {
        state.withLock { state in labels.map { LifecycleResult(label: $0, exitCode: state.byLabel[$0]) } }
    }
}
