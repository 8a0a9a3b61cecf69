// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "patina",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "patina", targets: ["patina"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        // FilePath for swift-subprocess's API (already a dependency of swift-subprocess).
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // C libraries, one systemLibrary target each.
        .systemLibrary(
            name: "CGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        .systemLibrary(
            name: "CSeccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        // What Swift cannot import: variadic functions and function-like macros.
        .target(
            name: "CPatinaShim",
            linkerSettings: [.linkedLibrary("git2"), .linkedLibrary("seccomp")]
        ),

        // libcurl (the model proxy's upstream client): its variadic setopt/getinfo.
        .target(
            name: "CCurlShim",
            linkerSettings: [.linkedLibrary("curl")]
        ),

        // git: a small owner-class wrapper over libgit2.
        .target(
            name: "PatinaGit",
            dependencies: ["CGit2", "CPatinaShim"],
            swiftSettings: strict
        ),
        // sandbox: docker engine, firewall plan, seccomp profile, image cache.
        .target(
            name: "PatinaSandbox",
            dependencies: [
                "CSeccomp", "CPatinaShim", "PatinaTemplates",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // templates: finds the shipped data (templates/, firewall/) and renders it
        // with mustache; a repository's .patina/ overrides any file.
        .target(
            name: "PatinaTemplates",
            dependencies: [.product(name: "Mustache", package: "swift-mustache")],
            swiftSettings: strict
        ),
        // model proxy: the Messages API served to one run's sandbox, forwarded with the
        // real credential, every answer's usage and cost counted (Foundation and libcurl).
        .target(
            name: "PatinaModelProxy",
            dependencies: ["CCurlShim"],
            swiftSettings: strict
        ),
        // core: run planning, lifecycle, run store, templates, session log.
        .target(
            name: "PatinaCore",
            dependencies: ["PatinaGit", "PatinaSandbox", "PatinaTemplates", "PatinaModelProxy"],
            swiftSettings: strict
        ),
        // commands: one file per subcommand, parsing and printing only.
        .target(
            name: "PatinaCommands",
            dependencies: [
                "CPatinaShim", "PatinaCore", "PatinaGit", "PatinaModelProxy", "PatinaSandbox", "PatinaTemplates",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict,
            plugins: ["BuildInfo"]
        ),
        // The commit patina is built from, for `patina --version` (a generated file).
        .plugin(name: "BuildInfo", capability: .buildTool()),
        .executableTarget(
            name: "patina",
            dependencies: ["PatinaCommands"],
            swiftSettings: strict
        ),

        .target(
            name: "PatinaTestSupport",
            dependencies: ["PatinaCore", "PatinaGit", "PatinaSandbox"],
            path: "Tests/PatinaTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "PatinaCoreTests",
            dependencies: ["PatinaCore", "PatinaGit", "PatinaModelProxy", "PatinaSandbox", "PatinaTemplates", "PatinaTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PatinaGitTests",
            dependencies: ["PatinaGit", "PatinaSandbox", "PatinaTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PatinaSandboxTests",
            dependencies: ["PatinaSandbox", "PatinaTemplates"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PatinaTemplatesTests",
            dependencies: ["PatinaTemplates"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PatinaModelProxyTests",
            dependencies: ["PatinaModelProxy", "PatinaTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PatinaEndToEndTests",
            dependencies: ["PatinaCore", "PatinaGit", "PatinaSandbox", "PatinaTestSupport"],
            swiftSettings: strict
        ),
    ]
)

/// Warnings are errors. MemberImportVisibility: a file sees the members of the modules it
/// imports itself, not of those another file imports, so each target's imports are exactly
/// what it uses, and the dependencies above declare exactly those.
var strict: [SwiftSetting] {
    [.unsafeFlags(["-warnings-as-errors"]), .enableUpcomingFeature("MemberImportVisibility")]
}
