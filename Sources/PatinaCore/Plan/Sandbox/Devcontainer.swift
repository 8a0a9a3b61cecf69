// Over 450 lines on purpose: devcontainer.json is read in one pass that lists every key it does not act on; splitting it would scatter that list.
import Foundation

/// A repository's devcontainer.json, read and checked: what patina builds the
/// agent's image on (an image, or the repository's own Dockerfile, plus local
/// features), the environment it sets, the user it names, the commands that run
/// before the agent, and every key patina does not act on (listed, never dropped).
public struct Devcontainer: Sendable, Equatable {
    /// What the agent's image starts from.
    public enum Base: Sendable, Equatable {
        /// `image`: an image reference.
        case image(String)
        /// `build`: the repository's own Dockerfile.
        case build(DockerfileBuild)
    }

    /// `build` (or the older top-level `dockerFile`/`context`).
    public struct DockerfileBuild: Sendable, Equatable {
        public var dockerfile: URL
        public var context: URL
        /// Build arguments, sorted by name.
        public var args: [EnvironmentVariable]
        public var target: String?
    }

    /// A name and value set in the image (`ENV`), with the key it came from.
    public struct EnvironmentVariable: Sendable, Equatable {
        public var name: String
        public var value: String
        public var source: String
    }

    /// The file, absolute, and relative to the repository (for messages and records).
    public var file: URL
    public var path: String
    public var name: String?
    public var base: Base
    /// `containerEnv`, then `remoteEnv`, in file order (features' own come with each feature).
    public var environment: [EnvironmentVariable]
    /// The non-root user the image names (`remoteUser`, else `containerUser`): patina gives it
    /// the agent's uid, as the devcontainer CLI does with `updateRemoteUserUID`.
    public var user: String?
    public var features: [LocalFeature]
    /// Features from a registry: only the devcontainer CLI can install them.
    public var registryFeatures: [String]
    /// onCreateCommand, updateContentCommand, postCreateCommand (features' first), in the order they run.
    public var lifecycle: [LifecycleCommand]
    /// Keys patina does not act on, each with why: listed in the step log and by `patina detect`.
    public var notActedOn: [String]

    /// Where `--devcontainer NAME` and the defaults look.
    public static func locate(repositoryRoot root: URL, name: String?) throws -> URL? {
        let fm = FileManager.default
        let folder = root.appendingPathComponent(".devcontainer")
        let named = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
            fm.fileExists(atPath: folder.appendingPathComponent("\($0)/devcontainer.json").path)
        }.sorted()
        if let name {
            if name == "none" { return nil }
            guard !name.isEmpty, !name.contains("/"), name != ".", name != "..",
                  fm.fileExists(atPath: folder.appendingPathComponent("\(name)/devcontainer.json").path)
            else {
                let known = named.isEmpty ? "this repository has none" : "found: \(named.joined(separator: ", "))"
                throw DevcontainerError("--devcontainer \(name): there is no .devcontainer/\(name)/devcontainer.json (\(known); `none` uses no devcontainer)")
            }
            return folder.appendingPathComponent("\(name)/devcontainer.json")
        }
        for candidate in [folder.appendingPathComponent("devcontainer.json"), root.appendingPathComponent(".devcontainer.json")]
        where fm.fileExists(atPath: candidate.path) {
            return candidate
        }
        if !named.isEmpty {
            throw DevcontainerError("this repository has several devcontainer configurations (\(named.joined(separator: ", "))): choose one with --devcontainer NAME, or --devcontainer none")
        }
        return nil
    }

    /// Reads and checks the file. Nothing is built or run.
    public static func load(_ file: URL, repositoryRoot root: URL) throws -> Devcontainer {
        let reader = DevcontainerReader(root: root, file: file)
        return try reader.read()
    }

    /// How the lines about this devcontainer read in the step log and `patina detect`.
    public var summary: [String] {
        var lines: [String]
        switch base {
        case .image(let image): lines = ["devcontainer \(path): image \(image)"]
        case .build(let build):
            let dockerfile = build.dockerfile.path.replacingOccurrences(of: file.deletingLastPathComponent().path + "/", with: "")
            lines = ["devcontainer \(path): builds \(dockerfile)" + (build.target.map { " (target \($0))" } ?? "")]
        }
        for feature in features {
            let options = feature.options.map { "\($0.name)=\($0.value)" }.joined(separator: ", ")
            lines.append("  feature \(feature.reference)" + (options.isEmpty ? "" : " (\(options))"))
        }
        for feature in registryFeatures { lines.append("  feature \(feature) (through the devcontainer CLI)") }
        if !environment.isEmpty { lines.append("  environment: " + environment.map(\.name).joined(separator: ", ")) }
        if let user { lines.append("  user \(user): runs with the agent's uid") }
        for command in lifecycle { lines.append("  \(command.label): \(command.display)") }
        if !notActedOn.isEmpty { lines.append("  not acted on: " + notActedOn.joined(separator: "; ")) }
        return lines
    }
}

