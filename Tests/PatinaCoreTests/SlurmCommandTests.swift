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
            "--output=/home/u/.patina/b/task-%a.out", "--cpus-per-task=2", "--mem=4608M", "--export=ALL", "--no-requeue",
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
        #expect(SlurmCommands.squeue(job: "42") == ["squeue", "--noheader", "--array", "--states=all", "--jobs=42", "--format=%K|%T|%N|%r"])
        let tasks = SlurmCommands.parseTasks("""
            0|RUNNING|node1|None
            1|PENDING||Resources
            2|COMPLETED|node2|None
            3-7%3|PENDING||JobArrayTaskLimit
            N/A|CANCELLED||JobArrayTaskLimit

            """)
        #expect(tasks.count == 4)
        #expect(tasks[SlurmCommands.remainingTasks]?.state == "CANCELLED")
        #expect(tasks[0] == SlurmCommands.TaskState(index: 0, state: "RUNNING", node: "node1", reason: nil))
        #expect(tasks[1]?.reason == "Resources" && tasks[1]?.node == nil && tasks[1]?.isFinished == false)
        #expect(tasks[2]?.isFinished == true)
    }

    @Test func theJobsEnvironmentHoldsNoCredential() {
        let environment = ["PATH": "/usr/bin", "ANTHROPIC_API_KEY": "sk-ant-real-secret-value", "CLAUDE_CODE_OAUTH_TOKEN": "x",
                           "MY_COPY": "prefix sk-ant-real-secret-value", "PATINA_HOME": "/shared/patina"]
        let changes = SlurmExecutor.jobEnvironment(environment, secrets: ["sk-ant-real-secret-value"])
        #expect(Set(changes.keys) == ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "MY_COPY"])
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
