import Foundation
import PatinaCore
import PatinaSandbox
import PatinaTestSupport
import Testing

/// Real projects' own test commands, as a new user would type them, in the agent's sandbox
/// and as the run's check: a Python library versioned from its git tags (pluggy's sdist from
/// PyPI, setuptools-scm) and a Go module from Debian's golang-*-dev packages (xxhash). For
/// each: the check passes on a run that changes nothing and fails (check_failed, exit 1) on a
/// run that breaks a function; `git describe --tags` in both sandboxes says what it says on
/// the host, and the user's own `git describe --tags` is the same before and after the runs.
/// The projects are fetched by scripts/setup-test-env into .cache/projects.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(15)))
struct ProjectsEndToEndTests {
    static var projects: URL { TestEnvironment.packageRoot.appendingPathComponent(".cache/projects") }

    /// A repository made of `source`'s files, committed and tagged `tag` (annotated, like a release).
    static func repository(from source: URL, tag: String, extra: [String: String] = [:], dropping: [String] = []) throws -> TemporaryRepository {
        let repo = try TemporaryRepository(files: extra)
        try ProcessRunner.check(["cp", "-R", source.path + "/.", repo.path.path])
        for path in dropping { try? FileManager.default.removeItem(at: repo.path.appendingPathComponent(path)) }
        try repo.git("add", "-A")
        try repo.git("commit", "-q", "-m", "release \(tag)")
        try repo.git("tag", "-a", tag, "-m", "release \(tag)")
        return repo
    }

    /// What a run's agent and check say about their environment, one `KEY=value` per line.
    static let environmentProbe = #"echo "DESCRIBE=$(git describe --tags 2>&1)"; echo "VENV=${VIRTUAL_ENV:-none}"; "#
        + #"printf '#!/bin/sh\necho tmp-exec-ok\n' > /tmp/patina-exec && chmod +x /tmp/patina-exec && echo "TMP=$(/tmp/patina-exec 2>&1)""#

    /// The agent leaves a mark in its warm cache; the check says where its cache is, what it
    /// read there, and writes a mark of its own, which must not reach the repository's cache.
    static func agentMarksCache(_ variable: String) -> String {
        #"echo from-the-agent > "$\#(variable)/written-by-the-agent" && echo "MARKED=$\#(variable)""#
    }
    static func checkReadsCache(_ directory: String) -> String {
        #"echo "CACHE=\#(directory) SEEN=$(cat "\#(directory)/written-by-the-agent" 2>&1)"; touch "\#(directory)/written-by-the-check""#
    }

    /// The repository's warm cache on the host kept the agent's mark and none of the check's,
    /// and no overlay stays mounted.
    static func expectCacheUntouchedByTheCheck(_ repo: TemporaryRepository, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let found = (FileManager.default.enumerator(atPath: repo.store.path)?.allObjects as? [String] ?? [])
            .filter { ("/" + $0).contains("/cache/\(name)/written-by-") }
        #expect(found.count == 1 && found[0].hasSuffix("written-by-the-agent"), "\(found)", sourceLocation: sourceLocation)
        #expect(MountTable.points(under: repo.store).isEmpty, "\(MountTable.points(under: repo.store))", sourceLocation: sourceLocation)
    }

