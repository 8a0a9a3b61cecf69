import Foundation

/// A bind mount into a container.
public struct Mount: Sendable, Equatable, Codable {
    public var source: String
    public var target: String
    public var readOnly: Bool
    /// `source` names a Docker volume (its content never copied from the image) rather than a host path.
    public var volume: Bool = false

    public init(source: String, target: String, readOnly: Bool) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }

    public init(volume: String, target: String, readOnly: Bool) {
        self.init(source: volume, target: target, readOnly: readOnly)
        self.volume = true
    }

    /// `--mount` syntax, which (unlike `-v`) refuses to create a missing source.
    /// The value is CSV: a field holding a comma or a quote is quoted.
    public var argument: String {
        "type=\(volume ? "volume" : "bind"),\(Self.field("source=\(source)")),\(Self.field("target=\(target)"))"
            + (readOnly ? ",readonly" : "") + (volume ? ",volume-nocopy" : "")
    }

    static func field(_ text: String) -> String {
        guard text.contains(",") || text.contains("\"") else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Everything `docker run` needs for one container, as a value. `arguments`
/// builds the command line; tests check the array without running it.
public struct ContainerSpec: Sendable, Equatable {
    public var name: String
    public var image: String
    public var command: [String] = []
    public var labels: [String: String] = [:]
    public var user: String?
    public var workingDirectory: String?
    public var network: String?
    public var dns: [String] = []
    public var capDrop: [String] = ["ALL"]
    public var capAdd: [String] = []
    public var securityOptions: [String] = ["no-new-privileges"]
    public var readOnlyRoot = false
    public var tmpfs: [String] = []
    public var mounts: [Mount] = []
    /// Names passed through from patina's own environment (`-e NAME`): the value
    /// never appears on a command line, in a rendered file or in a log.
    public var passEnvironment: [String] = []
    /// Values for some `passEnvironment` names, set in the environment of the `docker run`
    /// process itself (not patina's own), so they too stay off every command line.
    public var passedValues: [String: String] = [:]
    /// Non-secret values (`-e NAME=VALUE`).
    public var environment: [String: String] = [:]
    public var pidsLimit: Int?
    public var memory: String?
    public var cpus: String?
    public var detached = false
    public var initProcess = false

    public init(name: String, image: String) {
        self.name = name
        self.image = image
    }

    /// The flags after `docker run`, up to and including the image.
    public var optionArguments: [String] {
        var a: [String] = []
        if detached { a.append("--detach") }
        a += ["--name", name] + labelArguments
        if let user { a += ["--user", user] }
        if let workingDirectory { a += ["--workdir", workingDirectory] }
        a += networkArguments + capDropArguments
        for cap in capAdd { a += ["--cap-add", cap] }
        for opt in securityOptions { a += ["--security-opt", opt] }
        a += filesystemArguments
        for m in mounts { a += ["--mount", m.argument] }
        for key in environment.keys.sorted() { a += ["--env", "\(key)=\(environment[key]!)"] }
        for key in passEnvironment { a += ["--env", key] }
        a += limitArguments
        if initProcess { a.append("--init") }
        return a
    }

    /// The flags devcontainer.json has no field of its own for (its `runArgs`):
    /// read-only root, tmpfs, limits, init, network, dropped capabilities, labels.
    public var isolationArguments: [String] {
        filesystemArguments + (initProcess ? ["--init"] : []) + limitArguments + networkArguments + capDropArguments + labelArguments
    }

    private var labelArguments: [String] { labels.keys.sorted().flatMap { ["--label", "\($0)=\(labels[$0]!)"] } }
    private var networkArguments: [String] { (network.map { ["--network", $0] } ?? []) + dns.flatMap { ["--dns", $0] } }
    private var capDropArguments: [String] { capDrop.flatMap { ["--cap-drop", $0] } }
    private var filesystemArguments: [String] { (readOnlyRoot ? ["--read-only"] : []) + tmpfs.flatMap { ["--tmpfs", $0] } }
    private var limitArguments: [String] {
        (pidsLimit.map { ["--pids-limit", String($0)] } ?? [])
            + (memory.map { ["--memory", $0, "--memory-swap", $0] } ?? [])
            + (cpus.map { ["--cpus", $0] } ?? [])
    }

    /// `docker run …` as an argument vector (without the docker executable).
    public var runArguments: [String] {
        ["run"] + optionArguments + [image] + command
    }
}