/// A command of the devcontainer's lifecycle, run in the sandbox before the agent.
public struct LifecycleCommand: Sendable, Equatable {
    /// `onCreateCommand`, `postCreateCommand`, … (with the feature or the name of an object entry).
    public var label: String
    /// The command as an argument vector: a string runs through `/bin/sh -c`.
    public var arguments: [String]

    public var display: String {
        arguments.count == 3 && arguments[0] == "/bin/sh" && arguments[1] == "-c"
            ? arguments[2].replacingOccurrences(of: "\n", with: "⏎") : arguments.joined(separator: " ")
    }

    public static let phases = ["onCreateCommand", "updateContentCommand", "postCreateCommand"]
}

/// A feature vendored in the repository (`./path` holding devcontainer-feature.json and install.sh).
public struct LocalFeature: Sendable, Equatable {
    public struct Option: Sendable, Equatable {
        public var name: String
        /// The variable install.sh reads the option from (the spec's conversion).
        public var variable: String
        public var value: String
    }

    public var reference: String
    public var directory: URL
    public var id: String
    public var options: [Option]
    public var environment: [Devcontainer.EnvironmentVariable]
    public var notActedOn: [String]

    /// The spec's option-to-variable rule: non-word characters become `_`, leading digits and
    /// underscores one `_`, upper case.
    public static func variableName(_ option: String) -> String {
        var name = String(option.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
        let leading = name.prefix { $0.isNumber || $0 == "_" }
        if !leading.isEmpty { name = "_" + name.dropFirst(leading.count) }
        return name.uppercased()
    }
}

/// A devcontainer.json (or a feature of it) that cannot be used: one line naming the file and why.
public struct DevcontainerError: BadInput, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Reads one devcontainer.json.
struct DevcontainerReader {
    let root: URL
    let file: URL

    var folder: URL { file.deletingLastPathComponent() }
    var relativePath: String { Self.relative(file, to: root) }

    /// The keys patina acts on; `$schema` and `name` are understood and need nothing.
    static let actedOn: Set<String> = [
        "$schema", "name", "image", "build", "dockerFile", "dockerfile", "context", "containerEnv", "remoteEnv",
        "remoteUser", "containerUser", "features", "overrideFeatureInstallOrder",
        "onCreateCommand", "updateContentCommand", "postCreateCommand",
    ]

    /// Why some well-known keys are not acted on.
    static let reasons: [String: String] = [
        "runArgs": "patina's hardening decides the container's flags",
        "privileged": "patina's hardening decides the container's flags",
        "capAdd": "patina's hardening decides the container's flags (cap_add in .patina/config.json)",
        "securityOpt": "patina's hardening decides the container's flags",
        "init": "patina's hardening decides the container's flags",
        "mounts": "only the run's own paths are mounted",
        "workspaceMount": "only the run's own paths are mounted",
        "workspaceFolder": "the workspace is always /workspace",
        "forwardPorts": "nothing in a run listens for the host",
        "appPort": "nothing in a run listens for the host",
        "portsAttributes": "nothing in a run listens for the host",
        "otherPortsAttributes": "nothing in a run listens for the host",
        "customizations": "editor settings",
        "initializeCommand": "it runs on the host, and patina never runs a repository's command there",
        "postStartCommand": "patina runs onCreate, updateContent and postCreate commands",
        "postAttachCommand": "patina runs onCreate, updateContent and postCreate commands",
        "updateRemoteUserUID": "the agent always runs with patina's uid",
        "hostRequirements": "limits come from .patina/config.json",
        "shutdownAction": "patina removes the run's containers itself",
        "overrideCommand": "patina runs the agent as the container's command",
    ]

    /// Variables patina itself sets in the sandbox.
    static func isReserved(_ name: String) -> Bool {
        ["HOME", "DISABLE_AUTOUPDATER"].contains(name) || name.hasPrefix("PATINA_") || name.hasPrefix("ANTHROPIC_")
            || name.hasPrefix("CLAUDE_")
    }

    func fail(_ message: String) -> DevcontainerError { DevcontainerError("\(relativePath): \(message)") }