    static func value(_ key: String, in text: String) -> String? {
        text.split(separator: "\n").last { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    @Test func aPythonLibraryVersionedFromItsTagsPassesItsOwnTestsAndABrokenFunctionFailsTheRun() throws {
        let sdist = Self.projects.appendingPathComponent("pluggy-1.5.0.tar.gz")
        try #require(FileManager.default.fileExists(atPath: sdist.path), "run scripts/setup-test-env")
        let unpacked = FileManager.default.temporaryDirectory.appendingPathComponent("patina-pluggy-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: unpacked, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: unpacked) }
        try ProcessRunner.check(["tar", "-xzf", sdist.path, "-C", unpacked.path])
        // As a checkout has it: no PKG-INFO, the version file setuptools-scm writes ignored.
        let repo = try Self.repository(
            from: unpacked.appendingPathComponent("pluggy-1.5.0"), tag: "1.5.0",
            extra: [".gitignore": "src/pluggy/_version.py\n*.egg-info/\n__pycache__/\n.pytest_cache/\nbuild/\n"],
            dropping: ["PKG-INFO", "src/pluggy/_version.py", "setup.cfg.orig"])
        let main = try repo.git("rev-parse", "main")
        let described = try repo.git("describe", "--tags")
        #expect(described == "1.5.0")

        // The project's own test command, as its contributors type it.
        let testCommand = "pip install -q -e . pytest && python -c 'import pluggy; print(\"VERSION=\" + pluggy.__version__)' && python -m pytest -q -p no:cacheprovider"
        let check = Self.environmentProbe + "; " + Self.checkReadsCache("$PIP_CACHE_DIR") + "; " + testCommand
        let model = try FakeModel(script: [
            .bash(Self.environmentProbe + "; command -v pip python; python3 -m pip --version; " + Self.agentMarksCache("PIP_CACHE_DIR")),
            .text("Looked around; nothing to change."),
        ])
        // A fake model's script starts over with each conversation: the second run has its own.
        let breaking = try FakeModel(script: [
            .bash(#"python3 - <<'EOF'"# + "\n" + #"import re, pathlib"# + "\n"
                  + #"p = pathlib.Path("src/pluggy/_manager.py"); s = p.read_text()"# + "\n"
                  + #"old = "return {x for x in self._name2plugin.values() if x is not None}""# + "\n"
                  + #"assert old in s, "get_plugins not found"; p.write_text(s.replace(old, "return set()", 1))"# + "\n"
                  + "EOF\n" + #"git commit -qam "get_plugins: simpler" && git log --oneline -1"#),
            .text("Simplified get_plugins."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = Date()
        let good = try FinishedRun(patina.yolo("look around", ["--check", check, "--check-timeout", "8m"]))
        let goodSeconds = Date().timeIntervalSince(started)
        #expect(good.status == "succeeded", "\(good.output.stderr.suffix(3000))")
        #expect(good.output.status == 0)
        // The release tag the sandbox was given is not a ref the agent made.
        #expect(good.record["history"] == nil, "\(good.record["history"] ?? "")")
        let agentSaw = model.toolResults().joined(separator: "\n")
        #expect(Self.value("DESCRIBE", in: agentSaw) == described, "\(agentSaw)")
        #expect(Self.value("VENV", in: agentSaw) == "/home/agent/.venv", "\(agentSaw)")
        #expect(Self.value("TMP", in: agentSaw) == "tmp-exec-ok", "\(agentSaw)")
        #expect(agentSaw.contains("/home/agent/.venv/bin/pip"), "\(agentSaw)")
        let goodCheck = good.record["check"] as? [String: Any] ?? [:]
        let goodTail = goodCheck["output_tail"] as? String ?? ""
        #expect(goodCheck["passed"] as? Bool == true, "\(goodCheck)")
        #expect(Self.value("DESCRIBE", in: goodTail) == described, "\(goodTail)")
        #expect(Self.value("VERSION", in: goodTail) == "1.5.0", "\(goodTail)")
        #expect(Self.value("TMP", in: goodTail) == "tmp-exec-ok", "\(goodTail)")
        #expect(goodTail.range(of: #"[0-9]+ passed"#, options: .regularExpression) != nil, "\(goodTail)")
        // The check had the agent's warm pip cache, and wrote nothing into it that stayed.
        #expect(Self.value("MARKED", in: agentSaw) == "/patina/cache/pip", "\(agentSaw)")
        #expect(Self.value("CACHE", in: goodTail) == "/patina/cache/pip SEEN=from-the-agent", "\(goodTail)")
        Self.expectCacheUntouchedByTheCheck(repo, "pip")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: good)

        let broken = try FinishedRun(PatinaRunner(repository: repo, baseURL: breaking.baseURL)
            .yolo("simplify get_plugins", ["--check", check, "--check-timeout", "8m"]))
        #expect(broken.status == "check_failed", "\(broken.output.stderr.suffix(3000))")
        #expect(broken.output.status == 1)
        let brokenCheck = broken.record["check"] as? [String: Any] ?? [:]
        #expect(brokenCheck["passed"] as? Bool == false && brokenCheck["exit_code"] as? Int == 1, "\(brokenCheck)")
        let brokenTail = brokenCheck["output_tail"] as? String ?? ""
        #expect(brokenTail.contains("failed"), "\(brokenTail)")
        // The check built the collected head's version from the tag: one commit past it.
        let brokenLog = broken.file("check.log") ?? ""
        #expect(Self.value("DESCRIBE", in: brokenLog)?.hasPrefix("1.5.0-1-g") == true, "\(brokenLog.prefix(2000))")
        #expect(Self.value("VERSION", in: brokenLog)?.hasPrefix("1.5.1.dev1+g") == true, "\(brokenLog.prefix(2000))")
        #expect(broken.files.count == 1, "\(breaking.toolResults().joined(separator: "\n"))")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: broken)

        // What the user reads: the headline, the check line, the list and the comparison.
        let show = try patina.run(["show", broken.id])
        #expect(show.stdout.hasPrefix("CHECK FAILED  \(broken.id)"), "\(show.stdout)")
        #expect(show.stdout.contains("check:     `") && show.stdout.contains("FAILED (exit 1)"), "\(show.stdout)")
        #expect(show.stdout.contains("check output (last lines"), "\(show.stdout)")
        let runs = try patina.run(["runs"])
        #expect(runs.stdout.split(separator: "\n").contains { $0.hasPrefix("check_failed") && $0.contains(broken.id) }, "\(runs.stdout)")
        let compare = try patina.run(["compare", good.id, broken.id])
        #expect(compare.stdout.contains("check_failed") && compare.stdout.contains("failed"), "\(compare.stdout)")
        let failedOnly = try patina.run(["runs", "--status", "check_failed", "--json"])
        #expect(failedOnly.stdout.contains(broken.id) && !failedOnly.stdout.contains(good.id))

        // The user's tooling saw nothing of the runs: describe, the tag list, push --tags.
        #expect(try repo.git("describe", "--tags") == described)
        #expect(try repo.git("tag", "--list") == "1.5.0")
        let remote = repo.root.appendingPathComponent("remote.git")
        try repo.git("init", "-q", "--bare", remote.path)
        try repo.git("push", "-q", "--tags", remote.path)
        #expect(try ProcessRunner.check(["git", "-C", remote.path, "for-each-ref", "--format=%(refname)"])
            .trimmingCharacters(in: .whitespacesAndNewlines) == "refs/tags/1.5.0")
        // ...while the run's marks still bracket its work by their short names.
        #expect(try repo.git("diff", "--name-only", "session-\(broken.id)-start..session-\(broken.id)-end") == "src/pluggy/_manager.py")
        // Warm: a third run that changes nothing, on the same patina home; its check passes again.
        let again = try FakeModel(script: [.text("Nothing to change.")])
        let warmStarted = Date()
        let warm = try FinishedRun(PatinaRunner(repository: repo, baseURL: again.baseURL).yolo("look again", ["--check", testCommand, "--check-timeout", "8m"]))
        let warmSeconds = Date().timeIntervalSince(warmStarted)
        let warmCheck = warm.record["check"] as? [String: Any] ?? [:]
        #expect(warm.status == "succeeded" && warmCheck["passed"] as? Bool == true, "\(warmCheck)")
        Self.expectCacheUntouchedByTheCheck(repo, "pip")
        print("pluggy: `\(testCommand)`: cold run to a passing check \(Int(goodSeconds)) s (check \(goodCheck["duration_s"] ?? "?") s); "
              + "warm \(Int(warmSeconds)) s (check \(warmCheck["duration_s"] ?? "?") s); failing check \(brokenCheck["duration_s"] ?? "?") s; image \(good.record["image"] ?? "?")")
    }

    /// A Go module with only standard-library imports, as Debian ships it (xxhash), whose
    /// toolchain preset does not resolve: the sandbox's resolver is the test's own DNS server,
    /// which knows no name. The preset patina added by itself is a note; the run goes on, `go
    /// test` runs its test binaries from /tmp, and cgo (the `net` package) has its C compiler.
    @Test func aGoModulePassesItsOwnTestsThoughItsPresetDoesNotResolveAndABrokenFunctionFailsTheRun() throws {
        let module = Self.projects.appendingPathComponent("golang-github-cespare-xxhash-dev/usr/share/gocode/src/github.com/cespare/xxhash")
        try #require(FileManager.default.fileExists(atPath: module.appendingPathComponent("go.mod").path), "run scripts/setup-test-env")
        let dns = try ResolverEndToEndTests.DNSServer(host: FakeModel.bridgeGateway(), port: 0, answers: "")
        defer { dns.stop() }
        let repo = try Self.repository(
            from: module, tag: "v2.1.1",
            extra: [".patina/config.json": #"{"dns": ["\#(FakeModel.bridgeGateway()):\#(dns.port)"]}"#])
        let main = try repo.git("rev-parse", "main")
        let described = try repo.git("describe", "--tags")
        let testCommand = "go test ./..."
        let check = Self.environmentProbe + "; " + Self.checkReadsCache("$(go env GOMODCACHE)") + "; " + testCommand
        let cgo = #"mkdir -p /tmp/cgo && printf 'package main\nimport (\n"fmt"\n"net"\n)\nfunc main() { fmt.Println("CGO=" + net.ParseIP("192.0.2.1").String()) }\n' > /tmp/cgo/main.go && (cd /tmp/cgo && go env CGO_ENABLED && go run main.go)"#
        let model = try FakeModel(script: [
            .bash(Self.environmentProbe + "; " + cgo + "; go test ./... 2>&1 | tail -3; " + Self.agentMarksCache("GOMODCACHE")),
            .text("The tests pass."),
        ])
        let breaking = try FakeModel(script: [
            .bash(#"sed -i 's/prime1 uint64 = 11400714785074694791/prime1 uint64 = 11400714785074694793/' xxhash.go && git commit -qam "a rounder prime" && git log --oneline -1"#),
            .text("Changed the prime."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let started = Date()
        let good = try FinishedRun(patina.yolo("run the tests", ["--check", check]))
        let goodSeconds = Date().timeIntervalSince(started)
        #expect(good.status == "succeeded", "\(good.output.stderr.suffix(3000))")
        #expect(good.output.stderr.contains("proxy.golang.org does not resolve"), "\(good.output.stderr.suffix(3000))")
        #expect(good.record["auto_presets"] as? [String] == ["golang"])
        #expect(Set(good.record["unresolved_preset_names"] as? [String] ?? []) == ["proxy.golang.org", "sum.golang.org"], "\(good.record)")
        #expect(try patina.run(["show", good.id]).stdout.contains("did not resolve: left out of the allow-list, the run went on"))
        let agentSaw = model.toolResults().joined(separator: "\n")
        #expect(Self.value("DESCRIBE", in: agentSaw) == described, "\(agentSaw)")
        #expect(Self.value("TMP", in: agentSaw) == "tmp-exec-ok", "\(agentSaw)")
        #expect(Self.value("CGO", in: agentSaw) == "192.0.2.1", "\(agentSaw)")
        #expect(agentSaw.contains("ok  \tgithub.com/cespare/xxhash/v2"), "\(agentSaw)")
        let goodCheck = good.record["check"] as? [String: Any] ?? [:]
        let goodTail = goodCheck["output_tail"] as? String ?? ""
        #expect(goodCheck["passed"] as? Bool == true, "\(goodCheck)")
        #expect(Self.value("DESCRIBE", in: goodTail) == described, "\(goodTail)")
        #expect(goodTail.contains("ok  \tgithub.com/cespare/xxhash/v2"), "\(goodTail)")
        #expect(Self.value("MARKED", in: agentSaw) == "/patina/cache/go", "\(agentSaw)")
        #expect(Self.value("CACHE", in: goodTail) == "/patina/cache/go SEEN=from-the-agent", "\(goodTail)")
        Self.expectCacheUntouchedByTheCheck(repo, "go")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: good)

        // patina shell: the command's output alone on stdout; patina's notes (the preset that
        // does not resolve) on stderr.
        let shell = try patina.run(["shell", good.id, "--", "go", "env", "GOMODCACHE"])
        #expect(shell.status == 0, "\(shell.stderr)")
        #expect(shell.stdout == "/patina/cache/go\n", "\(shell.stdout)")
        #expect(shell.stderr.contains("proxy.golang.org does not resolve"), "\(shell.stderr)")

        let broken = try FinishedRun(PatinaRunner(repository: repo, baseURL: breaking.baseURL).yolo("change a constant", ["--check", check]))
        Self.expectCacheUntouchedByTheCheck(repo, "go")
        #expect(broken.status == "check_failed", "\(broken.output.stderr.suffix(3000))")
        #expect(broken.output.status == 1)
        let brokenCheck = broken.record["check"] as? [String: Any] ?? [:]
        let brokenTail = brokenCheck["output_tail"] as? String ?? ""
        #expect(brokenCheck["passed"] as? Bool == false, "\(brokenCheck)")
        #expect(brokenTail.contains("FAIL"), "\(brokenTail)")
        let brokenLog = broken.file("check.log") ?? ""
        #expect(Self.value("DESCRIBE", in: brokenLog)?.hasPrefix("v2.1.1-1-g") == true, "\(brokenLog.prefix(2000))")
        #expect(broken.output.stderr.contains("CHECK FAILED") || broken.record["status"] as? String == "check_failed")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: broken)
        #expect(try repo.git("describe", "--tags") == described)
        #expect(try repo.git("tag", "--list") == "v2.1.1")

        // patina detect says the same before any run: what the firewall allows, and the note.
        let detect = try patina.run(["detect"])
        #expect(detect.stdout.contains("firewall: on; the sandbox may reach the run's model proxy and: proxy.golang.org:443/tcp"), "\(detect.stdout.prefix(3000))")
        let again = try FakeModel(script: [.text("Nothing to change.")])
        let warmStarted = Date()
        let warm = try FinishedRun(PatinaRunner(repository: repo, baseURL: again.baseURL).yolo("look again", ["--check", testCommand]))
        let warmSeconds = Date().timeIntervalSince(warmStarted)
        let warmCheck = warm.record["check"] as? [String: Any] ?? [:]
        #expect(warm.status == "succeeded" && warmCheck["passed"] as? Bool == true, "\(warmCheck)")
        Self.expectCacheUntouchedByTheCheck(repo, "go")
        print("xxhash: `\(testCommand)`: cold run to a passing check \(Int(goodSeconds)) s (check \(goodCheck["duration_s"] ?? "?") s); "
              + "warm \(Int(warmSeconds)) s (check \(warmCheck["duration_s"] ?? "?") s); failing check \(brokenCheck["duration_s"] ?? "?") s; image \(good.record["image"] ?? "?")")
    }

    /// A repository where an earlier patina left its session tags: the next patina command moves
    /// them out of refs/tags once, so the user's `git describe --tags` names the release again,
    /// and `git diff session-<id>-start..session-<id>-end` still works.
    @Test func sessionTagsOfEarlierRunsAreMovedOutOfTheTagsOnce() throws {
        let repo = try TemporaryRepository(files: ["README.md": "# lib\n"])
        try repo.git("tag", "-a", "v1.0", "-m", "release 1.0")
        try repo.write("lib.txt", "more\n")
        try repo.git("add", "-A")
        try repo.git("commit", "-q", "-m", "after the release")
        let id = "20261201-000000-earlier-run-abcd"
        try repo.git("tag", "-a", "session-\(id)-start", "-m", "patina run \(id)", "HEAD~1")
        try repo.git("tag", "-a", "session-\(id)-end", "-m", "patina run \(id)", "HEAD")
        try repo.git("tag", "-a", "session-someone-elses-start", "-m", "not patina's", "HEAD~1")
        #expect(try repo.git("describe", "--tags").hasPrefix("session-"))
        let store = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git"))
        try FileManager.default.createDirectory(at: store.runDirectory(id), withIntermediateDirectories: true)

        let patina = PatinaRunner(repository: repo)
        let first = try patina.run(["runs"])
        #expect(first.stderr.contains("moved 2 session tags of earlier runs"), "\(first.stderr)")
        #expect(try repo.git("describe", "--tags", "--exclude", "session-someone-*") == "v1.0-1-g" + String(try repo.git("rev-parse", "HEAD").prefix(7)))
        #expect(try repo.git("tag", "--list").split(separator: "\n") == ["session-someone-elses-start", "v1.0"])
        #expect(try repo.git("diff", "--name-only", "session-\(id)-start..session-\(id)-end") == "lib.txt")
        #expect(try repo.git("for-each-ref", "--format=%(refname)", "refs/session-\(id)-end") == "refs/session-\(id)-end")
        // Once: the next command says nothing.
        #expect(!(try patina.run(["runs"]).stderr.contains("moved")))
    }
}
