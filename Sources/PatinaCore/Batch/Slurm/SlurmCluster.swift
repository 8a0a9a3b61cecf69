import Foundation
import PatinaSandbox

/// The environment failed: no Slurm client, or a controller that does not answer.
/// Exit 3, nothing created.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Slurm options of a batch (`--slurm-*` flags, `"slurm"` in .patina/config.json).
public struct SlurmOptions: Sendable, Equatable {
    public var partition: String?
    public var account: String?
    /// sbatch's `--time` (e.g. `2:00:00`).
    public var time: String?
    /// More sbatch arguments, passed as given.
    public var extraArguments: [String] = []
    /// Where the submitting patina serves the runs' model proxies (an address of this
    /// machine the nodes reach); nil: the docker bridge's gateway.
    public var proxyListen: String?

    public init(partition: String? = nil, account: String? = nil, time: String? = nil, extraArguments: [String] = [], proxyListen: String? = nil) {
        self.partition = partition
        self.account = account
        self.time = time
        self.extraArguments = extraArguments
        self.proxyListen = proxyListen
    }
}

extension SlurmOptions {
    /// These options (from flags) over the repository's `"slurm"` settings: a flag wins,
    /// sbatch arguments of both are passed (the config's first).
    public func over(_ config: PatinaConfig.Slurm?) -> SlurmOptions {
        guard let config else { return self }
        return SlurmOptions(partition: partition ?? config.partition, account: account ?? config.account, time: time ?? config.time,
                            extraArguments: (config.args ?? []) + extraArguments, proxyListen: proxyListen ?? config.proxyListen)
    }
}

/// The Slurm client commands, as values (unit-tested as arrays) and parsers of their output.
public enum SlurmCommands {
    /// sbatch's command line for a batch's job array: `tasks` tasks, at most `jobs` at once.
    public static func sbatch(
        script: URL, jobName: String, tasks: Int, jobs: Int, cpus: Int, memoryMB: Int,
        directory: URL, output: URL, options: SlurmOptions
    ) -> [String] {
        var arguments = [
            "sbatch", "--parsable", "--array=0-\(tasks - 1)%\(max(1, jobs))", "--job-name=\(jobName)",
            "--chdir=\(directory.path)", "--output=\(output.path)", "--cpus-per-task=\(cpus)", "--mem=\(memoryMB)M",
            // The environment sbatch sees holds no credential (SlurmExecutor removes them).
            "--export=ALL",
            // A task Slurm requeues (its node lost, preemption) starts its item over on another
            // node as a new run; the submitting patina hands it over (SlurmExecutor).
            "--requeue",
        ]
        if let partition = options.partition { arguments.append("--partition=\(partition)") }
        if let account = options.account { arguments.append("--account=\(account)") }
        if let time = options.time { arguments.append("--time=\(time)") }
        arguments += options.extraArguments
        arguments.append(script.path)
        return arguments
    }

    /// One line per array task, finished ones too: `TASK|STATE|NODE|REASON|RESTARTS|`.
    public static func squeue(job: String) -> [String] {
        ["squeue", "--noheader", "--array", "--states=all", "--jobs=\(job)", "--Format=ArrayTaskID:|,State:|,NodeList:|,Reason:|,RestartCnt:|"]
    }

    /// The Slurm state of one array task.
    public struct TaskState: Sendable, Equatable {
        public var index: Int
        public var state: String
        public var node: String?
        public var reason: String?
        /// How often Slurm requeued the task (`SLURM_RESTART_COUNT` of its current start).
        public var restarts: Int = 0

        /// Requeued, the earlier start's processes are gone: not completing any more.
        public var isPastEarlierStart: Bool { !["COMPLETING", "REQUEUED"].contains(state) }

        public var isFinished: Bool { !["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"].contains(state) }
    }

    /// squeue's lines (`squeue(job:)`), by array index. The array's tasks that were never
    /// split off (still pending, or cancelled while pending) share one line whose task is
    /// `N/A`: it is kept under `remainingTasks`.
    public static func parseTasks(_ output: String) -> [Int: TaskState] {
        var tasks: [Int: TaskState] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 4, let index = Int(fields[0]) ?? (fields[0] == "N/A" ? remainingTasks : nil) else { continue }
            tasks[index] = TaskState(index: index, state: fields[1], node: fields[2].isEmpty ? nil : fields[2],
                                     reason: ["", "None", "(null)"].contains(fields[3]) ? nil : fields[3],
                                     restarts: fields.count > 4 ? Int(fields[4]) ?? 0 : 0)
        }
        return tasks
    }

    /// Slurm's reason for a task it requeued after its start failed on the node, held
    /// until an administrator releases it.
    public static let launchFailedHeld = "launch failed requeued held"

    /// The key of the line standing for the array's tasks not listed on their own.
    public static let remainingTasks = -1

    /// A run's Slurm request: its CPU limit rounded up, its memory limit plus patina's own
    /// (the node's patina, the network holder, the image build) in MiB.
    public static func request(for limits: ResourceLimits) -> (cpus: Int, memoryMB: Int) {
        let cpus = max(1, Int((Double(limits.cpus) ?? 1).rounded(.up)))
        return (cpus, megabytes(limits.memory) + 512)
    }

    static func megabytes(_ size: String) -> Int {
        let lower = size.lowercased()
        let number = Double(lower.filter { $0.isNumber || $0 == "." }) ?? 0
        switch lower.last {
        case "g": return Int(number * 1024)
        case "m": return Int(number)
        case "k": return max(1, Int(number / 1024))
        default: return max(1, Int(number / 1024 / 1024))
        }
    }

    /// A `'…'` word for sh.
    static func shellQuoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The job's script: exactly one patina command per task; no credential, no secret.
    public static func jobScript(patina: String, batchID: String) -> String {
        """
        #!/bin/sh
        # patina batch \(batchID) on Slurm: each array task runs one run of the batch on its node.
        # Written by the submitting patina, which serves the runs' model proxy and holds the credential.
        exec \(shellQuoted(patina)) batch-task --batch \(shellQuoted(batchID)) --index "$SLURM_ARRAY_TASK_ID"

        """
    }
}