    func read() throws -> Devcontainer {
        let object = try Self.parseObject(file, root: root)
        var notActedOn: [String] = []
        for key in object.keys where !Self.actedOn.contains(key) {
            notActedOn.append(Self.reasons[key].map { "\(key) (\($0))" } ?? key)
        }
        if object["dockerComposeFile"] != nil {
            throw fail("uses dockerComposeFile; patina builds the sandbox from `image` or `build` only")
        }
        let base = try readBase(object, notActedOn: &notActedOn)
        var environment: [Devcontainer.EnvironmentVariable] = []
        for key in ["containerEnv", "remoteEnv"] {
            environment += try readEnvironment(object[key], key: key, notActedOn: &notActedOn)
        }
        var user: String?
        for key in ["remoteUser", "containerUser"] {
            guard let value = object[key] else { continue }
            guard let name = value.string else { throw fail("\"\(key)\" must be a string, not \(value.kind)") }
            if name == "root" || name.allSatisfy(\.isNumber) {
                notActedOn.append("\(key) \(name) (the agent never runs as root or another uid than patina's)")
            } else if name.range(of: #"^[a-z_][a-z0-9_-]{0,31}$"#, options: .regularExpression) == nil {
                throw fail("\"\(key)\" \"\(name)\" is not a user name")
            } else if user == nil {
                user = name
            } else if user != name {
                notActedOn.append("\(key) \(name) (remoteUser \(user!) is the one given the agent's uid)")
            }
        }
        let (features, registry) = try readFeatures(object)
        var lifecycle: [LifecycleCommand] = []
        for phase in LifecycleCommand.phases {
            for feature in features {
                lifecycle += try readLifecycle(feature.lifecycle[phase], label: "\(phase) of feature \(feature.feature.reference)")
            }
            lifecycle += try readLifecycle(object[phase], label: phase)
        }
        for feature in features {
            notActedOn += feature.feature.notActedOn.map { "feature \(feature.feature.reference): \($0)" }
        }
        return Devcontainer(
            file: file, path: relativePath, name: object["name"]?.string, base: base, environment: environment,
            user: user, features: features.map(\.feature), registryFeatures: registry, lifecycle: lifecycle,
            notActedOn: notActedOn)
    }

    static func parseObject(_ file: URL, root: URL) throws -> JSONObject {
        let shown = relative(file, to: root)
        let text: String
        do { text = try String(contentsOf: file, encoding: .utf8) } catch {
            throw DevcontainerError("\(shown): unreadable (\((error as NSError).localizedDescription))")
        }
        let value: JSONValue
        do { value = try JSONC.parse(text) } catch {
            throw DevcontainerError("\(shown):\(error.line):\(error.column): invalid JSONC: \(error.message)")
        }
        guard let object = value.object else { throw DevcontainerError("\(shown): expected a JSON object, found \(value.kind)") }
        return object
    }

    static func relative(_ url: URL, to root: URL) -> String {
        let path = url.standardizedFileURL.path, base = root.standardizedFileURL.path
        return path.hasPrefix(base + "/") ? String(path.dropFirst(base.count + 1)) : path
    }

    /// A path the file names, which must stay inside the repository (links followed).
    func inside(_ relativePath: String, key: String, directory: Bool) throws -> URL {
        let url = (relativePath.hasPrefix("/") ? URL(fileURLWithPath: relativePath) : folder.appendingPathComponent(relativePath)).standardizedFileURL
        let resolved = url.resolvingSymlinksInPath().path
        let rootPath = root.standardizedFileURL.resolvingSymlinksInPath().path
        guard resolved == rootPath || resolved.hasPrefix(rootPath + "/") else {
            throw fail("\(key) \(relativePath) is outside the repository")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), isDirectory.boolValue == directory else {
            throw fail("\(key) \(relativePath): no such \(directory ? "folder" : "file") in the repository")
        }
        return URL(fileURLWithPath: resolved)
    }

