import Foundation
import PatinaGit
import PatinaSandbox
import Synchronization

/// Step "check": the user's command (`--check CMD`) in a fresh sandbox container
/// from the same image, with the same protections and firewall, on a clean
/// checkout of the collected head — not the agent's worktree, so nothing the
/// agent left running or wrote outside git counts. Never holds a credential.
///
/// The checkout is a git repository as the agent's was: the run's branch at the collected
/// head in a git directory of its own, the host's objects (as they are after collection)
/// and tags readable but never writable, so tools that version from git (setuptools-scm,
/// hatch-vcs, `git describe`) work on good code. The devcontainer's lifecycle commands run
/// first, as they did before the agent.
extension RunLifecycle {
    func runCheck(_ command: String, image: String, sandbox: StartedSandbox, caches lease: CacheLease?, head: ObjectID) async -> CheckResult {
        let start = Date()
        func failed(_ why: String) -> CheckResult {
            CheckResult(command: command, exitCode: nil, passed: false,
                        durationS: Date().timeIntervalSince(start), outputTail: "", error: why)
        }
        // The agent's timeout does not stop the check; a user's stop does.
        await control.resetAgentStop()
        switch await control.reason {
        case .interrupted?: return failed("not run: the run was interrupted")
        case .diskLow(let shortage)?: return failed("not run: \(shortage)")
        default: break
        }
        let fm = FileManager.default
        do {
            for url in [layout.checkWorkspace, layout.checkHome, layout.checkGit, layout.checkObjects] { try? fm.removeItem(at: url) }
            try plan.repository.exportTree(of: head, to: layout.checkWorkspace)
            try fm.createDirectory(at: layout.checkHome, withIntermediateDirectories: true)
            try SandboxGitDirectory.create(
                at: layout.checkGit, host: plan.repository, branch: plan.branch, base: head,
                hostObjectsPathInContainer: RunLayout.containerHostObjects)
            writeHostTags(into: layout.checkGit)
            // The check's own gitfile, in its workspace (git refuses one owned by another user).
            try Data("gitdir: \(RunLayout.containerGit)\n".utf8).write(to: layout.checkWorkspace.appendingPathComponent(".git"))
            try snapshotHostObjects(into: layout.checkObjects)
            if getuid() == 0 {
                for url in [layout.checkWorkspace, layout.checkHome, layout.checkGit] {
                    Ownership.change(url, uid: plan.agentUID, gid: plan.agentGID)
                }
            }
        } catch {
            return failed("could not check out \(head.short) for the check: \(error)")
        }
        progress.step("check: \(command)")
        var spec = AgentSandbox.spec(plan: plan, layout: layout, image: image, network: sandbox.network, labels: containerLabels)
        spec.name = "patina-\(plan.id)-check"
        spec.labels["patina.role"] = "check"
        spec.mounts = [
            Mount(source: layout.checkWorkspace.path, target: RunLayout.workspace, readOnly: false),
            Mount(source: layout.checkGit.path, target: RunLayout.containerGit, readOnly: false),
            Mount(source: layout.checkObjects.path, target: RunLayout.containerHostObjects, readOnly: true),
            Mount(source: layout.checkHome.path, target: RunLayout.containerHome, readOnly: false),
        ]
        var script = "exec 2>&1\n"
        if let lifecycle = plan.sandbox.devcontainer?.lifecycle, !lifecycle.isEmpty {
            // What onCreateCommand & co. set up before the agent, set up again here.
            try? Data(LifecycleScript.render(lifecycle).utf8).write(to: layout.lifecycleScript)
            spec.mounts.append(Mount(source: layout.lifecycleScript.path, target: RunLayout.containerLifecycle, readOnly: true))
            script += "/bin/sh \(RunLayout.containerLifecycle) || exit $?\n"
        }
        // No credential. The warm caches the agent had, read through overlays: the check
        // downloads no more than the agent did, and what it writes there goes with it.
        CheckCaches.remove(under: layout.checkCaches)
        let caches = CheckCaches.mount(lease, under: layout.checkCaches, uid: plan.agentUID, gid: plan.agentGID)
        defer {
            if !CheckCaches.remove(under: layout.checkCaches) {
                progress.warn("the check's cache overlays under \(layout.checkCaches.path) could not be unmounted")
            }
        }
        for note in caches.notes { progress.note(note) }
        if !caches.mounts.isEmpty {
            steps.note("check: warm caches through overlays: " + caches.mounts.map { "\($0.target) ← \($0.source)" }.joined(separator: ", "))
        }
        spec.mounts += caches.mounts
        spec.passEnvironment = plan.sandbox.trust.passedVariables
        spec.environment = caches.environment.merging(["HOME": RunLayout.containerHome, "PATINA_RUN_ID": plan.id, "PATINA_CHECK": "1"]) { $1 }
        let timeout = plan.checkTimeoutSeconds
        spec.command = ["timeout", "--signal=KILL", String(Int(timeout) + 30), "bash", "-c", script + command]

        _ = fm.createFile(atPath: layout.checkLog.path, contents: nil)
        let log = try? FileHandle(forWritingTo: layout.checkLog)
        defer { try? log?.close() }
        let tail = LineTail(limit: 40)
        let result: CommandResult
        let state: (exitCode: Int, oomKilled: Bool)?
        do {
            let redactor = self.redactor
            (result, state) = try await runWatched(spec, role: "check", sandbox: sandbox, timeout: timeout) { raw in
                let line = redactor(raw)
                try? log?.write(contentsOf: Data((line + "\n").utf8))
                tail.append(line)
            }
        } catch {
            return failed("the check's container could not run: \(error)")
        }
        if !result.standardError.isEmpty {
            let errors = redactor(result.standardError)
            try? log?.write(contentsOf: Data(errors.utf8))
            for line in errors.split(separator: "\n") { tail.append(String(line)) }
        }
        let stopped = await control.reason
        let exitCode = state?.exitCode ?? Int(result.exitCode)
        let timedOut = stopped == .timeout
        let passed = exitCode == 0 && stopped == nil
        let duration = (Date().timeIntervalSince(start) * 1000).rounded() / 1000
        progress.step("check \(passed ? "passed" : "FAILED") (exit \(exitCode)\(timedOut ? ", timed out" : ""), \(DurationParser.format(duration)))")
        var check = CheckResult(
            command: command, exitCode: exitCode, passed: passed, durationS: duration, outputTail: tail.text,
            timedOut: timedOut,
            error: timedOut ? "stopped after the \(DurationParser.format(timeout)) check timeout"
                : stopped == .interrupted ? "interrupted" : nil)
        if let report = plan.checkReport { readReport(report, into: &check) }
        return check
    }

