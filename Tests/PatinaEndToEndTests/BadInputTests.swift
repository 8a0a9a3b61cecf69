import Foundation
import PatinaTestSupport
import Testing

/// Bad input: one clear line on stderr, exit 2, and nothing created — no branch, no
/// worktree, no run directory, no container. An engine that is missing or does not answer
/// is the environment failing (exit 3), with nothing created either.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct BadInputTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let arguments: [String]
        let expected: String
        var environment: [String: String] = [:]
        var unsetCredentials = false
        /// Files written into the repository's directory first (batch files).
        var files: [String: String] = [:]
        var status: Int32 = 2
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "empty task", arguments: ["yolo", "  "], expected: "task is empty"),
        Case(name: "unknown base", arguments: ["yolo", "--base", "no-such-ref", "x"], expected: "unknown revision 'no-such-ref'"),
        Case(name: "bad timeout", arguments: ["yolo", "--timeout", "soon", "x"], expected: "invalid duration \"soon\""),
        Case(name: "zero max turns", arguments: ["yolo", "--max-turns", "0", "x"], expected: "--max-turns must be at least 1"),
        Case(name: "sparse directory missing", arguments: ["yolo", "--sparse", "no/such/dir", "x"], expected: "--sparse no/such/dir: HEAD"),
        Case(name: "sparse path leaving the repository", arguments: ["yolo", "--sparse", "../up", "x"], expected: "--sparse ../up: give a directory of the repository"),
        Case(name: "sparse on a file", arguments: ["yolo", "--sparse", "README.md", "x"], expected: "has no directory README.md"),
        Case(name: "missing agent binary", arguments: ["yolo", "--agent-binary", "/nonexistent/claude", "x"], expected: "no such file"),
        Case(name: "agent binary not an executable", arguments: ["yolo", "--agent-binary", "/etc/hostname", "x"], expected: "not a Linux executable"),
        Case(name: "bad allow entry", arguments: ["yolo", "--allow", "10.0.0.0/99", "x"], expected: "10.0.0.0/99"),
        Case(name: "unknown preset", arguments: ["yolo", "--preset", "nope", "x"], expected: "known presets"),
        Case(name: "bad base image", arguments: ["yolo", "--base-image", "Not An Image!", "x"], expected: "invalid --base-image"),
        Case(name: "missing credentials", arguments: ["yolo", "x"], expected: "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN", unsetCredentials: true),
        Case(name: "docker missing", arguments: ["yolo", "x"], expected: "docker is not installed",
             environment: ["PATINA_DOCKER": "/nonexistent/docker"], status: 3),
        Case(name: "docker daemon down", arguments: ["yolo", "x"], expected: "Docker daemon is not answering",
             environment: ["DOCKER_HOST": "unix:///nonexistent/docker.sock"], status: 3),
        Case(name: "seccomp check of a missing profile", arguments: ["seccomp", "check", "--profile", "/nonexistent"],
             expected: "invalid seccomp profile /nonexistent: unreadable"),
        Case(name: "batch file missing", arguments: ["batch", "nope.txt"], expected: "batch file nope.txt does not exist", status: 2),
        Case(name: "batch file empty", arguments: ["batch", "empty.txt"], expected: "holds no tasks",
             files: ["empty.txt": "# nothing\n\n"], status: 2),
        Case(name: "batch bad JSON", arguments: ["batch", "t.jsonl"], expected: "t.jsonl:2: not a JSON object",
             files: ["t.jsonl": "{\"task\": \"a\"}\n{task: b}\n"], status: 2),
        Case(name: "batch unknown key", arguments: ["batch", "t.jsonl"], expected: "t.jsonl:1: unknown key \"tsk\"",
             files: ["t.jsonl": "{\"tsk\": \"a\"}\n"], status: 2),
        Case(name: "batch attempts out of range", arguments: ["batch", "t.jsonl"], expected: "t.jsonl:1: \"attempts\" must be between 1 and 100",
             files: ["t.jsonl": "{\"task\": \"a\", \"attempts\": 0}\n"], status: 2),
        Case(name: "batch bad timeout on a line", arguments: ["batch", "t.jsonl"], expected: "t.jsonl:2: invalid duration",
             files: ["t.jsonl": "{\"task\": \"a\"}\n{\"task\": \"b\", \"timeout\": \"soon\"}\n"], status: 2),
        Case(name: "batch unknown base on a line", arguments: ["batch", "t.jsonl"], expected: "task 2 (b): unknown revision 'nope'",
             files: ["t.jsonl": "{\"task\": \"a\"}\n{\"task\": \"b\", \"base\": \"nope\"}\n"], status: 2),
        Case(name: "batch bad allow entry on a line", arguments: ["batch", "t.jsonl"], expected: "task 2 (b): ",
             files: ["t.jsonl": "{\"task\": \"a\"}\n{\"task\": \"b\", \"allow\": [\"10.0.0.0/99\"]}\n"], status: 2),
        Case(name: "zero jobs", arguments: ["batch", "--jobs", "0", "t.txt"], expected: "--jobs must be at least 1",
             files: ["t.txt": "a\n"], status: 2),
        Case(name: "zero attempts", arguments: ["yolo", "--attempts", "0", "x"], expected: "--attempts must be between 1 and 100", status: 2),
        Case(name: "too many attempts", arguments: ["yolo", "--attempts", "101", "x"], expected: "--attempts must be between 1 and 100", status: 2),
        Case(name: "empty check", arguments: ["yolo", "--check", " ", "x"], expected: "--check is empty", status: 2),
        Case(name: "rounds without a check", arguments: ["yolo", "--rounds", "3", "x"], expected: "--rounds 3 needs --check", status: 2),
        Case(name: "zero rounds", arguments: ["yolo", "--check", "true", "--rounds", "0", "x"], expected: "--rounds must be at least 1", status: 2),
        Case(name: "check report outside the checkout", arguments: ["yolo", "--check", "true", "--check-report", "../r.xml", "x"],
             expected: "--check-report ../r.xml: give a file relative to the checkout", status: 2),
        Case(name: "batch rounds without a check", arguments: ["batch", "t.jsonl"], expected: "t.jsonl:1: --rounds 2 needs --check",
             files: ["t.jsonl": "{\"task\": \"a\", \"rounds\": 2}\n"], status: 2),
        Case(name: "unknown API feature", arguments: ["yolo", "--allow-api-feature", "everything", "x"],
             expected: "--allow-api-feature: unknown API feature 'everything'", status: 2),
        Case(name: "unknown API feature in the config", arguments: ["yolo", "x"],
             expected: "allow_api_features in .patina/config.json: unknown API feature 'web'",
             files: [".patina/config.json": "{\"allow_api_features\": [\"web\"]}\n"], status: 2),
    ] + sandboxCases + budgetCases + diskCases + reviewCases

    /// The repository's sandbox: its devcontainer.json, toolchains and certificates.
    static let sandboxCases: [Case] = [
        Case(name: "invalid devcontainer.json", arguments: ["yolo", "x"],
             expected: ".devcontainer/devcontainer.json:3:3: invalid JSONC: expected ',' or '}'",
             files: [".devcontainer/devcontainer.json": "{\n  \"image\": \"debian\"\n  \"name\": \"missing comma\"\n}\n"], status: 2),
        Case(name: "unknown --devcontainer", arguments: ["yolo", "--devcontainer", "gpu", "x"],
             expected: "--devcontainer gpu: there is no .devcontainer/gpu/devcontainer.json (found: cpu",
             files: [".devcontainer/cpu/devcontainer.json": #"{"image": "debian"}"#], status: 2),
        Case(name: "registry feature without the devcontainer CLI", arguments: ["yolo", "x"],
             expected: "feature ghcr.io/devcontainers/features/node:1 comes from a registry, which needs the devcontainer CLI",
             files: [".devcontainer/devcontainer.json": #"{"image": "debian", "features": {"ghcr.io/devcontainers/features/node:1": {}}}"#], status: 2),
        Case(name: "Dockerfile outside the repository", arguments: ["yolo", "x"],
             expected: "build.dockerfile ../../Dockerfile is outside the repository",
             files: [".devcontainer/devcontainer.json": #"{"build": {"dockerfile": "../../Dockerfile"}}"#], status: 2),
        Case(name: "context outside the repository", arguments: ["yolo", "x"],
             expected: "build.context /etc is outside the repository",
             files: [".devcontainer/devcontainer.json": #"{"build": {"dockerfile": "Dockerfile", "context": "/etc"}}"#,
                     ".devcontainer/Dockerfile": "FROM debian\n"], status: 2),
        Case(name: "feature that cannot be installed", arguments: ["yolo", "x"],
             expected: "feature ./tools has no install.sh",
             files: [".devcontainer/devcontainer.json": #"{"image": "debian", "features": {"./tools": {}}}"#,
                     ".devcontainer/tools/devcontainer-feature.json": #"{"id": "tools"}"#], status: 2),
        // A name the user asked for stops the run before anything exists (a name patina's own
        // toolchain presets bring in is only a note: ProjectsEndToEndTests).
        Case(name: "allowed name that does not resolve", arguments: ["yolo", "--allow", "nosuch.patina-test.invalid:443", "x"],
             expected: "nosuch.patina-test.invalid (--allow) does not resolve from this machine", status: 2),
        Case(name: "unknown toolchain", arguments: ["yolo", "x"], expected: "unknown toolchain \"cobol\" in .patina/config.json",
             files: [".patina/config.json": #"{"toolchains": ["python", "cobol"]}"#], status: 2),
        Case(name: "CA file without a certificate", arguments: ["yolo", "x"], expected: "README.md holds no PEM certificate",
             files: [".patina/config.json": #"{"ca_certificates": ["README.md"]}"#], status: 2),
        Case(name: "agent_binary that is no executable", arguments: ["yolo", "x"], expected: "agent_binary README.md in .patina/config.json: not a Linux executable",
             files: [".patina/config.json": #"{"agent_binary": "README.md"}"#], status: 2),
        Case(name: "detect with an invalid devcontainer.json", arguments: ["detect"], expected: "invalid JSONC",
             files: [".devcontainer.json": "{,}"], status: 2),
    ]

    /// Budgets and the model endpoint (the model proxy's settings).
    static let budgetCases: [Case] = [
        Case(name: "zero budget", arguments: ["yolo", "--max-cost", "0", "x"], expected: "--max-cost must be a positive number of US dollars", status: 2),
        Case(name: "budget not a number", arguments: ["yolo", "--max-cost", "two dollars", "x"], expected: "(got \"two dollars\")", status: 2),
        Case(name: "negative budget", arguments: ["yolo", "--max-cost=-1", "x"], expected: "--max-cost must be a positive number", status: 2),
        Case(name: "budget for a model without a price", arguments: ["yolo", "--max-cost", "1", "--model", "claude-nonesuch-9", "x"],
             expected: "needs the price of model claude-nonesuch-9", status: 2),
        Case(name: "batch budget zero", arguments: ["batch", "--max-total-cost", "0", "t.txt"], expected: "--max-total-cost must be a positive number",
             files: ["t.txt": "a\n"], status: 2),
        Case(name: "batch budget on one run", arguments: ["yolo", "--max-total-cost", "5", "x"], expected: "--max-total-cost is a batch's budget", status: 2),
        Case(name: "batch budget for a model without a price", arguments: ["yolo", "--attempts", "2", "--max-total-cost", "5", "--model", "claude-nonesuch-9", "x"],
             expected: "needs the price of model claude-nonesuch-9", status: 2),
        Case(name: "batch line budget", arguments: ["batch", "t.jsonl"], expected: "t.jsonl:1: --max-cost must be a positive number",
             files: ["t.jsonl": "{\"task\": \"a\", \"max_cost\": \"free\"}\n"], status: 2),
        Case(name: "config budget zero", arguments: ["yolo", "x"], expected: "max_cost in .patina/config.json must be a positive number",
             files: [".patina/config.json": "{\"max_cost\": 0}"], status: 2),
        Case(name: "config price not a number", arguments: ["yolo", "x"], expected: "wrong type for \"model_prices.my-model.input\"",
             files: [".patina/config.json": "{\"model_prices\": {\"my-model\": {\"input\": \"cheap\", \"output\": 1}}}"], status: 2),
        Case(name: "base URL not http", arguments: ["yolo", "x"], expected: "ANTHROPIC_BASE_URL \"ftp://example.com\" is not an http(s) URL",
             environment: ["ANTHROPIC_BASE_URL": "ftp://example.com"], status: 2),
    ]

    /// The disk limits: sizes, counts and floors that cannot be.
    static let diskCases: [Case] = [
        Case(name: "max file size not a size", arguments: ["yolo", "--max-file-size", "big", "x"],
             expected: "--max-file-size must be a size like 50m, 300MB or 2g (got \"big\")", status: 2),
        Case(name: "max file size zero", arguments: ["yolo", "--max-file-size", "0", "x"], expected: "--max-file-size must be a size", status: 2),
        Case(name: "max file size unknown unit", arguments: ["yolo", "--max-file-size", "5q", "x"], expected: "--max-file-size must be a size", status: 2),
        Case(name: "max new paths zero", arguments: ["yolo", "--max-new-paths", "0", "x"], expected: "--max-new-paths must be at least 1", status: 2),
        Case(name: "min free over 100%", arguments: ["yolo", "--min-free", "150%", "x"],
             expected: "--min-free must be a size like 2g or a share of the filesystem like 5% (got \"150%\")", status: 2),
        Case(name: "min free negative", arguments: ["yolo", "--min-free=-1g", "x"], expected: "--min-free must be a size", status: 2),
        Case(name: "batch min free", arguments: ["batch", "--min-free", "lots", "t.txt"], expected: "--min-free must be a size",
             files: ["t.txt": "a\n"], status: 2),
        Case(name: "batch line max file size", arguments: ["batch", "t.jsonl"], expected: "t.jsonl:1: --max-file-size must be a size",
             files: ["t.jsonl": "{\"task\": \"a\", \"max_file_size\": \"huge\"}\n"], status: 2),
        Case(name: "config max file size", arguments: ["yolo", "x"], expected: "max_file_size in .patina/config.json must be a size",
             files: [".patina/config.json": "{\"max_file_size\": \"10 parsecs\"}"], status: 2),
        Case(name: "config max new paths", arguments: ["yolo", "x"], expected: "max_new_paths in .patina/config.json must be at least 1",
             files: [".patina/config.json": "{\"max_new_paths\": -5}"], status: 2),
        Case(name: "config min free", arguments: ["yolo", "x"], expected: "min_free in .patina/config.json must be a size",
             files: [".patina/config.json": "{\"min_free\": \"0.5 of it\"}"], status: 2),
        Case(name: "config max new paths wrong type", arguments: ["yolo", "x"], expected: "wrong type for \"max_new_paths\"",
             files: [".patina/config.json": "{\"max_new_paths\": \"many\"}"], status: 2),
    ]

    /// Every review verb on a run that does not exist: one line, exit 2, nothing created.
    static let reviewCases: [Case] = [
        ["log", "nope"], ["log", "--raw", "nope"], ["diff", "nope"], ["diff", "--stat", "nope"], ["compare", "nope", "other"],
        ["merge", "nope"], ["merge", "--squash", "nope"], ["apply", "nope"], ["discard", "nope"], ["resume", "nope", "go on"],
        ["shell", "nope"], ["shell", "nope", "--", "true"], ["show", "nope"],
    ].map { Case(name: $0.joined(separator: " "), arguments: $0, expected: "no run matches \"nope\"", status: 2) } + [
        Case(name: "compare one run", arguments: ["compare", "x"], expected: "at least two runs", status: 2),
        Case(name: "compare nothing", arguments: ["compare"], expected: "two or more runs", status: 2),
        Case(name: "discard nothing", arguments: ["discard"], expected: "Missing expected argument", status: 2),
        Case(name: "prune bad status", arguments: ["prune", "--status", "great"], expected: "--status great", status: 2),
        Case(name: "prune bad age", arguments: ["prune", "--older-than", "soon"], expected: "--older-than", status: 2),
        Case(name: "prune unknown batch", arguments: ["prune", "--batch", "nope"], expected: "no batch matches", status: 2),
        Case(name: "runs bad since", arguments: ["runs", "--since", "whenever"], expected: "--since whenever", status: 2),
        Case(name: "runs bad limit", arguments: ["runs", "--limit", "0"], expected: "--limit 0 is out of range: give at least 1", status: 2),
        Case(name: "runs negative limit", arguments: ["runs", "--limit", "-1"], expected: "--limit -1 is out of range: give at least 1", status: 2),
        Case(name: "negative attempts", arguments: ["yolo", "--attempts", "-2", "x"], expected: "--attempts must be between 1 and 100", status: 2),
        Case(name: "unknown option points to the subcommand's help", arguments: ["diff", "--bogus", "x"],
             expected: "Unknown option '--bogus' (see `patina diff --help`)", status: 2),
        Case(name: "unknown option of a nested subcommand", arguments: ["cache", "list", "--bogus"],
             expected: "(see `patina cache list --help`)", status: 2),
        Case(name: "latest without runs", arguments: ["merge", "latest"], expected: "no patina runs yet", status: 2),
        Case(name: "resume empty follow-up", arguments: ["resume", "x", " "], expected: "task is empty", status: 2),
    ]

    @Test(arguments: cases)
    func rejectedWithOneLineAndNothingCreated(_ c: Case) throws {
        let repo = try TemporaryRepository()
        var patina = PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9")
        for (k, v) in c.environment { patina.extraEnvironment[k] = v }
        var environment = patina.environment
        if c.unsetCredentials { environment.removeValue(forKey: "ANTHROPIC_API_KEY") }
        for (name, content) in c.files { try repo.write(name, content) }
        let output = try ProcessRunner.run([TestEnvironment.patinaBinary.path] + c.arguments, in: repo.path, environment: environment)
        try expectRejected(output, expected: c.expected, repo: repo)
        #expect(output.status == c.status, "\(output.stderr)")
    }

    /// `patina --version` and `patina version`: the version, the commit it was built from
    /// (or "unknown"), and the libgit2 and libseccomp it links; outside any repository.
    @Test func versionNamesTheBuildAndTheLibraries() throws {
        let outside = FileManager.default.temporaryDirectory
        for arguments in [["--version"], ["version"]] {
            let output = try ProcessRunner.run([TestEnvironment.patinaBinary.path] + arguments, in: outside)
            #expect(output.status == 0, "\(arguments): \(output.stderr)")
            let lines = output.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("patina ") == true, "\(output.stdout)")
            let commit = lines.first { $0.hasPrefix("commit:") }?.dropFirst("commit:".count).trimmingCharacters(in: .whitespaces) ?? ""
            #expect(commit == "unknown" || commit.prefix(40).allSatisfy(\.isHexDigit) && commit.count >= 40, "\(output.stdout)")
            #expect(lines.contains { $0.range(of: #"^libgit2: +\d+\.\d+\.\d+$"#, options: .regularExpression) != nil }, "\(output.stdout)")
            #expect(lines.contains { $0.range(of: #"^libseccomp: +\d+\.\d+\.\d+$"#, options: .regularExpression) != nil }, "\(output.stdout)")
        }
        // A write error on stdout other than a closed pipe (a full disk): one line, exit 1.
        let full = try ProcessRunner.run(["bash", "-c", "\"$0\" version > /dev/full", TestEnvironment.patinaBinary.path], in: outside)
        #expect(full.status == 1)
        #expect(full.stderr == "error: could not write to standard output: No space left on device\n", "\(full.stderr)")
    }

    @Test func notAGitRepository() throws {
        let repo = try TemporaryRepository()
        let outside = repo.root.appendingPathComponent("plain")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        let output = try PatinaRunner(repository: repo).run(["yolo", "x"], in: outside)
        try expectRejected(output, expected: "not a git repository", repo: repo)
    }

    @Test func repositoryWithoutCommits() throws {
        let repo = try TemporaryRepository()
        let empty = repo.root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try ProcessRunner.check(["git", "init", "-q", empty.path])
        let output = try PatinaRunner(repository: repo).run(["yolo", "x"], in: empty)
        try expectRejected(output, expected: "no commits", repo: repo)
    }

    @Test func invalidTemplateOverride() throws {
        let repo = try TemporaryRepository()
        try repo.write(".patina/templates/Dockerfile.mustache", "FROM {{#base_image}}\n")
        try repo.git("add", "-A")
        try repo.git("commit", "-q", "-m", "broken template")
        let output = try PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9").run(["yolo", "x"])
        try expectRejected(output, expected: "Dockerfile.mustache", repo: repo)
    }

    @Test func unreadableTemplateOverride() throws {
        let repo = try TemporaryRepository()
        // A directory where the template file should be cannot be read, even by root.
        try FileManager.default.createDirectory(at: repo.path.appendingPathComponent(".patina/templates/claude-settings.json.mustache"), withIntermediateDirectories: true)
        let output = try PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9").run(["yolo", "x"])
        try expectRejected(output, expected: "claude-settings.json.mustache", repo: repo)
    }

    @Test func allowAllSeccompOverride() throws {
        // A repository's profile whose default action allows everything, unshare alone still
        // denied: refused from what libseccomp compiled, naming the calls, before anything exists.
        let repo = try TemporaryRepository()
        try repo.write(".patina/templates/seccomp/profile.json.mustache", """
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
             "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}], "x": {{{allowedNames}}} }
            """)
        let output = try PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9").run(["yolo", "x"])
        try expectRejected(output, expected: "the compiled seccomp filter allows", repo: repo)
        #expect(output.stderr.contains("bpf") && output.stderr.contains("chroot"))
        #expect(output.status == 2)
    }

    @Test func badConfigFile() throws {
        let repo = try TemporaryRepository()
        try repo.write(".patina/config.json", #"{"allow": "pypi.org"}"#)
        let output = try PatinaRunner(repository: repo, baseURL: "http://127.0.0.1:9").run(["yolo", "x"])
        try expectRejected(output, expected: "config.json", repo: repo)
    }

    func expectRejected(_ output: ProcessRunner.Output, expected: String, repo: TemporaryRepository,
                        sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(output.status != 0, sourceLocation: sourceLocation)
        let lines = output.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(output.stderr)", sourceLocation: sourceLocation)
        #expect(output.stderr.hasPrefix("error: "), sourceLocation: sourceLocation)
        #expect(output.stderr.contains(expected), "stderr: \(output.stderr)", sourceLocation: sourceLocation)
        #expect(output.stdout.isEmpty, sourceLocation: sourceLocation)
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty, "a branch was created", sourceLocation: sourceLocation)
        #expect(try repo.git("worktree", "list").split(separator: "\n").count == 1, "a worktree was created", sourceLocation: sourceLocation)
        let store = repo.store
        let leftovers = (FileManager.default.enumerator(atPath: store.path)?.allObjects as? [String] ?? [])
            .filter { $0.hasPrefix("runs/") || $0.hasPrefix("worktrees/") || $0.hasPrefix("batches/") }
        #expect(leftovers.isEmpty, "run store not empty: \(leftovers)", sourceLocation: sourceLocation)
        if TestEnvironment.dockerAnswers {
            let mine = try PatinaRunner.leftoverContainers(repository: repo)
            #expect(mine.isEmpty, "containers: \(mine)", sourceLocation: sourceLocation)
        }
    }
}
