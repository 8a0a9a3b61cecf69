import Foundation
import PatinaTestSupport
import Testing

/// Reads a run's files after `patina yolo --json`.
struct FinishedRun {
    let output: ProcessRunner.Output
    let record: [String: Any]

    init(_ output: ProcessRunner.Output) throws {
        self.output = output
        record = try PatinaRunner.record(output)
    }

    var id: String { record["id"] as? String ?? "" }
    var status: String { record["status"] as? String ?? "" }
    var branch: String { record["branch"] as? String ?? "" }
    var head: String { record["head_commit"] as? String ?? "" }
    var base: String { record["base_commit"] as? String ?? "" }
    var worktree: URL { URL(fileURLWithPath: record["worktree"] as? String ?? "/nonexistent") }
    var runDir: URL { URL(fileURLWithPath: record["run_dir"] as? String ?? "/nonexistent") }
    var files: [[String: Any]] { record["files_changed"] as? [[String: Any]] ?? [] }

    func file(_ name: String) -> String? {
        try? String(contentsOf: runDir.appendingPathComponent(name), encoding: .utf8)
    }

    /// Parsed session.jsonl lines.
    var sessionLines: [[String: Any]] {
        (file("session.jsonl") ?? "").split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    var hasInitAndResult: Bool {
        sessionLines.contains { $0["type"] as? String == "system" && $0["subtype"] as? String == "init" }
            && sessionLines.contains { $0["type"] as? String == "result" }
    }
}

/// Asserts what must hold after every run, whatever its outcome: the user's
/// checkout and main are unchanged, the worktree is clean, no container is left.
func expectUserRepositoryUntouched(_ repo: TemporaryRepository, mainBefore: String, run: FinishedRun,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(try repo.git("rev-parse", "main") == mainBefore, "main moved", sourceLocation: sourceLocation)
    #expect(try repo.git("status", "--porcelain") == "", "the user's checkout changed", sourceLocation: sourceLocation)
    #expect(try repo.git("symbolic-ref", "HEAD") == "refs/heads/main", sourceLocation: sourceLocation)
    let worktreeStatus = try ProcessRunner.check(["git", "-C", run.worktree.path, "status", "--porcelain"])
    #expect(worktreeStatus == "", "worktree not clean: \(worktreeStatus)", sourceLocation: sourceLocation)
    #expect(try PatinaRunner.leftoverContainers(runID: run.id).isEmpty, "containers left behind", sourceLocation: sourceLocation)
}

/// A patina command run on another thread, for a test that acts while it runs.
final class BackgroundRun: @unchecked Sendable {
    private var output: ProcessRunner.Output?
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> ProcessRunner.Output) {
        DispatchQueue.global().async {
            self.output = try? body()
            self.done.signal()
        }
    }

    /// Its output once it finished (nil when it could not run).
    func wait() -> ProcessRunner.Output? {
        done.wait()
        return output
    }
}

/// A patina command started in the background, for a test that stops it in the middle as a
/// user would (Ctrl-C) or as a crash would (SIGKILL).
struct StartedPatina {
    let process: Process

    init(_ patina: PatinaRunner, _ arguments: [String]) throws {
        process = try patina.start(arguments)
    }

    /// Waits while patina runs until `ready` holds (at most `seconds`), then `settle` seconds
    /// more (the agent's command gets going); expects patina still running.
    func wait(until ready: () -> Bool, seconds: Double = 180, settle: Double = 1.5,
              sourceLocation: SourceLocation = #_sourceLocation) {
        let deadline = Date().addingTimeInterval(seconds)
        while !ready() && Date() < deadline && process.isRunning { Thread.sleep(forTimeInterval: 0.2) }
        Thread.sleep(forTimeInterval: settle)
        #expect(process.isRunning, "patina ended before it could be stopped", sourceLocation: sourceLocation)
    }

    /// Ctrl-C; expects patina to stop within a minute with exit status 130.
    func interrupt(sourceLocation: SourceLocation = #_sourceLocation) {
        process.interrupt()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(!process.isRunning, "patina did not stop after Ctrl-C", sourceLocation: sourceLocation)
        if process.isRunning { kill() } else {
            #expect(process.terminationStatus == 130, sourceLocation: sourceLocation)
        }
    }

    /// Waits for patina to end by itself (at most `seconds`); its exit status, nil if it did not.
    func finish(seconds: Double = 180) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning { kill(); return nil }
        return process.terminationStatus
    }

    /// SIGKILL, as a crash or the OOM killer would.
    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// The repository's container whose name ends in `suffix`, once `docker exec NAME command`
/// succeeds in it (polled for up to `seconds`); nil when none did.
func awaitContainer(of repo: TemporaryRepository, endingIn suffix: String, whereSucceeds command: [String],
                    seconds: Double = 60) -> String? {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let name = (try? PatinaRunner.leftoverContainers(repository: repo))?.first(where: { $0.hasSuffix(suffix) }),
           (try? ProcessRunner.check(["docker", "exec", name] + command)) != nil {
            return name
        }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return nil
}
