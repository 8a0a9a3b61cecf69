import Foundation

/// Paths whose change alters what a later sandbox allows or what runs on the
/// user's machine: patina's own overrides, devcontainer and CI definitions, git
/// hooks and attributes, build scripts. A run that touched one is shown first
/// and marked, and merging it needs `--yes`.
public enum SensitivePaths {
    public struct Match: Sendable, Equatable {
        public var path: String
        /// Why it matters, in a few words.
        public var reason: String
    }

    public static func match(_ path: String) -> Match? {
        let lower = path.lowercased()
        let components = lower.split(separator: "/").map(String.init)
        let name = components.last ?? lower
        func under(_ directory: String) -> Bool { components.dropLast().contains(directory) || lower.hasPrefix(directory + "/") }

        if lower.hasPrefix(".patina/") { return Match(path: path, reason: "patina sandbox settings") }
        if lower.hasPrefix(".devcontainer/") || name == ".devcontainer.json" { return Match(path: path, reason: "devcontainer definition") }
        for (prefix, what) in [(".github/", "GitHub configuration and workflows"), (".gitlab/", "GitLab configuration"),
                               (".circleci/", "CI configuration"), (".buildkite/", "CI configuration"),
                               (".husky/", "git hooks"), (".githooks/", "git hooks"), (".vscode/", "editor tasks and settings"),
                               (".cargo/", "cargo configuration"), (".mvn/", "maven wrapper")] where lower.hasPrefix(prefix) {
            return Match(path: path, reason: what)
        }
        if under("hooks") || under(".git-hooks") { return Match(path: path, reason: "hooks directory") }
        switch name {
        case ".gitattributes", ".gitmodules", ".gitconfig", ".lfsconfig":
            return Match(path: path, reason: "git configuration")
        case ".gitlab-ci.yml", ".travis.yml", "azure-pipelines.yml", "jenkinsfile", "bitbucket-pipelines.yml", ".drone.yml", "appveyor.yml", "cloudbuild.yaml":
            return Match(path: path, reason: "CI configuration")
        case "makefile", "gnumakefile", "cmakelists.txt", "build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts",
             "gradlew", "pom.xml", "build.rs", "package.swift", "setup.py", "setup.cfg", "pyproject.toml", "noxfile.py", "tox.ini",
             "conftest.py", "rakefile", "gemfile", "justfile", "taskfile.yml", "meson.build", "build.sbt", "dockerfile",
             "docker-compose.yml", "compose.yaml", "package.json", ".npmrc", ".yarnrc", ".yarnrc.yml", ".envrc", ".pre-commit-config.yaml",
             "flake.nix", "shell.nix", "default.nix":
            return Match(path: path, reason: "build script or tool configuration")
        default:
            break
        }
        if lower.hasSuffix(".mk") || lower.hasSuffix(".cmake") { return Match(path: path, reason: "build script") }
        return nil
    }

    /// Marked paths first (in their order), then the rest.
    public static func ordered(_ paths: [String]) -> (marked: [Match], rest: [String]) {
        var marked: [Match] = []
        var rest: [String] = []
        for path in paths {
            if let m = match(path) { marked.append(m) } else { rest.append(path) }
        }
        return (marked, rest)
    }
}

extension RunRecord {
    /// Paths the run changed that are marked (`SensitivePaths`), from its record (no diff needed).
    public var markedPaths: [SensitivePaths.Match] {
        filesChanged.compactMap { SensitivePaths.match($0.path) }
    }
}