    func readBase(_ object: JSONObject, notActedOn: inout [String]) throws -> Devcontainer.Base {
        var buildObject = JSONObject()
        if let build = object["build"] {
            guard let b = build.object else { throw fail("\"build\" must be an object, not \(build.kind)") }
            buildObject = b
        }
        // The older spelling: dockerFile and context at the top level.
        for (old, new) in [("dockerFile", "dockerfile"), ("dockerfile", "dockerfile"), ("context", "context")] {
            if let value = object[old], buildObject[new] == nil { buildObject[new] = value }
        }
        if let dockerfileValue = buildObject["dockerfile"] {
            if object["image"] != nil { notActedOn.append("image (build.dockerfile is used)") }
            guard let dockerfile = dockerfileValue.string else { throw fail("\"build.dockerfile\" must be a string") }
            var contextPath = "."
            if let c = buildObject["context"] {
                guard let s = c.string else { throw fail("\"build.context\" must be a string") }
                contextPath = s
            }
            var args: [Devcontainer.EnvironmentVariable] = []
            if let a = buildObject["args"] {
                guard let argsObject = a.object else { throw fail("\"build.args\" must be an object") }
                for (name, value) in argsObject.entries {
                    guard let text = value.scalarText else { throw fail("build.args.\(name) must be a string") }
                    if text.contains("${localEnv:") {
                        notActedOn.append("build.args.\(name) (it reads the host's environment, and build arguments stay in the image's history)")
                        continue
                    }
                    args.append(.init(name: name, value: substitute(text), source: "build.args"))
                }
            }
            var target: String?
            if let t = buildObject["target"] {
                guard let s = t.string, s.range(of: #"^[A-Za-z0-9][A-Za-z0-9_.-]*$"#, options: .regularExpression) != nil else {
                    throw fail("\"build.target\" must be a stage name")
                }
                target = s
            }
            for key in buildObject.keys where !["dockerfile", "context", "args", "target"].contains(key) {
                notActedOn.append("build.\(key)")
            }
            let build = Devcontainer.DockerfileBuild(
                dockerfile: try inside(dockerfile, key: "build.dockerfile", directory: false),
                context: try inside(contextPath, key: "build.context", directory: true),
                args: args.sorted { $0.name < $1.name }, target: target)
            return .build(build)
        }
        if !buildObject.isEmpty {
            notActedOn.append("build (it names no dockerfile)")
        }
        guard let imageValue = object["image"] else {
            throw fail("names neither \"image\" nor \"build.dockerfile\"; patina needs one of them to build the sandbox")
        }
        guard let image = imageValue.string else { throw fail("\"image\" must be a string, not \(imageValue.kind)") }
        do { try Planner.validateImageReference(image) } catch {
            throw fail("\"image\" \"\(image)\" is not an image reference")
        }
        return .image(image)
    }

    /// `${containerWorkspaceFolder}` and friends. `${containerEnv:NAME}` stays: the Dockerfile
    /// turns it into Docker's own `${NAME}`.
    func substitute(_ value: String) -> String {
        value
            .replacingOccurrences(of: "${containerWorkspaceFolder}", with: "/workspace")
            .replacingOccurrences(of: "${containerWorkspaceFolderBasename}", with: "workspace")
            .replacingOccurrences(of: "${localWorkspaceFolderBasename}", with: root.lastPathComponent)
            .replacingOccurrences(of: "${localWorkspaceFolder}", with: root.path)
    }

    func readEnvironment(_ value: JSONValue?, key: String, notActedOn: inout [String]) throws -> [Devcontainer.EnvironmentVariable] {
        guard let value else { return [] }
        guard let object = value.object else { throw fail("\"\(key)\" must be an object, not \(value.kind)") }
        var out: [Devcontainer.EnvironmentVariable] = []
        for (name, raw) in object.entries {
            guard name.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) != nil else {
                throw fail("\(key): \"\(name)\" is not a variable name")
            }
            if raw == .null { continue }
            guard let text = raw.scalarText else { throw fail("\(key).\(name) must be a string, not \(raw.kind)") }
            if text.contains("${localEnv:") {
                notActedOn.append("\(key).\(name) (it reads the host's environment; patina passes nothing from the host but its own credentials, by name)")
            } else if Self.isReserved(name) {
                notActedOn.append("\(key).\(name) (patina sets it)")
            } else {
                out.append(.init(name: name, value: substitute(text), source: key))
            }
        }
        return out
    }

    func readLifecycle(_ value: JSONValue?, label: String) throws -> [LifecycleCommand] {
        guard let value else { return [] }
        func command(_ value: JSONValue, label: String) throws -> LifecycleCommand? {
            switch value {
            case .string(let s):
                let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
                return trimmed.isEmpty ? nil : LifecycleCommand(label: label, arguments: ["/bin/sh", "-c", substitute(s)])
            case .array(let items):
                let words = try items.map { item -> String in
                    guard let s = item.scalarText else { throw fail("\(label): an array command holds strings only") }
                    return substitute(s)
                }
                return words.isEmpty ? nil : LifecycleCommand(label: label, arguments: words)
            case .null:
                return nil
            default:
                throw fail("\(label) must be a string, an array or an object of commands, not \(value.kind)")
            }
        }
        if let object = value.object {
            // Named commands: the spec runs them in parallel; patina runs them one after another, in order.
            return try object.entries.compactMap { try command($0.value, label: "\(label) \($0.key)") }
        }
        return try command(value, label: label).map { [$0] } ?? []
    }

