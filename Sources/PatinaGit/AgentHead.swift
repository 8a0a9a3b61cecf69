import CGit2
import Foundation

/// Reads the commit the agent's HEAD names from its git directory as plain files, never
/// as a repository: no config, no hooks, no alternates, no symbolic links followed.
enum AgentHead {
    static let maximumRefFileSize = 4096
    static let maximumPackedRefsSize = 64 << 20
    static let maximumSymbolicDepth = 5

    static func read(_ root: UntrustedDirectory) throws(GitError) -> ObjectID {
        guard let bytes = try root.readFile("HEAD", limit: maximumRefFileSize) else {
            throw .agentHeadUnreadable("HEAD is missing")
        }
        return try resolve(try line(bytes, in: "HEAD"), source: "HEAD", root: root, depth: 0)
    }

    private static func resolve(_ content: String, source: String, root: UntrustedDirectory, depth: Int) throws(GitError) -> ObjectID {
        guard content.hasPrefix("ref:") else {
            guard let id = ObjectID(hex: content) else {
                throw .agentHeadUnreadable("\(source) holds neither a branch nor a commit id")
            }
            return id
        }
        let name = String(content.dropFirst(4).drop { $0 == " " || $0 == "\t" })
        guard isAcceptableBranchReference(name) else {
            throw .unsafeSandboxGitDirectory("\(source) points to '\(name)', which is not a plain branch under refs/heads/")
        }
        guard depth < maximumSymbolicDepth else {
            throw .unsafeSandboxGitDirectory("\(source): more than \(maximumSymbolicDepth) symbolic references in a row")
        }
        if let loose = try readLooseReference(name, root: root) {
            return try resolve(loose, source: name, root: root, depth: depth + 1)
        }
        if let packed = try readPackedReference(name, root: root) {
            return packed
        }
        throw .agentHeadUnreadable("\(source) points to \(name), which does not exist")
    }

    private static func readLooseReference(_ name: String, root: UntrustedDirectory) throws(GitError) -> String? {
        let components = name.split(separator: "/").map(String.init)
        var directory = root
        for component in components.dropLast() {
            guard let next = try directory.directory(component) else { return nil }
            directory = next
        }
        guard let last = components.last,
              let bytes = try directory.readFile(last, limit: maximumRefFileSize) else { return nil }
        return try line(bytes, in: name)
    }

    private static func readPackedReference(_ name: String, root: UntrustedDirectory) throws(GitError) -> ObjectID? {
        guard let bytes = try root.readFile("packed-refs", limit: maximumPackedRefsSize) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard !line.hasPrefix("#"), !line.hasPrefix("^") else { continue }
            let fields = line.split(separator: " ", maxSplits: 1)
            guard fields.count == 2, fields[1].trimmingTrailingWhitespaceSubstring() == name else { continue }
            guard let id = ObjectID(hex: String(fields[0])) else {
                throw .agentHeadUnreadable("packed-refs has no valid commit id for \(name)")
            }
            return id
        }
        return nil
    }

    /// The single line of a ref file, without its line ending.
    private static func line(_ bytes: [UInt8], in name: String) throws(GitError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .unsafeSandboxGitDirectory("\(name) is not text")
        }
        let content = text.trimmingTrailingWhitespace()
        guard !content.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw .unsafeSandboxGitDirectory("\(name) holds more than one line")
        }
        return content
    }

    /// A branch reference collection agrees to follow: `refs/heads/...`, printable ASCII
    /// only, no component that is empty, starts or ends with a dot or ends with ".lock",
    /// none of git's forbidden characters, and valid for libgit2 too.
    static func isAcceptableBranchReference(_ name: String) -> Bool {
        guard name.hasPrefix("refs/heads/"), name.utf8.count <= 1024,
              !name.contains(".."), !name.contains("@{") else { return false }
        let forbidden: Set<UInt8> = Set("~^:?*[\\".utf8)
        guard name.utf8.allSatisfy({ (0x21...0x7e).contains($0) && !forbidden.contains($0) }) else { return false }
        for component in name.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty || component.hasPrefix(".") || component.hasSuffix(".")
                || component.hasSuffix(".lock") {
                return false
            }
        }
        Libgit2.initialize()
        var valid: Int32 = 0
        return git_reference_name_is_valid(&valid, name) == 0 && valid == 1
    }
}

extension Substring {
    func trimmingTrailingWhitespaceSubstring() -> Substring {
        var result = self
        while let last = result.last, last.isWhitespace { result.removeLast() }
        return result
    }
}
