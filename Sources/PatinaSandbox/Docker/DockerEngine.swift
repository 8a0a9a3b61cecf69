import Foundation

/// Problems talking to the container engine, each one clear line.
public enum DockerError: Error, CustomStringConvertible, Equatable {
    case missing(String)
    case daemonDown(String)
    case imageMissing(String)

    public var description: String {
        switch self {
        case .missing(let exe):
            return "docker is not installed (no `\(exe)` on PATH); install Docker (e.g. `apt-get install docker.io`) and try again"
        case .daemonDown(let detail):
            return "the Docker daemon is not answering (\(detail)); start it (e.g. `systemctl start docker` or `dockerd &`) and try again"
        case .imageMissing(let image):
            return "base image \(image) is not available locally and could not be pulled; build or pull it first"
        }
    }
}

/// An image that did not build: the end of the build's output says why.
public struct ImageBuildFailure: Error, CustomStringConvertible, Sendable {
    public let tag: String
    public let exitCode: Int32
    public let output: String

    /// The lines worth reading, joined into one: the failing step (the legacy builder's
    /// last "Step N/M"), its own last lines of output and the error, never the engine's
    /// deprecation banner.
    public var tail: String {
        let banner = ["DEPRECATED: The legacy builder", "Install the buildx component", "https://docs.docker.com/go/buildx",
                      "BuildKit is currently disabled", "Sending build context"]
        let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { line in
                !line.isEmpty && !line.hasPrefix("---> ") && !line.hasPrefix("Removing intermediate container")
                    && !banner.contains { line.hasPrefix($0) }
            }
        guard let step = lines.lastIndex(where: { $0.hasPrefix("Step ") && $0.contains(" : ") }) else {
            return lines.suffix(4).joined(separator: " | ")
        }
        return ([lines[step]] + lines[(step + 1)...].suffix(4)).joined(separator: " | ")
    }

    public init(tag: String, exitCode: Int32, output: String) {
        self.tag = tag
        self.exitCode = exitCode
        self.output = output
    }

    public var description: String { "building \(tag) failed (exit \(exitCode)): \(tail)" }
}

/// The docker CLI, driven through swift-subprocess, and the Engine API on the daemon's
/// socket for the calls that need no terminal (see `DockerAPI`), when the CLI would talk to
/// that socket too.
public struct DockerEngine: Sendable {
    public var executable: String
    /// Nil when the CLI is told to use something else (PATINA_DOCKER, a TCP DOCKER_HOST, a context).
    public var api: DockerAPI?

    public init(executable: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.executable = executable ?? environment["PATINA_DOCKER"] ?? "docker"
        self.api = executable == nil ? DockerAPI.daemonSocket(environment: environment).map(DockerAPI.init(socketPath:)) : nil
    }

    /// Runs `docker ARGS`, throwing `CommandFailure` on a non-zero exit.
    @discardableResult
    public func check(_ arguments: [String], input: String? = nil) async throws -> CommandResult {
        try await Command.check([executable] + arguments, input: input)
    }

    public func run(_ arguments: [String]) async throws -> CommandResult {
        try await Command.run([executable] + arguments)
    }

