import Foundation
import PatinaSandbox
import PatinaTemplates

/// The agent's image as a recipe: patina's layer (its packages, the toolchains,
/// the host's CA certificates, the agent's user, the devcontainer's local features
/// and environment, Claude Code) over the base, and patina's hardening last.
/// Rendering it builds nothing; `patina detect` prints what this makes.
public enum AgentImage {
    public static let dockerfileTemplate = "templates/Dockerfile.mustache"
    static let basePackages = ["git", "ca-certificates", "procps"]

    /// The Dockerfile and the files its build needs.
    /// `baseID`: the base image's id when its tag alone does not pin its content.
    public static func recipe(plan: RunPlan, base: String, baseID: String? = nil) throws -> ImageRecipe {
        let setup = plan.sandbox
        var files: [String: URL] = [:]
        var contents: [String: String] = [:]
        // A local Claude Code is not copied in: it comes from a volume every image shares (ClaudeVolume).
        if !setup.trust.certificates.isEmpty { contents["host-ca.pem"] = setup.trust.pem }

        var features: [[String: Any]] = []
        // With the devcontainer CLI, the base image already holds every feature.
        let local = setup.devcontainerCLI == nil ? setup.devcontainer?.features ?? [] : []
        for (index, feature) in local.enumerated() {
            let dir = "\(index + 1)-" + RunID.slug(feature.id, maxLength: 40)
            for (relative, url) in try featureFiles(feature) { files["features/\(dir)/\(relative)"] = url }
            contents["features/\(dir)/devcontainer-features.env"] = feature.options
                .map { "\($0.variable)=\(shellQuoted($0.value))\n" }.joined()
            features.append([
                "dir": dir, "id": feature.id, "reference": feature.reference,
                "environment": try feature.environment.map(environmentContext),
            ])
        }
        let environment = try (setup.devcontainer?.environment ?? []).map(environmentContext)
        var context: [String: Any] = [
            "base_image": base,
            "packages": (basePackages + setup.packages.filter { !basePackages.contains($0) }).joined(separator: " "),
            "uid": String(plan.agentUID),
            "gid": String(plan.agentGID),
            "host_ca": !setup.trust.certificates.isEmpty,
            "features": features,
            "environment": environment,
            "has_environment": !environment.isEmpty,
            "agent_binary": plan.agentBinary != nil,
            "claude_mount": ClaudeVolume.target,
            "install_with_npm": plan.agentBinary == nil,
            "claude_version": RunPlan.pinnedClaudeVersion,
            "claude_found_version": setup.claude.version ?? "(version unknown)",
        ]
        if let baseID { context["base_id"] = baseID }
        if !setup.pipPackages.isEmpty { context["pip_packages"] = setup.pipPackages.joined(separator: " ") }
        if !setup.installed.isEmpty { context["toolchains"] = setup.installed.map(\.name).joined(separator: ", ") }
        if let devcontainer = setup.devcontainer {
            context["devcontainer"] = devcontainer.path
            if let user = devcontainer.user { context["remote_user"] = user }
        }
        let dockerfile = try plan.templates.render(dockerfileTemplate, context)
        return ImageRecipe(repository: "patina-agent", dockerfile: dockerfile, files: files, contents: contents,
                           passedBuildArguments: setup.trust.passedVariables)
    }

    /// A feature's regular files, by path inside it. A link could reach outside the
    /// repository, so a feature holding one is refused.
    static func featureFiles(_ feature: LocalFeature) throws -> [(String, URL)] {
        var out: [(String, URL)] = []
        let base = feature.directory.standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(atPath: base) else { return [] }
        while let relative = walker.nextObject() as? String {
            let url = URL(fileURLWithPath: base).appendingPathComponent(relative)
            var info = stat()
            guard lstat(url.path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: out.append((relative, url))
            case S_IFDIR: continue
            default:
                throw DevcontainerError("feature \(feature.reference) holds \(relative), which is not a regular file or folder (a link?); vendor the file itself")
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    static func environmentContext(_ variable: Devcontainer.EnvironmentVariable) throws -> [String: Any] {
        guard !variable.value.contains("\n") && !variable.value.contains("\r") else {
            throw DevcontainerError("\(variable.source).\(variable.name) holds a line break, which an image's environment cannot")
        }
        return ["name": variable.name, "value": dockerEnvironmentValue(variable.value)]
    }

    /// A value for `ENV NAME=...`: quoted, with `\`, `"` and `$` escaped, except
    /// `${containerEnv:NAME}` (and `${containerEnv:NAME:default}`), which becomes
    /// Docker's own `${NAME}` (`${NAME:-default}`): the value the image already has.
    public static func dockerEnvironmentValue(_ raw: String) -> String {
        var out = "\""
        var rest = Substring(raw)
        while !rest.isEmpty {
            if rest.hasPrefix("${containerEnv:"), let close = rest.firstIndex(of: "}") {
                let inner = rest[rest.index(rest.startIndex, offsetBy: 15)..<close]
                let parts = inner.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0])
                if name.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) != nil {
                    let fallback = parts.count > 1 ? String(parts[1]) : nil
                    out += "${\(name)" + (fallback.map { ":-" + escape($0) } ?? "") + "}"
                    rest = rest[rest.index(after: close)...]
                    continue
                }
            }
            out += escape(String(rest.first!))
            rest = rest.dropFirst()
        }
        return out + "\""
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "$", with: "\\$")
    }

    /// `'text'` for a POSIX shell.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
