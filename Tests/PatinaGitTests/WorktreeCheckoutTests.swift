import Foundation
import PatinaGit
import Testing
import PatinaTestSupport

/// patina writes a run's worktree itself (`Repository.addWorktree`): it must hold exactly
/// what `git worktree add` writes, and its index must carry stat data git can use as is.
@Suite("Worktree checkout")
struct WorktreeCheckoutTests {
    enum Shape: String, CaseIterable, CustomTestStringConvertible {
        /// No attributes anywhere: blobs are written as they are.
        case plain
        /// .gitattributes with eol, text and ident rules: every blob through the filters.
        case attributes
        /// core.autocrlf = true and no attributes file.
        case autocrlf
        var testDescription: String { rawValue }
    }

    /// A repository with what a checkout has to get right: modes, links, odd names,
    /// names that sort around "/", a submodule, and (per shape) filters.
    func repository(_ shape: Shape) throws -> GitFixture {
        let fixture = try GitFixture()
        for i in 0..<2_500 { try fixture.write("file \(i)\n", to: "many/d\(i % 7)/f\(i).txt") }
        try fixture.write("#!/bin/sh\necho hi\n", to: "tool.sh")
        _ = try fixture.run(["chmod", "+x", fixture.url("repo/tool.sh").path])
        try fixture.write("a-b\n", to: "a-b/c")
        try fixture.write("a/b\n", to: "a/b")
        try fixture.write("a.b\n", to: "a.b")
        try fixture.write("line one\r\nline two\n", to: "mixed.txt")
        try fixture.write("$Id$\nident me\n", to: "kept.id")
        try fixture.write("tab\n", to: "odd\tname.txt")
        try fixture.write("new\nline\n", to: "new\nline.txt")
        try fixture.write("unicode\n", to: "ünï cödé.txt")
        // A name that is not UTF-8 (Latin-1 "é").
        let latin1 = Array(fixture.url("repo/latin1-").path.utf8CString.dropLast()) + [CChar(bitPattern: 0xE9), 0]
        let fd = open(latin1, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0 && write(fd, "latin\n", 6) == 6)
        close(fd)
        try Data([0x62, 0x69, 0x6e, 0x00, 0x61, 0x72, 0x79, 0x0d, 0x0a]).write(to: fixture.url("repo/data.bin"))
        try FileManager.default.createSymbolicLink(atPath: fixture.url("repo/link").path, withDestinationPath: "many/d1/f1.txt")
        try FileManager.default.createSymbolicLink(atPath: fixture.url("repo/dangling").path, withDestinationPath: "../nowhere")
        switch shape {
        case .plain: break
        case .attributes:
            try fixture.write("*.txt text eol=crlf\n*.id ident\n*.bin binary\n", to: ".gitattributes")
            try fixture.write("* -text\n", to: "many/d3/.gitattributes")
        case .autocrlf:
            try fixture.git("config", "core.autocrlf", "true")
        }
        try fixture.git("add", "-A")
        // A submodule: a gitlink entry (and .gitmodules), the directory left empty.
        try fixture.write("[submodule \"sub\"]\n\tpath = sub\n\turl = ./sub\n", to: ".gitmodules")
        try fixture.git("add", ".gitmodules")
        let head = try fixture.git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
        try fixture.git("update-index", "--add", "--cacheinfo", "160000,\(head),sub")
        try fixture.git("commit", "-q", "-m", "checkout shapes")
        return fixture
    }

    /// Every path under `root` (but .git): kind, permission bits, content or link target.
    /// Names are read as bytes (some are not UTF-8).
    func listing(_ root: URL) throws -> [String: String] {
        var result: [String: String] = [:]
        func walk(_ directory: [CChar], relative: String) throws {
            guard let stream = opendir(directory) else { throw GitFixtureError(description: "cannot list \(relative)") }
            defer { closedir(stream) }
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                if name == [0x2e] || name == [0x2e, 0x2e] || (relative.isEmpty && name == Array(".git".utf8)) { continue }
                let path = directory.dropLast() + [CChar(bitPattern: 0x2f)] + name.map { CChar(bitPattern: $0) } + [0]
                let key = relative + String(decoding: name, as: UTF8.self)
                var info = stat()
                #expect(lstat(Array(path), &info) == 0)
                let permissions = String(info.st_mode & 0o7777, radix: 8)
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    result[key] = "dir \(permissions)"
                    try walk(Array(path), relative: key + "/")
                case S_IFLNK:
                    var target = [CChar](repeating: 0, count: 4096)
                    let count = readlink(Array(path), &target, target.count)
                    result[key] = "link -> " + String(decoding: target.prefix(max(count, 0)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                default:
                    let fd = open(Array(path), O_RDONLY)
                    var content = [UInt8](repeating: 0, count: Int(info.st_size))
                    #expect(fd >= 0 && read(fd, &content, content.count) == content.count)
                    close(fd)
                    result[key] = "file \(permissions) " + content.map { String(format: "%02x", $0) }.joined()
                }
            }
        }
        try walk(Array(root.path.utf8CString), relative: "")
        return result
    }

