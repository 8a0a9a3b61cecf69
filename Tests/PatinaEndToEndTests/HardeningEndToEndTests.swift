import Foundation
import PatinaCore
import PatinaSandbox
import PatinaTestSupport
import Testing

/// The hardened sandbox under attack: the real Claude Code agent, driven by the
/// scripted fake model, runs hostile commands in the real container. Each command
/// prints its outcome as `NAME:value` lines; the assertions read them back from the
/// tool results the agent sent to the model, then check the host.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(10)))
struct HardeningEndToEndTests {
    @Test func agentHasNoPrivilegesAndEveryEscapeFails() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            // Its own credentials, as the kernel sees them.
            .bash(#"awk '/^(Uid|Seccomp|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb):/ { print "STATUS-" $1 $2 }' /proc/self/status"#),
            // Every way out it can try with what the image has.
            .bash(#"""
            unshare -U true 2>&1; echo "UNSHARE-U:$?"
            unshare -Ur id -u 2>&1; echo "UNSHARE-UR:$?"
            unshare -n true 2>&1; echo "UNSHARE-N:$?"
            mount -t tmpfs none /mnt 2>&1; echo "MOUNT:$?"
            nsenter -t 1 -m -u -n true 2>&1; echo "NSENTER:$?"
            chroot / true 2>&1; echo "CHROOT:$?"
            setpriv --reuid=0 --regid=0 --clear-groups true 2>&1; echo "SETPRIV:$?"
            sudo -n id -u 2>&1; echo "SUDO:$?"
            su -c 'id -u' root </dev/null 2>&1; echo "SU:$?"
            setarch "$(uname -m)" -R true 2>&1; echo "SETARCH-NO-ASLR:$?"
            echo "SETUID-FILES:$(find / -xdev -type f \( -perm -4000 -o -perm -2000 \) 2>/dev/null | wc -l)"
            for f in $(find / -xdev -type f -perm -4000 2>/dev/null); do "$f" -c 'id -u' </dev/null; echo "SETUID-RAN:$f:$?"; done
            test -e /var/run/docker.sock -o -e /run/docker.sock; echo "DOCKER-SOCKET:$?"
            echo "DOCKER-SOCKETS-FOUND:$(find / \( -path /proc -o -path /sys \) -prune -o -name 'docker*.sock' -print 2>/dev/null | wc -l)"
            echo "DOCKER-IN-MOUNTS:$(grep -c docker.sock /proc/self/mountinfo)"
            echo "MOUNT-POINTS:$(awk '{ print $5 }' /proc/self/mountinfo | sort -u | tr '\n' ' ')"
            touch /usr/local/bin/planted 2>&1; echo "ROOT-WRITE:$?"
            echo planted >> /etc/passwd 2>&1; echo "PASSWD-WRITE:$?"
            echo "ID:$(id -u)"
            """#),
            // The kernel calls the profile denies, made directly (perl-base is in every Debian
            // image). Most would succeed for an unprivileged process without the profile.
            .bash(Self.deniedSyscallAttempts),
            .text("Tried everything; nothing worked."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("try to escape"))
        #expect(run.status == "succeeded", "\(run.record) / \(run.output.stderr.suffix(800))")

        let results = commandOutputs(model)
        let out = markers(in: results)
        let transcript = results.joined(separator: "\n---\n")
        // Seccomp filter mode, no new privileges, no capabilities at all, not root.
        #expect(out["STATUS-Seccomp"] == "2", "\(transcript)")
        #expect(out["STATUS-NoNewPrivs"] == "1")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(out["STATUS-\(set)"] == "0000000000000000", "\(set): \(out["STATUS-\(set)"] ?? "missing")")
        }
        #expect(out["STATUS-Uid"] == "1000" || getuid() != 0)
        #expect(out["ID"] != nil && out["ID"] != "0")

        // Every escape fails (a missing command fails too: 127).
        for name in ["UNSHARE-U", "UNSHARE-UR", "UNSHARE-N", "MOUNT", "NSENTER", "CHROOT", "SETPRIV", "SUDO", "SU",
                     "SETARCH-NO-ASLR", "ROOT-WRITE", "PASSWD-WRITE", "DOCKER-SOCKET"] {
            let status = out[name]
            #expect(status != nil && status != "0", "\(name) succeeded or did not run: \(transcript)")
        }
        // New namespaces are refused by the seccomp profile, not merely by missing privileges.
        #expect(transcript.contains("unshare failed: Operation not permitted"), "\(transcript)")
        // Each denied call fails with EPERM (1), the profile's answer.
        for name in Self.deniedSyscalls {
            #expect(out["SYSCALL-\(name)"] == "1", "\(name): \(out["SYSCALL-\(name)"] ?? "not run"): \(transcript)")
        }
        #expect(out["SETUID-FILES"] == "0", "setuid/setgid binaries in the image: \(transcript)")
        #expect(!transcript.contains("SETUID-RAN"))
        #expect(out["DOCKER-SOCKETS-FOUND"] == "0")
        #expect(out["DOCKER-IN-MOUNTS"] == "0")
        // No host path is mounted beyond what the run needs (Docker's own /proc, /sys, /dev
        // and /etc files aside).
        let mountPoints = Set((out["MOUNT-POINTS"] ?? "").split(separator: " ").map(String.init))
            .filter { !["/proc", "/sys", "/dev"].contains(where: $0.hasPrefix) }
        let needed: Set = ["/", "/tmp", "/workspace", "/workspace/.git", "/patina/git", "/patina/host-objects", "/home/agent",
                           "/patina/command-limits.sh", "/patina/probe.sh", "/patina/handshake", "/patina/firewall/selftest.sh", "/patina/claude",
                           "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/sbin/docker-init", "/usr/sbin/docker-init"]
        #expect(!mountPoints.isEmpty && mountPoints.isSubset(of: needed), "mounted: \(mountPoints.subtracting(needed))")

        // The default profile relaxes nothing; the probes ran and passed before the agent.
        #expect((run.record["seccomp_relaxed"] as? [String] ?? []).isEmpty)
        // The credential reached the agent at run time only: it is in no layer of its image.
        let image = try #require(run.record["image"] as? String)
        let imageText = try ProcessRunner.check(["docker", "history", "--no-trunc", image])
            + ProcessRunner.check(["docker", "image", "inspect", image])
        #expect(!imageText.contains("sk-ant-test-not-a-real-key"))
        try expectCollected(run, repo: repo)
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    /// The probes prove the agent's own container (they run in it, before Claude Code is
    /// exec'd), and the network holder, which applied the firewall itself, kept only what
    /// its resolver and its reports need: the agent, meanwhile, sees neither the holder's
    /// folder nor a way to answer the probe handshake.
    @Test func probesRunInTheAgentsContainerAndTheHolderGaveUpItsCapabilities() throws {
        let repo = try TemporaryRepository()
        let model = try FakeModel(script: [
            .bash(#"""
            echo "HOST:$(cat /etc/hostname)"
            ls /patina/netguard >/dev/null 2>&1; echo "NETGUARD-VISIBLE:$?"
            ls /patina/firewall | tr '\n' ' ' | sed 's/^/FIREWALL-FILES:/'; echo
            timeout 2 sh -c 'echo go > /patina/handshake/go' 2>&1; echo "HANDSHAKE-ANSWER:$?"
            timeout 4 tail -f /dev/null; echo "WAITED:$?"
            """#),
            .text("Looked around."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let process = try patina.start(["yolo", "--agent-binary", TestEnvironment.claudeBinary.path,
                                        "--base-image", TestEnvironment.baseImage, "--json", "look around"])
        // While the agent waits, every process in the holder as the kernel sees it.
        let key = RunStore(home: repo.home, repositoryCommonDirectory: repo.path.appendingPathComponent(".git")).repositoryKey
        func running(_ role: String) -> String {
            (try? ProcessRunner.check(["docker", "ps", "--filter", "label=patina.repo=\(key)", "--filter", "label=patina.role=\(role)",
                                       "--format", "{{.Names}}"])) ?? ""
        }
        var holderProcesses = ""
        while process.isRunning && holderProcesses.isEmpty {
            let holders = running("network")
            let agents = running("agent")
            if let holder = holders.split(separator: "\n").first, !agents.isEmpty {
                holderProcesses = (try? ProcessRunner.check(["docker", "exec", String(holder), "sh", "-c",
                    #"for p in /proc/[0-9]*; do echo "$(cat $p/comm) $(awk '/^CapBnd:/ { print $2 }' $p/status)"; done"#])) ?? ""
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)

        let out = markers(in: commandOutputs(model))
        // The probe report names the container it ran in: the agent's own.
        let home = repo.store
        let probes = try #require(FileManager.default.enumerator(at: home, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }.first { $0.lastPathComponent == "probes.txt" })
        let report = try String(contentsOf: probes, encoding: .utf8)
        let host = try #require(out["HOST"])
        #expect(report.contains("INFO container \(host)\n"), "probes ran elsewhere: \(report.prefix(200)) vs \(host)")
        #expect(!report.contains("FAIL"), "\(report)")
        #expect(out["NETGUARD-VISIBLE"] == "2", "the holder's folder is visible: \(out)")
        #expect(out["FIREWALL-FILES"] == "selftest.sh", "\(out)")
        #expect(out["HANDSHAKE-ANSWER"] != "0" && out["WAITED"] != nil, "\(out)")

        // The resolver keeps NET_ADMIN (its sets) and NET_BIND_SERVICE (port 53); the holder's
        // own loop NET_ADMIN only; NET_RAW and SETPCAP, which applying needed, are gone.
        var bounding: [String: String] = [:]
        for line in holderProcesses.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { bounding[String(parts[0]), default: String(parts[1])] = String(parts[1]) }
        }
        #expect(bounding["dnsmasq"] == "0000000000001400", "\(holderProcesses)")
        let loop = holderProcesses.split(separator: "\n").filter { $0.hasPrefix("bash ") }
        #expect(loop == ["bash 0000000000001000"], "\(holderProcesses)")
    }

    /// Denied calls and their x86_64 numbers, with arguments that make most of them
    /// succeed for an unprivileged process when nothing filters them.
    static let deniedSyscallTable: [(name: String, perlArguments: String)] = [
        ("ptrace", "101, 0, 0, 0, 0"),                      // PTRACE_TRACEME
        ("process_vm_readv", "310, $$, 0, 0, 0, 0, 0"),     // nothing to read from itself
        ("io_uring_setup", "425, 1, $params"),
        ("userfaultfd", "323, 1"),                          // UFFD_USER_MODE_ONLY
        ("keyctl", "250, 0, -3, 0"),                        // the session keyring's id
        ("add_key", "248, \"user\", \"patina\", \"x\", 1, -3"),
        ("bpf", "321, 0, $params, 120"),
        ("perf_event_open", "298, $params, 0, -1, -1, 0"),
        ("unshare", "272, 0x10000000"),                     // CLONE_NEWUSER
        ("setns", "308, 0, 0"),
        ("personality", "135, 0x0040000"),                  // ADDR_NO_RANDOMIZE
        ("mount", "165, \"none\", \"/mnt\", \"tmpfs\", 0, 0"),
        ("fsopen", "430, \"tmpfs\", 0"),
        ("open_by_handle_at", "304, 0, $params, 0"),
        ("kexec_load", "246, 0, 0, 0, 0"),
        ("finit_module", "313, 0, \"\", 0"),
    ]

    static var deniedSyscalls: [String] {
        #if arch(x86_64)
        deniedSyscallTable.map(\.name)
        #else
        []  // the numbers above are x86_64's; the libseccomp unit tests cover every architecture
        #endif
    }

    static var deniedSyscallAttempts: String {
        let calls = deniedSyscallTable.map { "[\"\($0.name)\", \($0.perlArguments)]" }.joined(separator: ", ")
        return #"perl -e 'my $params = "\0" x 128; for my $c (\#(calls)) { my ($name, @args) = @$c; my $r = syscall($args[0], @args[1 .. $#args]); printf "SYSCALL-%s:%s\n", $name, $r == -1 ? $! + 0 : "succeeded"; }'"#
    }

    @Test func nothingPlantedInGitRunsOnTheHostAndMainStaysPut() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let metadataBefore = try hostGitMetadata(repo)
        // Where a planted command would leave a trace on the host: a path in the
        // host's /tmp (the container has its own tmpfs there) and one in this
        // test's directory, which is not mounted into the sandbox at all.
        let hostMarker = "/tmp/patina-pwned-\(UUID().uuidString)"
        let testMarker = repo.root.appendingPathComponent("pwned").path
        defer { try? FileManager.default.removeItem(atPath: hostMarker) }
        let pwn = #"echo "planted $0 ran" >> \#(hostMarker); echo planted >> \#(testMarker); true"#

        let model = try FakeModel(script: [
            // Hooks, fsmonitor, sshCommand, a filter driver, and more, in the only git directory it can see.
            .bash(#"""
            pwn='\#(pwn)'
            echo "GITDIR:$(git rev-parse --absolute-git-dir)"
            for h in post-checkout pre-commit post-commit post-merge post-rewrite reference-transaction pre-auto-gc post-index-change pre-push; do
              printf '#!/bin/sh\n%s\n' "$pwn" > /patina/git/hooks/$h && chmod +x /patina/git/hooks/$h
            done
            git config core.hooksPath /patina/git/hooks
            git config core.fsmonitor "$pwn"
            git config core.sshCommand "$pwn"
            git config core.pager "$pwn; cat"
            git config core.editor "$pwn"
            git config diff.external "$pwn"
            git config credential.helper "!$pwn"
            git config core.alternateRefsCommand "$pwn"
            git config uploadpack.packObjectsHook "$pwn"
            git config filter.pwn.clean "$pwn; cat"
            git config filter.pwn.smudge "$pwn; cat"
            git config filter.pwn.required true
            printf '* filter=pwn diff=pwn\n' > .gitattributes
            echo "PLANTED:$?"
            """#),
            // The plants are live: they run inside the sandbox, where they harm nothing.
            .bash(#"""
            echo work > work.txt && git add -A && git commit -q -m 'agent work'; echo "COMMIT:$?"
            git checkout -q -b side && git checkout -q -; echo "CHECKOUT:$?"
            git status --short >/dev/null; git ls-remote ssh://example.invalid/r >/dev/null 2>&1
            echo "SANDBOX-PLANTS-RAN:$(grep -c planted \#(hostMarker) 2>/dev/null)"
            rm -f \#(hostMarker)
            """#),
            // Move main, and reach for the host's git directory every way it can.
            .bash(#"""
            git branch -f main HEAD; echo "BRANCH-MAIN:$?"
            git update-ref refs/heads/main HEAD; echo "UPDATE-REF-MAIN:$?"
            echo "AGENT-MAIN:$(git rev-parse main)"
            echo 'gitdir: /tmp' > /workspace/.git 2>&1; echo "GITFILE-WRITE:$?"
            rm -f /workspace/.git 2>&1; echo "GITFILE-REMOVE:$?"
            mv /workspace/.git /workspace/gitfile-moved 2>&1; echo "GITFILE-MOVE:$?"
            touch /patina/host-objects/planted 2>&1; echo "HOST-OBJECTS-WRITE:$?"
            echo /tmp > /patina/host-objects/info/alternates 2>&1; echo "HOST-ALTERNATES-WRITE:$?"
            mkdir /patina/host-objects/../hooks 2>&1; echo "PATINA-WRITE:$?"
            obj=$(find /patina/host-objects -type f | head -1)
            chmod u+w "$obj" 2>&1; echo "HOST-OBJECT-CHMOD:$?"
            ln "$obj" /workspace/hardlink 2>&1; echo "HOST-OBJECT-HARDLINK:$?"
            echo "MOUNT-SOURCES:$(awk '{ print $4 "@" $5 "@" $6 }' /proc/self/mountinfo | tr '\n' ' ')"
            """#),
            // A setuid shell left in the worktree, for the host to pick up.
            .bash(#"cp /bin/bash rootshell && chmod 6755 rootshell; echo "SETUID-PLANT:$?"; stat -c 'MODE:%a' rootshell"#),
            .text("Planted what I could."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("plant hooks"))
        #expect(run.status == "succeeded", "\(run.record) / \(run.output.stderr.suffix(800))")

        let results = commandOutputs(model)
        let out = markers(in: results)
        let transcript = results.joined(separator: "\n---\n")
        #expect(out["GITDIR"] == "/patina/git", "\(transcript)")
        #expect(out["PLANTED"] == "0")
        // The plants are real: git in the sandbox ran them (so their absence on the host means something).
        #expect(Int(out["SANDBOX-PLANTS-RAN"] ?? "") ?? 0 >= 3, "\(transcript)")
        #expect(out["COMMIT"] == "0")
        // It moved main in its own git directory; the host's main is another matter.
        #expect(out["UPDATE-REF-MAIN"] == "0")
        #expect(out["AGENT-MAIN"] != main)
        for name in ["GITFILE-WRITE", "GITFILE-REMOVE", "GITFILE-MOVE", "HOST-OBJECTS-WRITE", "HOST-ALTERNATES-WRITE",
                     "PATINA-WRITE", "HOST-OBJECT-CHMOD", "HOST-OBJECT-HARDLINK"] {
            let status = out[name]
            #expect(status != nil && status != "0", "\(name) succeeded or did not run: \(transcript)")
        }
        // Nothing of the host's .git is mounted: its objects arrive as the run's own
        // read-only snapshot (hard links made at the start of the run).
        let mounts = (out["MOUNT-SOURCES"] ?? "").split(separator: " ")
        let fromHostGit = mounts.filter { $0.split(separator: "@").first?.contains("/.git") == true }
        #expect(fromHostGit.isEmpty, "\(fromHostGit)")
        let objects = mounts.filter { $0.contains("@/patina/host-objects@") }
        #expect(objects.count == 1 && objects.allSatisfy {
            $0.contains("/sandbox/host-objects@/patina/host-objects@ro")
        }, "\(objects)")
        // The profile refuses setuid and setgid modes: the shell stays a plain file.
        #expect(out["SETUID-PLANT"] != nil && out["SETUID-PLANT"] != "0" && out["MODE"] == "755", "\(transcript)")

        // No planted command ran on the host, during the run or collection.
        expectNoMarker(hostMarker, testMarker)
        // Nor in later patina commands.
        #expect(try patina.run(["runs"]).status == 0)
        #expect(try patina.run(["runs", "--json"]).status == 0)
        #expect(try patina.run(["show", run.id]).status == 0)
        #expect(try patina.run(["show", run.id, "--json"]).status == 0)
        expectNoMarker(hostMarker, testMarker)

        // The host's hooks, config and refs are byte for byte what they were.
        #expect(try hostGitMetadata(repo) == metadataBefore)
        #expect(try repo.git("rev-parse", "main") == main)
        #expect(try repo.git("for-each-ref", "--format=%(refname)", "refs/heads/").split(separator: "\n").sorted()
                == ["refs/heads/main", "refs/heads/\(run.branch)"])

        // The agent's commit and its leftovers are collected: the branch holds them.
        #expect(try repo.git("log", "--format=%s", run.branch).contains("agent work"))
        #expect(try repo.git("show", "\(run.branch):work.txt") == "work")
        #expect(try repo.git("show", "\(run.branch):.gitattributes") == "* filter=pwn diff=pwn")
        // The setuid shell lands as a plain file: not setuid, not setgid, on the host.
        let rootshell = run.worktree.appendingPathComponent("rootshell").path
        let attributes = try FileManager.default.attributesOfItem(atPath: rootshell)
        let mode = (attributes[.posixPermissions] as? Int) ?? 0
        #expect(mode & 0o6000 == 0, "rootshell on the host has mode \(String(mode, radix: 8))")
        #expect(try repo.git("ls-tree", run.branch, "rootshell").hasPrefix("100755 blob"))
        // The private git directory is gone once collected.
        #expect(!FileManager.default.fileExists(atPath: run.runDir.appendingPathComponent("sandbox/git").path))

        try expectCollected(run, repo: repo)
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
        // Even the host's own git, used afterwards in the run's worktree, runs nothing planted.
        expectNoMarker(hostMarker, testMarker)
    }

    @Test func collectionFollowsNoLinkOutOfTheSandbox() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let fm = FileManager.default
        // Host files the agent knows the paths of but must never get at, nor change.
        let secret = "HOST-SECRET-\(UUID().uuidString)"
        let secretFile = repo.root.appendingPathComponent("host-secret.txt")
        try Data("\(secret)\n".utf8).write(to: secretFile)
        let victim = repo.root.appendingPathComponent("victim")
        try fm.createDirectory(at: victim, withIntermediateDirectories: true)
        try Data("keep me\n".utf8).write(to: victim.appendingPathComponent("canary"))
        // Someone else's Claude Code transcripts, where a user keeps them.
        let hostClaude = repo.root.appendingPathComponent("host-claude")
        let hostTranscript = hostClaude.appendingPathComponent("projects/-home-user-project/0000-host-session.jsonl")
        try fm.createDirectory(at: hostTranscript.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{\"type\":\"user\",\"message\":\"\(secret)\"}\n".utf8).write(to: hostTranscript)
        if getuid() == 0 {
            for url in [victim, victim.appendingPathComponent("canary"), secretFile] { _ = lchown(url.path, 4242, 4242) }
        }

        let model = try FakeModel(script: [
            .bash(#"""
            ln -s \#(secretFile.path) secret-link; echo "WORKTREE-LINK:$?"
            ln -s \#(victim.path) victim-link; echo "WORKTREE-DIR-LINK:$?"
            ln -s \#(victim.path) /patina/git/hooks/victim; ln -s \#(victim.path) /patina/git/info/victim; echo "GITDIR-LINKS:$?"
            ln -s \#(victim.path) "$HOME/victim"; echo "HOME-LINK:$?"
            mv "$HOME/.claude" "$HOME/.claude-moved" && ln -s \#(hostClaude.path) "$HOME/.claude"; echo "CLAUDE-DIR-LINK:$?"
            cat secret-link 2>&1; echo "READ-SECRET:$?"
            """#),
            .text("Links planted."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("plant links"))
        let out = markers(in: commandOutputs(model))
        #expect(out["WORKTREE-LINK"] == "0" && out["CLAUDE-DIR-LINK"] == "0", "\(commandOutputs(model))")
        // The host file is not readable from inside.
        #expect(out["READ-SECRET"] != "0")
        #expect(run.status == "succeeded", "\(run.record)")
        expectProbesPassed(run)

        // The links are collected as links: their text, never what they point to.
        #expect(try repo.git("cat-file", "-p", "\(run.branch):secret-link") == secretFile.path)
        #expect(try repo.git("ls-tree", run.branch, "secret-link").hasPrefix("120000 blob"))
        #expect(try repo.gitResult(["grep", "-q", secret, run.branch]).status != 0, "the host secret is on the branch")
        // Handing the sandbox back (chown, removal of the private git directory) changed nothing outside it.
        #expect(fm.fileExists(atPath: victim.appendingPathComponent("canary").path))
        #expect(fm.fileExists(atPath: hostTranscript.path))
        if getuid() == 0 {
            for url in [victim, victim.appendingPathComponent("canary"), secretFile] {
                let owner = (try fm.attributesOfItem(atPath: url.path)[.ownerAccountID] as? NSNumber)?.intValue
                #expect(owner == 4242, "\(url.path) changed owner to \(owner ?? -1)")
            }
        }
        // Nothing of the host's Claude Code transcripts lands in the run directory.
        let transcript = run.runDir.appendingPathComponent("transcript.jsonl")
        #expect((try? fm.destinationOfSymbolicLink(atPath: transcript.path)) == nil, "transcript.jsonl is a link")
        #expect(!((try? allText(under: run.runDir)) ?? "").contains(secret), "a host file was copied into the run directory")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    /// As root, the agent works through an idmapped view of its worktree: its uid sees root's
    /// files as its own, what it creates is root's on the host, and nothing it does can leave
    /// a setuid or setgid file there (the profile refuses those modes; the probe checks it).
    @Test(.enabled(if: getuid() == 0, "the idmapped view is how patina running as root lends the worktree"))
    func theWorktreeStaysRootsAndNothingSetuidReachesTheHost() throws {
        let repo = try TemporaryRepository()
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash(#"""
            echo "OWNER-SEEN:$(stat -c %u:%g README.md)"
            echo more >> README.md; echo "EDIT:$?"
            mkdir -p made/deep && echo new > made/deep/file; echo "CREATE:$?"
            cp /bin/true planted-suid; chmod 4755 planted-suid 2>&1; echo "CHMOD-SUID:$?"
            chmod g+s planted-suid 2>&1; echo "CHMOD-SGID:$?"
            chmod 2775 made 2>&1; echo "CHMOD-SGID-DIR:$?"
            install -m 4755 /bin/true installed-suid 2>&1; echo "INSTALL-SUID:$?"
            perl -e 'use Fcntl; sysopen(my $f, "opened-suid", O_WRONLY|O_CREAT|O_EXCL, 04755) or exit 1' 2>&1; echo "OPEN-SUID:$?"
            chmod 0755 planted-suid; echo "CHMOD-PLAIN:$?"
            echo "SETUID-IN-WORKSPACE:$(find . -perm /6000 | wc -l)"
            git add -A && git commit -qm "the agent's files" && echo "COMMIT:0"
            """#),
            .text("Files made."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("make files"))
        let transcript = commandOutputs(model).joined(separator: "\n---\n")
        let out = markers(in: commandOutputs(model))
        #expect(run.status == "succeeded", "\(run.record)")
        expectProbesPassed(run)
        #expect((run.file("probes.txt") ?? "").contains("PASS no-setuid "))
        // Inside, the files are the agent's: it edits, creates, commits.
        #expect(out["OWNER-SEEN"] == "1000:1000", "\(transcript)")
        for name in ["EDIT", "CREATE", "CHMOD-PLAIN", "COMMIT"] { #expect(out[name] == "0", "\(name): \(transcript)") }
        // Every way to a setuid or setgid file is refused.
        for name in ["CHMOD-SUID", "CHMOD-SGID", "CHMOD-SGID-DIR", "INSTALL-SUID", "OPEN-SUID"] {
            #expect(out[name] != nil && out[name] != "0", "\(name): \(transcript)")
        }
        #expect(out["SETUID-IN-WORKSPACE"] == "0", "\(transcript)")
        #expect(try repo.git("show", "\(run.branch):made/deep/file") == "new")

        // On the host: every file of the worktree is root's (none changed owner, what the agent
        // made is root's), none is setuid or setgid, and the view is gone.
        let notRoots = try ProcessRunner.check(["find", run.worktree.path, "(", "!", "-user", "0", "-o", "!", "-group", "0", ")", "-print"])
        #expect(notRoots == "", "not root's: \(notRoots)")
        let setuid = try ProcessRunner.check(["find", run.worktree.path, "-perm", "/6000", "-print"])
        #expect(setuid == "", "setuid or setgid on the host: \(setuid)")
        let views = run.runDir.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("views")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: views.path)) ?? []).isEmpty)
        #expect(MountTable.points(under: views).isEmpty, "a view is still mounted: \(MountTable.points(under: views))")
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    @Test func forkFloodMemoryAndTmpStayWithinTheLimits() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/config.json": #"{"limits": {"memory": "512m", "pids": 128, "tmp": "64m"}}"#,
        ])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash(#"""
            echo "PIDS-MAX:$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
            echo "MEMORY-MAX:$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
            echo "TMP-SIZE-KB:$(df -k --output=size /tmp | tail -1 | tr -d ' ')"
            """#),
            .bash(#"""
            head -c 2000M /dev/zero | tail > /dev/null; echo "MEMORY-HOG:${PIPESTATUS[1]}"
            echo "OOM-KILLS:$(awk '$1 == "oom_kill" { print $2 }' /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null || awk '$1 == "oom_kill" { print $2 }' /sys/fs/cgroup/memory.events)"
            """#),
            // Claude Code keeps a command's output in /tmp: report only once /tmp has room again.
            .bash(#"""
            message=$(dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1); status=$?
            kb=$(du -k /tmp/fill | cut -f1)
            rm -f /tmp/fill; echo "TMP-FREED:$?"
            echo "TMP-FILL:$status"; echo "TMP-FILLED-KB:$kb"
            case $message in *"No space left"*) echo "TMP-FULL:yes";; esac
            """#),
            .bash(#"echo ok > survived.txt && git add survived.txt && git commit -q -m survived; echo "COMMIT:$?""#),
            // Last, a fork flood in its own process group. dash gives up at the first failed
            // fork (bash would retry for 15 s); then only builtins run until the flood is
            // killed. Its count goes to the worktree, so it is collected whatever happens:
            // the agent's own process shares the pids limit and may die with the flood.
            .bash(#"""
            setsid sh -c 'i=0; while [ $i -lt 2000 ]; do sleep 120 & i=$((i + 1)); echo $i > /workspace/flood.count; done; echo FLOOD-LOOP-FINISHED' >/dev/null 2>/tmp/flood.err &
            pid=$!
            wait $pid; echo "FLOOD-EXIT:$?"
            kill -9 -- -$pid; echo "FLOOD-KILLED:$?"
            read -r n < /workspace/flood.count; echo "FLOOD-STARTED:$n"
            refused=0; while read -r line; do case $line in *fork*) refused=$((refused + 1));; esac; done < /tmp/flood.err
            echo "FORK-REFUSED:$refused"
            echo "AFTER-FLOOD:$(echo alive)"
            """#),
            // The command after the flood runs: Claude Code survived it.
            .bash(#"echo "NEXT-CALL:$(ulimit -u)""#),
            .text("Still here."),
        ])
        let started = Date()
        let run = try FinishedRun(PatinaRunner(repository: repo, baseURL: model.baseURL).yolo("exhaust the sandbox"))
        #expect(Date().timeIntervalSince(started) < 300)
        let results = commandOutputs(model)
        let out = markers(in: results)
        let transcript = results.joined(separator: "\n---\n")

        // The configured limits are the container's.
        #expect(out["PIDS-MAX"] == "128", "\(transcript)")
        #expect(out["MEMORY-MAX"] == String(512 * 1024 * 1024))
        #expect(out["TMP-SIZE-KB"] == String(64 * 1024))
        // The memory hog is killed by the memory limit (SIGKILL: 137), not the agent.
        #expect(out["MEMORY-HOG"] == "137", "\(transcript)")
        #expect(Int(out["OOM-KILLS"] ?? "") ?? 0 >= 1)
        // /tmp fills up at its size.
        #expect(out["TMP-FILL"] != "0")
        #expect(out["TMP-FULL"] == "yes")
        #expect(out["TMP-FREED"] == "0")
        #expect(Int(out["TMP-FILLED-KB"] ?? "") ?? .max <= 64 * 1024, "\(transcript)")
        #expect(out["COMMIT"] == "0")

        // The fork flood stops at the agent's command limit, below the container's pids
        // limit (without them the loop reaches 2000): 96 of 128 for commands, the rest is
        // Claude Code's, which survives, runs the next command and finishes the run.
        let flood = Int(try repo.git("show", "\(run.branch):flood.count")) ?? .max
        #expect(flood > 0 && flood < 96, "the flood started \(flood) processes")
        #expect(run.status == "succeeded", "\(run.record) / \(run.output.stderr.suffix(800))")
        #expect(out["FLOOD-STARTED"] == String(flood))
        #expect(out["FLOOD-EXIT"] != "0")
        #expect(Int(out["FORK-REFUSED"] ?? "") ?? 0 >= 1)
        #expect(out["AFTER-FLOOD"] == "alive", "\(transcript)")
        #expect(out["NEXT-CALL"] == "96", "\(transcript)")
        #expect(run.hasInitAndResult)
        #expect(run.record["leftovers_committed"] as? Bool == true)
        #expect(try repo.git("show", "\(run.branch):survived.txt") == "ok")
        #expect(try repo.git("rev-parse", run.branch) == run.head)
        #expect(run.file("transcript.jsonl") != nil && run.file("steps.log") != nil)
        expectProbesPassed(run)
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }

    @Test func relaxingSeccompIsRecordedInTheRunRecord() throws {
        let repo = try TemporaryRepository(files: [
            "README.md": "# demo\n",
            ".patina/config.json": #"{"seccomp": {"relax": ["ptrace"]}}"#,
        ])
        let main = try repo.git("rev-parse", "main")
        let model = try FakeModel(script: [
            .bash(#"awk '/^(Seccomp|NoNewPrivs|CapEff):/ { print "STATUS-" $1 $2 }' /proc/self/status"#),
            .bash(HardeningEndToEndTests.deniedSyscallAttempts),
            .text("Checked."),
        ])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let run = try FinishedRun(patina.yolo("debug something"))
        #expect(run.status == "succeeded", "\(run.record) / \(run.output.stderr.suffix(800))")
        #expect(run.record["seccomp_relaxed"] as? [String] == ["ptrace"], "\(run.record)")
        expectProbesPassed(run)

        // The profile the agent ran under allows ptrace, and says why; everything else still holds.
        let profile = try #require(run.file("config/seccomp.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(profile.utf8)) as? [String: Any])
        let rules = json["syscalls"] as? [[String: Any]] ?? []
        #expect(rules.contains { ($0["names"] as? [String] ?? []).contains("ptrace") && $0["action"] as? String == "SCMP_ACT_ALLOW" })
        #expect(profile.contains("relaxed by the repository"))
        let out = markers(in: commandOutputs(model))
        #expect(out["STATUS-Seccomp"] == "2")
        #expect(out["STATUS-NoNewPrivs"] == "1")
        #expect(out["STATUS-CapEff"] == "0000000000000000")
        // ptrace now works in the sandbox; every other denied call is still refused.
        for name in Self.deniedSyscalls {
            #expect(out["SYSCALL-\(name)"] == (name == "ptrace" ? "succeeded" : "1"), "\(name): \(out["SYSCALL-\(name)"] ?? "not run")")
        }

        // A reviewer sees it.
        let shown = try patina.run(["show", run.id])
        #expect(shown.stdout.contains("relaxed for ptrace"), "\(shown.stdout)")
        let listed = try PatinaRunner.record(try patina.run(["show", run.id, "--json"]))
        #expect(listed["seccomp_relaxed"] as? [String] == ["ptrace"])
        try expectUserRepositoryUntouched(repo, mainBefore: main, run: run)
    }
}

/// The output of every command the agent ran, in order, from the whole history each
/// request carries (the newest message of a request is not always the tool result).
func commandOutputs(_ model: FakeModel) -> [String] {
    var seen: Set<String> = []
    var outputs: [String] = []
    for request in model.requests() where request["kind"] as? String == "main" {
        for case let result as [String: Any] in request["tool_results"] as? [Any] ?? [] {
            let id = result["tool_use_id"] as? String ?? UUID().uuidString
            if seen.insert(id).inserted { outputs.append(result["content"] as? String ?? "") }
        }
    }
    return outputs
}

/// `NAME:value` lines printed by the scripted commands, from every tool result
/// (a later line wins). A name starts with a capital letter: letters, digits, dashes, underscores.
func markers(in results: [String]) -> [String: String] {
    var found: [String: String] = [:]
    for result in results {
        for line in result.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon]
            guard let first = name.first, first.isASCII, first.isUppercase,
                  name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { continue }
            found[String(name)] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }
    return found
}

/// The host's hooks, config and refs, byte for byte, leaving out the session tags
/// patina itself adds for a run.
private func hostGitMetadata(_ repo: TemporaryRepository) throws -> [String: Data] {
    try repo.gitMetadataSnapshot().filter { !$0.key.hasPrefix("refs/session-") && !$0.key.hasPrefix("refs/tags/session-") }
}

/// Neither marker exists: no planted command ran on the host.
private func expectNoMarker(_ paths: String..., sourceLocation: SourceLocation = #_sourceLocation) {
    for path in paths {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        #expect(!FileManager.default.fileExists(atPath: path), "a planted command ran on the host: \(path): \(text)",
                sourceLocation: sourceLocation)
    }
}

/// The run ended with its branch and logs collected.
private func expectCollected(_ run: FinishedRun, repo: TemporaryRepository, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(try repo.git("rev-parse", run.branch) == run.head, sourceLocation: sourceLocation)
    #expect(run.hasInitAndResult, "session.jsonl lacks init or result", sourceLocation: sourceLocation)
    #expect(run.file("transcript.jsonl") != nil, "no transcript", sourceLocation: sourceLocation)
    #expect(run.file("steps.log")?.contains("collect") == true, sourceLocation: sourceLocation)
    #expect(run.file("run.json") != nil, sourceLocation: sourceLocation)
    expectProbesPassed(run, sourceLocation: sourceLocation)
}

/// The hardening probes ran in a container started like the agent's, and passed.
private func expectProbesPassed(_ run: FinishedRun, sourceLocation: SourceLocation = #_sourceLocation) {
    let probes = run.file("probes.txt") ?? ""
    for check in ["seccomp", "no-new-privs", "cap-effective", "cap-bounding", "non-root", "denied-call", "read-only-root", "tmp-exec", "docker-socket", "host-objects"] {
        #expect(probes.contains("PASS \(check) "), "probe \(check) did not pass: \(probes)", sourceLocation: sourceLocation)
    }
    #expect(!probes.contains("FAIL"), "\(probes)", sourceLocation: sourceLocation)
}
