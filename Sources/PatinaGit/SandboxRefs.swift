import Foundation

/// The references in the agent's git directory (its view of the repository), read as
/// plain names: loose files under refs/, packed-refs lines, and where HEAD points. Nothing
/// is resolved and no symbolic link is followed; the agent's refs never reach the host
/// (only its HEAD's commits are imported), but one outside the run's branch says the
/// agent made branches or tags, or moved where HEAD points, which a reviewer should know.
public enum SandboxRefs {
    static let maximumNames = 200
    static let maximumDepth = 10

    /// Refs other than `refs/heads/<branch>`, sorted (at most 200), and "HEAD -> X" when
    /// HEAD points elsewhere than the branch. Empty when the directory cannot be read.
    public static func outside(branch: String, privateGitDirectory: URL) -> [String] {
        guard let root = try? UntrustedDirectory.open(privateGitDirectory) else { return [] }
        var names = Set<String>()
        if let refs = try? root.directory("refs") { collect(refs, prefix: "refs", depth: 0, into: &names) }
        if let bytes = try? root.readFile("packed-refs", limit: AgentHead.maximumPackedRefsSize) {
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("^") {
                let fields = line.split(separator: " ", maxSplits: 1)
                if fields.count == 2, names.count < maximumNames { names.insert(String(fields[1]).trimmingCharacters(in: .whitespaces)) }
            }
        }
        var found = names.subtracting(["refs/heads/\(branch)"]).sorted()
        if let bytes = try? root.readFile("HEAD", limit: AgentHead.maximumRefFileSize) {
            let head = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if head != "ref: refs/heads/\(branch)" {
                found.insert("HEAD -> " + (head.hasPrefix("ref:") ? String(head.dropFirst(4)).trimmingCharacters(in: .whitespaces) : "detached \(head.prefix(12))"), at: 0)
            }
        }
        return found.map { String($0.prefix(200)) }
    }

    private static func collect(_ directory: UntrustedDirectory, prefix: String, depth: Int, into names: inout Set<String>) {
        guard depth < maximumDepth, let entries = try? directory.entries() else { return }
        for entry in entries.sorted(by: { $0.name < $1.name }) where names.count < maximumNames {
            let name = prefix + "/" + entry.name
            switch entry.kind {
            case .directory:
                if let child = try? directory.directory(entry.name) { collect(child, prefix: name, depth: depth + 1, into: &names) }
            case .regular, .symbolicLink, .other:
                names.insert(name)
            }
        }
    }
}