    struct ReadFeature {
        var feature: LocalFeature
        var lifecycle: JSONObject
    }

    func readFeatures(_ object: JSONObject) throws -> ([ReadFeature], [String]) {
        guard let value = object["features"] else { return ([], []) }
        guard let features = value.object else { throw fail("\"features\" must be an object, not \(value.kind)") }
        var order = features.keys
        if let override = object["overrideFeatureInstallOrder"] {
            guard let ids = override.array?.compactMap(\.string) else { throw fail("\"overrideFeatureInstallOrder\" must be an array of feature ids") }
            let first = ids.filter { order.contains($0) }
            order = first + order.filter { !first.contains($0) }
        }
        var local: [ReadFeature] = []
        var registry: [String] = []
        for reference in order {
            let options = features[reference]!
            guard reference.hasPrefix("./") || reference.hasPrefix("../") else {
                registry.append(reference)
                continue
            }
            local.append(try readLocalFeature(reference, options: options))
        }
        return (local, registry)
    }

    func readLocalFeature(_ reference: String, options given: JSONValue) throws -> ReadFeature {
        let directory = try inside(reference, key: "feature", directory: true)
        let metadataFile = directory.appendingPathComponent("devcontainer-feature.json")
        guard FileManager.default.fileExists(atPath: metadataFile.path) else {
            throw fail("feature \(reference) has no devcontainer-feature.json")
        }
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("install.sh").path) else {
            throw fail("feature \(reference) has no install.sh")
        }
        let metadata = try Self.parseObject(metadataFile, root: root)
        let id = metadata["id"]?.string ?? directory.lastPathComponent
        var notActedOn: [String] = []
        let understood: Set<String> = [
            "id", "version", "name", "description", "documentationURL", "licenseURL", "keywords", "options",
            "containerEnv", "installsAfter", "legacyIds", "deprecated", "dependsOn",
            "onCreateCommand", "updateContentCommand", "postCreateCommand",
        ]
        for key in metadata.keys where !understood.contains(key) {
            notActedOn.append(Self.reasons[key].map { "\(key) (\($0))" } ?? key)
        }
        if let depends = metadata["dependsOn"]?.object, !depends.isEmpty {
            throw fail("feature \(reference) depends on \(depends.keys.joined(separator: ", ")), which only the devcontainer CLI can install: install the CLI (npm install -g @devcontainers/cli) or vendor them into the repository too")
        }

        // The options it declares, with defaults; then the ones devcontainer.json gives.
        var declared: [(name: String, value: String)] = []
        if let optionsValue = metadata["options"] {
            guard let optionsObject = optionsValue.object else { throw fail("feature \(reference): \"options\" must be an object") }
            for (name, spec) in optionsObject.entries {
                declared.append((name, spec.object?["default"]?.scalarText ?? ""))
            }
        }
        var givenOptions = JSONObject()
        switch given {
        case .object(let o): givenOptions = o
        case .string(let version): givenOptions["version"] = .string(version)
        case .bool, .null: break
        default: throw fail("feature \(reference): options must be an object, not \(given.kind)")
        }
        for (name, value) in givenOptions.entries {
            guard let index = declared.firstIndex(where: { $0.name == name }) else {
                let known = declared.map(\.name)
                throw fail("feature \(reference) has no option \"\(name)\" (\(known.isEmpty ? "it has no options" : "options: " + known.joined(separator: ", ")))")
            }
            guard let text = value.scalarText else { throw fail("feature \(reference): option \(name) must be a string or a boolean") }
            declared[index].value = substitute(text)
        }
        var environment: [Devcontainer.EnvironmentVariable] = []
        if let env = metadata["containerEnv"] {
            var ignored: [String] = []
            environment = try readEnvironment(env, key: "containerEnv", notActedOn: &ignored)
            notActedOn += ignored
        }
        let feature = LocalFeature(
            reference: reference, directory: directory, id: id,
            options: declared.map { .init(name: $0.name, variable: LocalFeature.variableName($0.name), value: $0.value) },
            environment: environment.map { .init(name: $0.name, value: $0.value, source: "feature \(reference)") },
            notActedOn: notActedOn)
        var lifecycle = JSONObject()
        for phase in LifecycleCommand.phases { lifecycle[phase] = metadata[phase] }
        return ReadFeature(feature: feature, lifecycle: lifecycle)
    }
}
