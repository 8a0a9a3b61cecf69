import Foundation
import Testing
@testable import PatinaSandbox

/// The Engine API client's pieces that need no daemon: which socket, the answers, the
/// create body (the same container `docker run --detach` makes from the spec).
@Suite struct DockerAPITests {
    @Test func theSocketIsTheOneTheCLIWouldUse() {
        #expect(DockerAPI.daemonSocket(environment: ["HOME": "/nonexistent"]) == "/var/run/docker.sock")
        #expect(DockerAPI.daemonSocket(environment: ["DOCKER_HOST": "unix:///run/user/1000/docker.sock"]) == "/run/user/1000/docker.sock")
        #expect(DockerAPI.daemonSocket(environment: ["DOCKER_HOST": "tcp://10.0.0.1:2376"]) == nil)
        #expect(DockerAPI.daemonSocket(environment: ["DOCKER_CONTEXT": "remote"]) == nil)
        #expect(DockerAPI.daemonSocket(environment: ["PATINA_DOCKER": "/usr/local/bin/docker-wrapper"]) == nil)
        #expect(DockerEngine(environment: ["PATINA_DOCKER": "/x/docker"]).api == nil)
        #expect(DockerEngine(environment: ["PATINA_DOCKER": "/x/docker"]).executable == "/x/docker")
    }

    @Test func answersWithAndWithoutChunkedBodies() throws {
        let plain = try DockerAPI.parse(Data("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n{\"message\":\"No such container: nope\"}\n".utf8))
        #expect(plain.status == 404)
        #expect(plain.message == "No such container: nope")
        let chunked = try DockerAPI.parse(Data("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"Id\":\"a\r\n3\r\nb\"}\r\n0\r\n\r\n".utf8))
        #expect(chunked.status == 201)
        #expect((chunked.json as? [String: Any])?["Id"] as? String == "ab")
        #expect(throws: DockerAPI.Failure.self) { try DockerAPI.parse(Data("garbage".utf8)) }
    }

    @Test func theHoldersCreateBodyCarriesEveryFlag() throws {
        var spec = ContainerSpec(name: "patina-x-net", image: "patina-netguard:1")
        spec.labels = ["patina": "1", "patina.role": "network"]
        spec.network = "bridge"
        spec.dns = ["127.0.0.1"]
        spec.capAdd = ["NET_ADMIN", "NET_RAW"]
        spec.mounts = [Mount(source: "/run/x/firewall", target: "/patina/firewall", readOnly: true)]
        spec.command = ["bash", "/patina/firewall/holder.sh"]
        spec.initProcess = true
        let body = try spec.createBody()
        let host = try #require(body["HostConfig"] as? [String: Any])
        #expect(body["Image"] as? String == "patina-netguard:1")
        #expect(body["Cmd"] as? [String] == ["bash", "/patina/firewall/holder.sh"])
        #expect(body["Labels"] as? [String: String] == spec.labels)
        #expect(host["NetworkMode"] as? String == "bridge")
        #expect(host["Dns"] as? [String] == ["127.0.0.1"])
        #expect(host["CapDrop"] as? [String] == ["ALL"])
        #expect(host["CapAdd"] as? [String] == ["NET_ADMIN", "NET_RAW"])
        #expect(host["SecurityOpt"] as? [String] == ["no-new-privileges"])
        #expect(host["Init"] as? Bool == true)
        let mount = try #require((host["Mounts"] as? [[String: Any]])?.first)
        #expect(mount["Type"] as? String == "bind" && mount["ReadOnly"] as? Bool == true && mount["Source"] as? String == "/run/x/firewall")
        // What the API form would drop is refused, not silently left out.
        spec.memory = "1g"
        #expect(throws: DockerAPI.Failure.self) { try spec.createBody() }
        spec.memory = nil
        spec.passEnvironment = ["SECRET"]
        #expect(throws: DockerAPI.Failure.self) { try spec.createBody() }
    }
}