    /// Fails with one clear line when docker is missing or its daemon is down.
    public func ensureAvailable() async throws {
        if let api {
            // The agent's run needs the CLI; the daemon answers on the socket.
            guard Command.which(executable, environment: ProcessInfo.processInfo.environment) != nil else {
                throw DockerError.missing(executable)
            }
            do {
                try await api.ping()
            } catch {
                throw DockerError.daemonDown("\(error)")
            }
            return
        }
        let result: CommandResult
        do {
            result = try await Command.run([executable, "version", "--format", "{{.Server.Version}}"])
        } catch {
            throw DockerError.missing(executable)
        }
        if result.exitCode == 127 { throw DockerError.missing(executable) }
        guard result.succeeded, !result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            let line = result.standardError.split(separator: "\n").first.map(String.init) ?? "no answer"
            throw DockerError.daemonDown(line)
        }
    }

    public func imageExists(_ reference: String) async -> Bool {
        if let api, let exists = await api.imageExists(reference) { return exists }
        return (try? await Command.run([executable, "image", "inspect", "--format", "{{.Id}}", reference]).succeeded) ?? false
    }

    /// When the named volume was created, or nil when there is none.
    public func volumeCreated(_ name: String) async -> String? {
        if let api {
            switch await api.volumeCreated(name) {
            case .none: return nil
            case .some(.some(let created)): return created
            case .some(.none): break  // no answer on the socket: the CLI says
            }
        }
        guard let result = try? await Command.run([executable, "volume", "inspect", "--format", "{{.CreatedAt}}", name]),
              result.succeeded else { return nil }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `docker build`; a failure throws `ImageBuildFailure` with the end of the build's output.
    public func build(
        context: URL, dockerfile: URL, tag: String, labels: [String: String],
        target: String? = nil, buildArguments: [(String, String)] = [], passedBuildArguments: [String] = []
    ) async throws {
        let args = Self.buildArguments(context: context, dockerfile: dockerfile, tag: tag, labels: labels, target: target,
                                       buildArguments: buildArguments, passedBuildArguments: passedBuildArguments)
        let result = try await run(args)
        guard result.succeeded else {
            throw ImageBuildFailure(tag: tag, exitCode: result.exitCode, output: result.standardOutput + "\n" + result.standardError)
        }
    }

    /// The `docker build` command line as a value.
    public static func buildArguments(
        context: URL, dockerfile: URL, tag: String, labels: [String: String],
        target: String?, buildArguments: [(String, String)], passedBuildArguments: [String]
    ) -> [String] {
        // --rm --force-rm: a failing step leaves no stopped intermediate container behind.
        var args = ["build", "--rm", "--force-rm", "--tag", tag, "--file", dockerfile.path]
        for key in labels.keys.sorted() { args += ["--label", "\(key)=\(labels[key]!)"] }
        if let target { args += ["--target", target] }
        for (name, value) in buildArguments { args += ["--build-arg", "\(name)=\(value)"] }
        // Without a value docker takes it from its own environment: the value stays off the command line.
        for name in passedBuildArguments { args += ["--build-arg", name] }
        return args + [context.path]
    }

    /// Starts a detached container and returns its id.
    @discardableResult
    public func start(_ spec: ContainerSpec) async throws -> String {
        if let api, (try? spec.createBody()) != nil { return try await api.run(spec) }
        var spec = spec
        spec.detached = true
        return try await check(spec.runArguments).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Removes containers by name, ignoring ones that are already gone.
    /// True when docker removed every one (or there was none to remove).
    @discardableResult
    public func remove(_ names: [String]) async -> Bool {
        guard !names.isEmpty else { return true }
        if let api {
            return await withTaskGroup(of: Bool.self) { group in
                for name in names { group.addTask { await api.remove(name) } }
                return await group.reduce(true) { $0 && $1 }
            }
        }
        return (try? await Command.run([executable, "rm", "--force", "--volumes"] + names))?.succeeded ?? false
    }

    /// Sends SIGKILL; true when a running container was killed.
    @discardableResult
    public func kill(_ name: String) async -> Bool {
        if let api { return (try? await api.request("POST", "/containers/\(name)/kill"))?.status == 204 }
        return (try? await Command.run([executable, "kill", name]))?.succeeded ?? false
    }

    /// Names of containers carrying `label` (e.g. `patina.run=<id>`), running or not.
    public func containers(label: String) async throws -> [String] {
        if let api { return try await api.containers(label: label) }
        return try await check(["ps", "--all", "--filter", "label=\(label)", "--format", "{{.Names}}"])
            .standardOutput.split(separator: "\n").map(String.init)
    }

    /// `docker inspect` fields for a stopped container: exit code and OOM kill.
    public func exitState(_ name: String) async -> (exitCode: Int, oomKilled: Bool)? {
        if let api {
            guard let state = await api.inspect(name)?["State"] as? [String: Any], let code = state["ExitCode"] as? Int else { return nil }
            return (code, state["OOMKilled"] as? Bool ?? false)
        }
        guard let r = try? await run(["inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", name]),
              r.succeeded else { return nil }
        let parts = r.standardOutput.split(separator: " ")
        guard parts.count == 2, let code = Int(parts[0]) else { return nil }
        return (code, parts[1].hasPrefix("true"))
    }

    /// True while the container is running.
    public func isRunning(_ name: String) async -> Bool {
        if let api { return (await api.inspect(name)?["State"] as? [String: Any])?["Running"] as? Bool ?? false }
        return (try? await run(["inspect", "--format", "{{.State.Running}}", name]))?.standardOutput.hasPrefix("true") ?? false
    }

    /// The default bridge's gateway address, e.g. 172.17.0.1. Older engines
    /// leave the gateway out of the IPAM config: then it is the address of the
    /// bridge interface on this machine.
    public func bridgeGateway() async throws -> String {
        if let api {
            let response = try await api.request("GET", "/networks/bridge", timeout: 30)
            guard response.status == 200, let network = response.json as? [String: Any] else {
                throw DockerError.daemonDown("the default bridge network: \(response.message)")
            }
            let configs = (network["IPAM"] as? [String: Any])?["Config"] as? [[String: Any]] ?? []
            if let gateway = configs.compactMap({ $0["Gateway"] as? String }).first(where: { !$0.contains(":") && !$0.isEmpty }) {
                return gateway
            }
            let interface = ((network["Options"] as? [String: String])?["com.docker.network.bridge.name"]).flatMap { $0.isEmpty ? nil : $0 } ?? "docker0"
            if let address = HostNetwork.ipv4Address(of: interface) { return address }
            throw DockerError.daemonDown("cannot tell the default bridge's gateway address")
        }
        let format = "{{range .IPAM.Config}}{{.Gateway}} {{end}}|{{index .Options \"com.docker.network.bridge.name\"}}"
        let out = try await check(["network", "inspect", "bridge", "--format", format]).standardOutput
        let parts = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|", omittingEmptySubsequences: false)
        let gateways = (parts.first ?? "").split(separator: " ").map(String.init).filter { !$0.contains(":") && !$0.isEmpty }
        if let gw = gateways.first { return gw }
        let interface = parts.count > 1 ? String(parts[1]) : "docker0"
        if let address = HostNetwork.ipv4Address(of: interface.isEmpty ? "docker0" : interface) { return address }
        throw DockerError.daemonDown("cannot tell the default bridge's gateway address")
    }
}
