import Foundation

/// What must hold in the worktree before libgit2 reads it. libgit2 1.5 opens every
/// `.gitignore` and `.gitattributes` it meets with a plain `open`, following symbolic
/// links: a FIFO there (or a link to one, or to `/proc/self/fd/0`) blocks collection
/// forever, a link out of the worktree reads a host file. Git itself stopped following
/// such links in 2.32. (`.gitmodules` is kept out of libgit2's reach differently: see
/// `Collector.commitLeftovers`.)
enum WorktreeCheck {
    static let ruleFiles: Set<String> = [".gitignore", ".gitattributes"]

    /// Throws `unsafeWorktree` for a rule file that is neither a regular file, a directory
    /// (which libgit2 ignores), nor a symbolic link to a regular file inside the worktree.
    /// Returns the directories patina cannot list ("dir/"): libgit2 skips them silently, so
    /// their tracked files would look deleted.
    ///
    /// With `paths` (relative, as bytes; a directory stands for everything under it), only
    /// where libgit2 will read when it is given those paths: the directories on the way to
    /// each, and all of each directory among them.
    ///
    /// Directories deeper than `CollectionLimits.maximumDepth`, or whose path is longer than
    /// `CollectionLimits.maximumPathBytes`, are not entered: they come back in `tooDeep`
    /// ("dir/"), for the caller to keep libgit2 out of them (it refuses to walk past 100
    /// levels and fails the whole stage). The walk holds one descriptor per level it is
    /// in, never one per directory still to visit.
    static func verify(_ worktree: URL, only paths: [[UInt8]]? = nil) throws(GitError) -> Findings {
        let root = FileSystem.canonical(worktree.path)
        let top = try UntrustedDirectory.open(worktree)
        var findings = Findings()
        guard let paths else {
            try walk(top, path: "", root: root, findings: &findings)
            findings.unreadable.sort()
            return findings
        }
        var listed: [String: [(name: String, kind: UntrustedDirectory.Kind)]] = [:]
        func entries(_ directory: UntrustedDirectory, _ path: String) throws(GitError) -> [(name: String, kind: UntrustedDirectory.Kind)] {
            if let known = listed[path] { return known }
            let found = try directory.entries()
            // A nested repository: libgit2 does not look inside.
            let nested = !path.isEmpty && found.contains { $0.name == ".git" }
            for (name, kind) in found where !nested && ruleFiles.contains(name) {
                try verifyRuleFile(path.isEmpty ? name : path + "/" + name, kind: kind, root: root)
            }
            listed[path] = found
            return found
        }
        for path in paths {
            var directory = top, relative = ""
            let components = path.split(separator: UInt8(ascii: "/"))
            for (position, component) in components.enumerated() {
                let name = String(decoding: component, as: UTF8.self)
                let here = try entries(directory, relative)
                guard relative.isEmpty || !here.contains(where: { $0.name == ".git" }),
                      Array(name.utf8) == Array(component),
                      here.contains(where: { $0.name == name && $0.kind == .directory }) else { break }
                let child = relative.isEmpty ? name : relative + "/" + name
                guard directory.canEnter(name) else {
                    findings.unreadable.append(child + "/")
                    break
                }
                guard !isTooDeep(child) else {
                    findings.tooDeep.append(child + "/")
                    break
                }
                guard let next = try directory.directory(name) else { break }
                if position == components.count - 1 {
                    try walk(next, path: child, root: root, findings: &findings)
                } else {
                    directory = next
                    relative = child
                }
            }
            _ = try entries(directory, relative)
        }
        findings.unreadable = Array(Set(findings.unreadable)).sorted()
        findings.tooDeep = Array(Set(findings.tooDeep)).sorted()
        return findings
    }

    struct Findings {
        /// Directories patina cannot list ("dir/").
        var unreadable: [String] = []
        /// Directories too deep, or with too long a path, for libgit2 to read ("dir/").
        var tooDeep: [String] = []
    }

    static func isTooDeep(_ relative: String) -> Bool {
        relative.utf8.count > CollectionLimits.maximumPathBytes
            || relative.utf8.lazy.filter { $0 == UInt8(ascii: "/") }.count + 1 > CollectionLimits.maximumDepth
    }

    /// Every directory under `start` (itself included), as libgit2 would read them. Depth
    /// first, each directory opened only when it is visited: what is pending is a name in
    /// its parent, and the parents of pending names are the open directories (one per level).
    private static func walk(_ start: UntrustedDirectory, path: String, root: String, findings: inout Findings) throws(GitError) {
        var pending: [(parent: UntrustedDirectory?, name: String, path: String)] = [(nil, "", path)]
        while let (parent, name, path) = pending.popLast() {
            let opened: UntrustedDirectory?
            if let parent { opened = try parent.directory(name) } else { opened = start }
            guard let directory = opened else { continue }
            let entries = try directory.entries()
            // A nested repository: libgit2 does not look inside.
            if !path.isEmpty, entries.contains(where: { $0.name == ".git" }) { continue }
            for (name, kind) in entries where name != ".git" {
                let relative = path.isEmpty ? name : path + "/" + name
                if ruleFiles.contains(name) {
                    try verifyRuleFile(relative, kind: kind, root: root)
                }
                guard kind == .directory else { continue }
                guard directory.canEnter(name) else {
                    findings.unreadable.append(relative + "/")
                    continue
                }
                guard !isTooDeep(relative) else {
                    findings.tooDeep.append(relative + "/")
                    continue
                }
                pending.append((directory, name, relative))
            }
        }
    }

    private static func verifyRuleFile(_ relative: String, kind: UntrustedDirectory.Kind, root: String) throws(GitError) {
        switch kind {
        case .regular, .directory:
            return
        case .symbolicLink:
            let target = FileSystem.canonical(root + "/" + relative)
            guard target.hasPrefix(root + "/"), FileSystem.isRegularFile(target) else {
                throw .unsafeWorktree("\(relative) is a symbolic link to \(target), not to a file in the worktree")
            }
        case .other:
            throw .unsafeWorktree("\(relative) is not a regular file (a FIFO, socket or device)")
        }
    }
}