/// The cluster, as the submitting patina sees it.
public enum SlurmCluster {
    /// Checks that sbatch exists and the controller answers, before anything is created.
    public static func check() async throws {
        let version: CommandResult
        do {
            version = try await Command.run(["sbatch", "--version"])
        } catch {
            throw ClusterError("no Slurm here: `sbatch` was not found on PATH (--on slurm submits the batch with sbatch)")
        }
        guard version.succeeded else {
            throw ClusterError("no Slurm here: `sbatch --version` failed (exit \(version.exitCode)): \(lastLine(version.standardError))")
        }
        let ping = try? await Command.run(["scontrol", "ping"])
        guard let ping, ping.succeeded, ping.standardOutput.contains(" is UP") else {
            // "Slurmctld(primary) at HOST is DOWN", then a box of asterisks.
            let said = ping.map { answer in
                (answer.standardOutput + "\n" + answer.standardError).split(separator: "\n")
                    .first { !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.hasPrefix("*") }
                    .map(String.init) ?? "no answer"
            } ?? "scontrol not found"
            throw ClusterError("the Slurm controller does not answer (`scontrol ping`: \(said))")
        }
    }

    /// A store that local runs moved to this machine's neutral folder (`StorePlacement`)
    /// is not on the filesystem the nodes share: a node would find no batch there.
    public static func checkShared(_ store: RunStore, neutralRoot: URL = StorePlacement.neutralRoot) throws {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: store.root.path),
              URL(fileURLWithPath: target).standardizedFileURL.path.hasPrefix(neutralRoot.standardizedFileURL.path + "/") else { return }
        throw ClusterError("this repository's runs are kept in \(target), on this machine only (local runs moved them there), so Slurm's nodes cannot see them: "
            + "give cluster batches a PATINA_HOME of their own on the shared filesystem (see docs/CLUSTER.md)")
    }

    /// What Slurm says now of array tasks (`JOB_TASK` each): each task's state, or a note
    /// when Slurm no longer knows it (long over). A task of a job squeue does not answer
    /// for is not listed. One squeue call per array job.
    public static func currentTasks(_ tasks: Set<String>) async -> [String: TaskFate] {
        var byJob: [String: [(task: String, index: Int)]] = [:]
        for task in tasks {
            let parts = task.split(separator: "_")
            guard parts.count == 2, let index = Int(parts[1]) else { continue }
            byJob[String(parts[0]), default: []].append((task, index))
        }
        var fates: [String: TaskFate] = [:]
        for (job, members) in byJob {
            guard let answer = try? await Command.run(SlurmCommands.squeue(job: job)) else { continue }
            guard answer.succeeded else {
                // Aged out of the controller's memory (MinJobAge).
                if answer.standardError.contains("Invalid job id") {
                    for member in members { fates[member.task] = .forgotten("(no longer known to Slurm)") }
                }
                continue
            }
            let states = SlurmCommands.parseTasks(answer.standardOutput)
            for member in members {
                // A task that ran is listed on its own line while Slurm remembers it.
                fates[member.task] = states[member.index].map(TaskFate.known) ?? .forgotten("(no longer listed by squeue)")
            }
        }
        return fates
    }

    /// What Slurm knows of one array task.
    public enum TaskFate: Sendable, Equatable {
        case known(SlurmCommands.TaskState)
        /// Slurm no longer lists it: long over.
        case forgotten(String)

        /// How the start of the task that a run began under (`restarts`, its
        /// `RunExecutor.restarts`) ended: its final state (e.g. `NODE_FAIL`), `REQUEUED`
        /// when Slurm started the task again since, or the note; nil while it goes on.
        public func ending(restarts: Int) -> String? {
            switch self {
            case .forgotten(let note): return note
            case .known(let state):
                if state.restarts > restarts { return state.isPastEarlierStart ? "REQUEUED" : nil }
                return state.isFinished ? state.state : nil
            }
        }
    }

    static func lastLine(_ text: String) -> String {
        text.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
    }
}
