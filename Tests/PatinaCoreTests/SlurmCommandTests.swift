import Foundation
@testable import PatinaCore
import Testing

/// The Slurm executor's command lines as arrays, squeue's output parsed, the job's
/// environment without a credential: no cluster needed.
@Suite struct SlurmCommandTests {
    @Test func sbatchSubmitsOneArrayWithTheLimitAndTheOptions() {
        let options = SlurmOptions(partition: "gpu", account: "lab", time: "2:00:00", extraArguments: ["--qos=short"])
        let arguments = SlurmCommands.sbatch(
            script: URL(fileURLWithPath: "/home/u/.patina/b/job.sh"), jobName: "patina-b", tasks: 8, jobs: 3, cpus: 2, memoryMB: 4608,
            directory: URL(fileURLWithPath: "/home/u/repo"), output: URL(fileURLWithPath: "/home/u/.patina/b/task-%a.out"), options: options)
        #expect(arguments == [
            "sbatch", "--parsable", "--array=0-7%3", "--job-name=patina-b", "--chdir=/home/u/repo",
            "--output=/home/u/.patina/b/task-%a.out", "--cpus-per-task=2", "--mem=4608M", "--export=ALL", "--requeue",
            "--partition=gpu", "--account=lab", "--time=2:00:00", "--qos=short", "/home/u/.patina/b/job.sh",
        ])
    }

    @Test func requestComesFromTheRunsLimits() {
        var limits = ResourceLimits()
        #expect(SlurmCommands.request(for: limits) == (2, 4096 + 512))
        limits.cpus = "1.5"
        limits.memory = "512m"
        #expect(SlurmCommands.request(for: limits) == (2, 1024))
    }

    @Test func aPlacementIsOneShortPhrase() {
        #expect(RunEvent.placementText(state: "PENDING", node: nil, reason: "JobArrayTaskLimit") == "pending (JobArrayTaskLimit)")
        #expect(RunEvent.placementText(state: "RUNNING", node: "node12", reason: nil) == "running on node12")
    }

    @Test func squeueLinesBecomeTaskStates() {
        #expect(SlurmCommands.squeue(job: "42") == ["squeue", "--noheader", "--array", "--states=all", "--jobs=42",
                                                   "--Format=ArrayTaskID:|,State:|,NodeList:|,Reason:|,RestartCnt:|"])
        // As squeue 22.05 prints them (each field ends in `|`).
        let tasks = SlurmCommands.parseTasks("""
            0|RUNNING|node1|None|0|
            1|PENDING||Resources|0|
            2|COMPLETED|node2|None|0|
            4|PENDING||BeginTime|1|
            3-7%3|PENDING||JobArrayTaskLimit|0|
            N/A|CANCELLED||JobArrayTaskLimit|0|

            """)
        #expect(tasks.count == 5)
        #expect(tasks[SlurmCommands.remainingTasks]?.state == "CANCELLED")
        #expect(tasks[0] == SlurmCommands.TaskState(index: 0, state: "RUNNING", node: "node1", reason: nil))
        #expect(tasks[1]?.reason == "Resources" && tasks[1]?.node == nil && tasks[1]?.isFinished == false)
        #expect(tasks[2]?.isFinished == true)
        #expect(tasks[4]?.restarts == 1 && tasks[4]?.isFinished == false)
    }

    /// A run's start of its task is over once the task ended, or once Slurm started it again.
    @Test func aRequeuedTaskEndsTheStartItsRunBeganUnder() {
        let requeued = SlurmCluster.TaskFate.known(SlurmCommands.TaskState(index: 0, state: "PENDING", node: nil, reason: "BeginTime", restarts: 1))
        #expect(requeued.ending(restarts: 0) == "REQUEUED")
        #expect(requeued.ending(restarts: 1) == nil)
        // Requeued while its node is alive: that start is over once it no longer completes.
        let completing = SlurmCluster.TaskFate.known(SlurmCommands.TaskState(index: 0, state: "COMPLETING", node: "n1", reason: nil, restarts: 1))
        #expect(completing.ending(restarts: 0) == nil)
        let running = SlurmCluster.TaskFate.known(SlurmCommands.TaskState(index: 0, state: "RUNNING", node: "n1", reason: nil, restarts: 1))
        #expect(running.ending(restarts: 1) == nil)
        #expect(SlurmCluster.TaskFate.known(SlurmCommands.TaskState(index: 0, state: "NODE_FAIL", node: "n1", reason: nil)).ending(restarts: 0) == "NODE_FAIL")
        #expect(SlurmCluster.TaskFate.forgotten("(no longer known to Slurm)").ending(restarts: 3) == "(no longer known to Slurm)")
    }

    /// The task file keeps its keys (a node of the same version reads it) and is replaced
    /// whole; a requeued task waits for the file of its own start.
    @Test func aRequeuedTaskWaitsForItsHandover() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("patina-slurm-task-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let store = BatchStore(runs: RunStore(home: home, repositoryCommonDirectory: home.appendingPathComponent("repo/.git")))
        let url = SlurmTask.url(index: 3, batch: "b1", store: store)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let first = SlurmTask(item: 2, runID: "r-first", model: ModelAccess(baseURL: "http://10.0.0.5:4000", variable: "ANTHROPIC_API_KEY", placeholder: "ph-1"))
        try first.write(to: url)
        let keys = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        #expect(Set(keys.keys) == ["item", "run_id", "model_base_url", "variable", "placeholder", "restarts"])
        var mode = stat()
        #expect(stat(url.path, &mode) == 0 && mode.st_mode & 0o777 == 0o600)
        // Written again (a requeue): still 0600, nothing else left beside it.
        try first.write(to: url)
        #expect(stat(url.path, &mode) == 0 && mode.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path) == [url.lastPathComponent])
        #expect(try await SlurmTaskRunner.handedOver(index: 3, batch: "b1", store: store, restarts: 0) == first)
        // Restart 1: the earlier file is not this start's; the submitting patina's arrives later.
        let second = SlurmTask(item: 2, runID: "r-second", model: ModelAccess(baseURL: "http://10.0.0.5:4001", variable: "ANTHROPIC_API_KEY", placeholder: "ph-2"),
                               restarts: 1)
        let writer = Task {
            try await Task.sleep(nanoseconds: 1_200_000_000)
            try second.write(to: url)
        }
        #expect(try await SlurmTaskRunner.handedOver(index: 3, batch: "b1", store: store, restarts: 1, patience: 30) == second)
        try await writer.value
        // The first start, cut off from the cluster meanwhile, no longer writes its run's record.
        let firstOwns = SlurmTaskRunner.owner(of: first, file: url)
        let secondOwns = SlurmTaskRunner.owner(of: second, file: url)
        #expect(!firstOwns("r-first") && secondOwns("r-second") && firstOwns("some-other-run"))
        var cutOff = RunStore(home: home, repositoryCommonDirectory: home.appendingPathComponent("repo/.git"))
        cutOff.owns = firstOwns
        let late = BatchReportTests.run("r-first", status: .interrupted)
        #expect(throws: RunStore.Superseded.self) { try cutOff.save(late) }
        #expect(!FileManager.default.fileExists(atPath: cutOff.recordURL("r-first").path))
        // Nobody hands restart 2 over: one line saying what to do.
        await #expect(throws: PlanError.self) {
            try await SlurmTaskRunner.handedOver(index: 3, batch: "b1", store: store, restarts: 2, patience: 1)
        }
        // A start that waited while Slurm requeued the task again runs nothing.
        await #expect(throws: PlanError.self) {
            try await SlurmTaskRunner.handedOver(index: 3, batch: "b1", store: store, restarts: 0, patience: 30)
        }
    }

    /// A store local runs moved to this machine's neutral folder is refused before anything
    /// is submitted; a store in the (shared) home is fine.
    @Test func aStoreOnThisMachineOnlyIsNoPlaceForACluster() throws {
        let top = FileManager.default.temporaryDirectory.appendingPathComponent("patina-slurm-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: top) }
        let neutral = top.appendingPathComponent("stores")
        let store = RunStore(home: top.appendingPathComponent("home"), repositoryCommonDirectory: top.appendingPathComponent("repo/.git"))
        try FileManager.default.createDirectory(at: store.root, withIntermediateDirectories: true)
        try SlurmCluster.checkShared(store, neutralRoot: neutral)
        try FileManager.default.removeItem(at: store.root)
        try FileManager.default.createDirectory(at: neutral.appendingPathComponent("0123abcd"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: store.root.path, withDestinationPath: neutral.appendingPathComponent("0123abcd").path)
        #expect(throws: ClusterError.self) { try SlurmCluster.checkShared(store, neutralRoot: neutral) }
    }

    @Test func theJobsEnvironmentHoldsNoCredential() {
        let environment = ["PATH": "/usr/bin", "ANTHROPIC_API_KEY": "sk-ant-real-secret-value", "CLAUDE_CODE_OAUTH_TOKEN": "x",
                           "MY_COPY": "prefix sk-ant-real-secret-value", "PATINA_HOME": "/shared/patina"]
        let changes = SlurmExecutor.jobEnvironment(environment, secrets: ["sk-ant-real-secret-value"])
        #expect(Set(changes.keys) == ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "MY_COPY"])
        // A submitting patina inside a requeued job does not pass its count to its tasks.
        let inAJob = SlurmExecutor.jobEnvironment(["PATH": "/usr/bin", "SLURM_RESTART_COUNT": "2", "SLURM_CONF": "/etc/slurm.conf"], secrets: [])
        #expect(Set(inAJob.keys) == ["SLURM_RESTART_COUNT"])
        #expect(changes.values.allSatisfy { $0 == nil })
    }

    @Test func theJobScriptRunsOneTaskAndQuotesItsWords() {
        let script = SlurmCommands.jobScript(patina: "/opt/pat'ina/patina", batchID: "b1")
        #expect(script.hasPrefix("#!/bin/sh\n"))
        #expect(script.contains(#"exec '/opt/pat'\''ina/patina' batch-task --batch 'b1' --index "$SLURM_ARRAY_TASK_ID""#))
    }

    @Test func flagsWinOverTheRepositorysSlurmSettings() throws {
        let config = try JSONDecoder().decode(PatinaConfig.self, from: Data("""
            {"slurm": {"partition": "cpu", "account": "lab", "args": ["--qos=long"], "proxy_listen": "10.0.0.5"}}
            """.utf8))
        let options = SlurmOptions(partition: "gpu", extraArguments: ["--constraint=docker"]).over(config.slurm)
        #expect(options == SlurmOptions(partition: "gpu", account: "lab", time: nil, extraArguments: ["--qos=long", "--constraint=docker"],
                                        proxyListen: "10.0.0.5"))
        #expect(SlurmOptions(time: "1:00:00").over(nil) == SlurmOptions(time: "1:00:00"))
    }
}