    @Test(arguments: Shape.allCases)
    func writesWhatGitWorktreeAddWrites(_ shape: Shape) throws {
        let fixture = try repository(shape)
        let host = try Repository.discover(from: fixture.repo)
        let base = try host.resolveCommit("HEAD")
        try host.createBranch("patina/run", at: base)
        let ours = fixture.url("ours")
        try host.addWorktree(name: "ours", path: ours, branch: "patina/run")
        let theirs = fixture.url("theirs")
        try fixture.git("worktree", "add", "-q", "-b", "git-run", theirs.path, base.hex)

        let expected = try listing(theirs)
        let actual = try listing(ours)
        #expect(expected.count > 2_500)
        #expect(Set(actual.keys) == Set(expected.keys))
        for (path, value) in expected where actual[path] != value {
            Issue.record("\(shape): \(path): patina wrote \(actual[path] ?? "nothing"), git wrote \(value)")
        }
        // git sees the checkout clean, and its index the same entries as git's own.
        let git = { (arguments: [String]) throws -> String in
            try fixture.checked(["git", "-c", "safe.directory=*"] + arguments, in: ours, environment: fixture.environment)
        }
        #expect(try git(["status", "--porcelain", "--untracked-files=all"]) == "")
        #expect(try git(["ls-files", "--stage"]) == (try fixture.git("ls-files", "--stage", in: theirs)))
        try expectStatDataUsable(ours, index: try git(["ls-files", "--debug"]))
    }

    /// Each entry's recorded stat data is the file's own: git never needs to re-read it.
    func expectStatDataUsable(_ worktree: URL, index debug: String, owner: FileOwner? = nil) throws {
        var path = ""
        var checked = 0
        var fields: [String: String] = [:]
        func finish() {
            // Quoted names (odd bytes) are left out here; the submodule's directory has no stat data.
            var info = stat()
            guard !path.isEmpty, !path.hasPrefix("\""), lstat(worktree.appendingPathComponent(path).path, &info) == 0,
                  info.st_mode & S_IFMT != S_IFDIR else { return }
            #expect(fields["ctime"] == "\(info.st_ctim.tv_sec):\(info.st_ctim.tv_nsec)", "\(path)")
            #expect(fields["mtime"] == "\(info.st_mtim.tv_sec):\(info.st_mtim.tv_nsec)", "\(path)")
            #expect(fields["ino"] == "\(info.st_ino)", "\(path)")
            #expect(fields["size"] == "\(info.st_size)", "\(path)")
            #expect(fields["uid"] == "\(info.st_uid)", "\(path)")
            if let owner { #expect(info.st_uid == owner.uid && info.st_gid == owner.gid, "\(path)") }
            checked += 1
        }
        for line in debug.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") {
                finish()
                path = String(line)
                fields = [:]
                continue
            }
            // "  ctime: 1700000000:123456789", "  dev: 42\tino: 7", "  uid: 0\tgid: 0", "  size: 7\tflags: 0"
            for part in line.split(separator: "\t") {
                let pair = part.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if pair.count == 2 { fields[pair[0]] = pair[1] }
            }
        }
        finish()
        #expect(checked > 2_500)
    }

    /// The index keeps the tree cache read_tree built: git in the sandbox then writes only
    /// the trees a commit changes (without it, every tree of the repository, each one then
    /// imported at collection).
    @Test func theIndexKeepsAValidTreeCache() throws {
        let fixture = try repository(.attributes)
        let host = try Repository.discover(from: fixture.repo)
        let base = try host.resolveCommit("HEAD")
        try host.createBranch("patina/run", at: base)
        let ours = fixture.url("ours")
        try host.addWorktree(name: "ours", path: ours, branch: "patina/run")
        let index = try Data(contentsOf: host.worktreeGitDirectory(name: "ours").appendingPathComponent("index"))
        // The TREE extension's root entry: "", NUL, entry count (-1 when invalid), space,
        // subtree count, newline, the tree's id.
        let marker = try #require(index.range(of: Data("TREE".utf8)))
        let body = index[(marker.upperBound + 4)...]
        #expect(body.first == 0)
        let header = String(decoding: body.dropFirst().prefix { $0 != 0x0A }, as: UTF8.self)
        let count = try #require(Int(header.split(separator: " ").first ?? ""))
        #expect(count > 2_500, "root entry: \(header)")
        let id = body.dropFirst(1 + header.utf8.count + 1).prefix(20)
        let tree = try fixture.git("rev-parse", "HEAD^{tree}").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.map { String(format: "%02x", $0) }.joined() == tree, "\(header)")
    }

    @Test(.enabled(if: getuid() == 0, "needs root to hand files to another uid"))
    func handingTheWorktreeOverKeepsItsStatDataUsable() throws {
        // Where no idmapped view can be mounted, the run hands every file to the agent's
        // uid (and back): the index must follow, or git re-reads every file.
        let fixture = try repository(.attributes)
        let host = try Repository.discover(from: fixture.repo)
        let base = try host.resolveCommit("HEAD")
        try host.createBranch("patina/run", at: base)
        let ours = fixture.url("ours")
        let owner = FileOwner(uid: 1000, gid: 1000)
        try host.addWorktree(name: "ours", path: ours, branch: "patina/run")
        try host.handOverWorktree(name: "ours", worktree: ours, to: owner)
        let owners = try fixture.run(["find", ours.path, "!", "-user", "1000", "-o", "!", "-group", "1000"]).output
        #expect(owners == "", "not handed to the agent's uid: \(owners)")
        let debug = try fixture.checked(["git", "-c", "safe.directory=*", "ls-files", "--debug"], in: ours, environment: fixture.environment)
        try expectStatDataUsable(ours, index: debug, owner: owner)
        #expect(try fixture.checked(["git", "-c", "safe.directory=*", "status", "--porcelain"], in: ours, environment: fixture.environment) == "")
    }
}