    /// The check's JUnit report, from its checkout once its container is gone: never
    /// through a symbolic link, at most `JUnitReport.byteLimit` bytes; what cannot be read
    /// is a note on the check.
    func readReport(_ path: String, into check: inout CheckResult) {
        switch CheckReportFile.read(path, in: layout.checkWorkspace) {
        case .failure(let problem):
            check.reportNote = "--check-report \(path): \(problem.reason)"
        case .success(let data):
            do {
                let report = try JUnitReport.parse(data)
                check.tests = report.counts
                check.failures = report.failures
                check.failuresNotKept = report.failuresNotKept == 0 ? nil : report.failuresNotKept
                progress.step("check report: \(report.counts.total) tests, \(report.counts.failed) failed, \(report.counts.skipped) skipped")
                return
            } catch let problem as JUnitReport.Unreadable {
                check.reportNote = "--check-report \(path): \(problem.reason)"
            } catch {
                check.reportNote = "--check-report \(path): \(error)"
            }
        }
        if let note = check.reportNote { progress.note(redactor(note)) }
    }
}

/// Reads a file the check wrote, below its checkout, as untrusted: every step of the path
/// a real directory (no symbolic link out of the checkout), the file a regular file opened
/// without following links, and no more than the report's limit read.
enum CheckReportFile {
    static func read(_ path: String, in root: URL, limit: Int = JUnitReport.byteLimit) -> Result<Data, JUnitReport.Unreadable> {
        let steps = path.split(separator: "/").map(String.init)
        var directory = root.path
        for step in steps.dropLast() {
            directory += "/" + step
            var info = stat()
            guard lstat(directory, &info) == 0 else { return .failure(JUnitReport.Unreadable(reason: "the check wrote no such file")) }
            guard info.st_mode & S_IFMT == S_IFDIR else { return .failure(JUnitReport.Unreadable(reason: "\(step) is not a directory (a symbolic link is not followed)")) }
        }
        let file = directory + "/" + (steps.last ?? "")
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            return .failure(JUnitReport.Unreadable(reason: errno == ELOOP ? "a symbolic link, not followed" : "the check wrote no such file"))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return .failure(JUnitReport.Unreadable(reason: "not a regular file")) }
        guard Int(info.st_size) <= limit else {
            return .failure(JUnitReport.Unreadable(reason: "\(info.st_size) bytes, more than the \(limit) read"))
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while data.count <= limit {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        guard data.count <= limit else { return .failure(JUnitReport.Unreadable(reason: "more than the \(limit) bytes read")) }
        return .success(data)
    }
}

/// The last lines of an output, kept while it streams.
final class LineTail: Sendable {
    private let lines = Mutex<[String]>([])
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func append(_ line: String) {
        lines.withLock { lines in
            lines.append(String(line.prefix(500)))
            if lines.count > limit { lines.removeFirst(lines.count - limit) }
        }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}
