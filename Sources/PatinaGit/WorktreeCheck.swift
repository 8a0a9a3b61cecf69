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
    static func verify(_ worktree: URL) throws(GitError) -> [String] {
        let root = FileSystem.canonical(worktree.path)
        var unreadable = [String]()
        var pending: [(directory: UntrustedDirectory, path: String)] = [(try UntrustedDirectory.open(worktree), "")]
        while let (directory, path) = pending.popLast() {
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
                    unreadable.append(relative + "/")
                    continue
                }
                if let child = try directory.directory(name) {
                    pending.append((child, relative))
                }
            }
        }
        return unreadable.sorted()
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
