import Foundation
import PatinaCore

/// Runs the built patina binary like a user would, in a test repository with
/// its own PATINA_HOME and a fake credential.
public struct PatinaRunner: Sendable {
    public let repository: TemporaryRepository
    public var extraEnvironment: [String: String] = [:]

    public init(repository: TemporaryRepository, baseURL: String? = nil) {
        self.repository = repository
        if let baseURL { extraEnvironment["ANTHROPIC_BASE_URL"] = baseURL }
    }

    public var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["PATINA_HOME"] = repository.home.path
        env["ANTHROPIC_API_KEY"] = "sk-ant-test-not-a-real-key"
        env.removeValue(forKey: "CLAUDE_CODE_OAUTH_TOKEN")
        env.removeValue(forKey: "ANTHROPIC_BASE_URL")
        env.removeValue(forKey: "ANTHROPIC_MODEL")
        for (k, v) in extraEnvironment { env[k] = v }
        return env
    }

    /// `patina ARGS` in the repository; waits for it to finish.
    public func run(_ arguments: [String], in directory: URL? = nil) throws -> ProcessRunner.Output {
        try ProcessRunner.run([TestEnvironment.patinaBinary.path] + arguments,
                              in: directory ?? repository.path, environment: environment)
    }

    /// `patina yolo` with the real Claude binary and the test base image.
    public func yolo(_ task: String, _ extra: [String] = []) throws -> ProcessRunner.Output {
        try run(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                 "--base-image", TestEnvironment.baseImage, "--json"] + extra + [task])
    }

    /// Starts patina without waiting, for tests that interrupt it.
    public func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = TestEnvironment.patinaBinary
        process.arguments = arguments
        process.currentDirectoryURL = repository.path
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// The run record printed by `--json`.
    public static func record(_ output: ProcessRunner.Output) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] else {
            throw ProcessRunner.Failure(description: "stdout is not a JSON object: \(output.stdout.prefix(300)) / stderr: \(output.stderr.suffix(600))")
        }
        return object
    }

    /// Containers patina left behind: for one run, or for any run of `repository`.
    public static func leftoverContainers(runID: String? = nil, repository: TemporaryRepository? = nil) throws -> [String] {
        var filter = "label=patina=1"
        if let runID { filter = "label=patina.run=\(runID)" }
        if let repository {
            let key = RunStore(home: repository.home, repositoryCommonDirectory: repository.path.appendingPathComponent(".git")).repositoryKey
            filter = "label=patina.repo=\(key)"
        }
        return try ProcessRunner.check(["docker", "ps", "-a", "--filter", filter, "--format", "{{.Names}}"])
            .split(separator: "\n").map(String.init)
    }
}
