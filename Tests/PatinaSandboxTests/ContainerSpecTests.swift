import Testing
@testable import PatinaSandbox

@Suite struct ContainerSpecTests {
    @Test func agentLikeSpecBuildsTheExpectedCommandLine() {
        var spec = ContainerSpec(name: "patina-x-agent", image: "patina-agent:abc")
        spec.labels = ["patina": "1", "patina.run": "x"]
        spec.user = "1000:1000"
        spec.network = "container:patina-x-net"
        spec.securityOptions = ["no-new-privileges", "seccomp=/d/seccomp.json"]
        spec.readOnlyRoot = true
        spec.tmpfs = ["/tmp:rw,exec,nosuid,nodev,size=1g"]
        spec.mounts = [Mount(source: "/w", target: "/workspace", readOnly: false), Mount(source: "/o", target: "/patina/host-objects", readOnly: true)]
        spec.passEnvironment = ["ANTHROPIC_API_KEY"]
        spec.environment = ["HOME": "/home/agent"]
        spec.pidsLimit = 512
        spec.memory = "4g"
        spec.cpus = "2"
        spec.command = ["claude", "-p", "task"]
        #expect(spec.runArguments == [
            "run", "--name", "patina-x-agent", "--label", "patina=1", "--label", "patina.run=x",
            "--user", "1000:1000", "--network", "container:patina-x-net", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--security-opt", "seccomp=/d/seccomp.json",
            "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,size=1g",
            "--mount", "type=bind,source=/w,target=/workspace",
            "--mount", "type=bind,source=/o,target=/patina/host-objects,readonly",
            "--env", "HOME=/home/agent", "--env", "ANTHROPIC_API_KEY",
            "--pids-limit", "512", "--memory", "4g", "--memory-swap", "4g", "--cpus", "2",
            "patina-agent:abc", "claude", "-p", "task",
        ])
    }

    @Test func secretsArePassedByNameOnly() {
        var spec = ContainerSpec(name: "n", image: "i")
        spec.passEnvironment = ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]
        #expect(!spec.runArguments.contains { $0.contains("=") && $0.hasPrefix("ANTHROPIC_API_KEY") })
        #expect(spec.runArguments.contains("ANTHROPIC_API_KEY"))
    }
}

@Suite struct MountTests {
    @Test func pathsWithCommasAndSpacesAreQuoted() {
        #expect(Mount(source: "/a b/c", target: "/w", readOnly: false).argument == "type=bind,source=/a b/c,target=/w")
        #expect(Mount(source: "/a,b", target: "/w", readOnly: true).argument == #"type=bind,"source=/a,b",target=/w,readonly"#)
        #expect(Mount(source: #"/a"b,c"#, target: "/w", readOnly: false).argument == #"type=bind,"source=/a""b,c",target=/w"#)
    }

    @Test func aVolumeIsMountedWithoutCopyingTheImagesFiles() {
        #expect(Mount(volume: "patina-claude-0123", target: "/patina/claude", readOnly: true).argument
            == "type=volume,source=patina-claude-0123,target=/patina/claude,readonly,volume-nocopy")
    }
}
