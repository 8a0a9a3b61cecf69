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
    /// `given`: the repository's tags, handed to the sandbox as its packed-refs
    /// (`SandboxGitDirectory.writeTags`); one still at the commit it was given is not the agent's.
    public static func outside(branch: String, privateGitDirectory: URL, given: [TagReference] = []) -> [String] {
        let givenTargets = Dictionary(given.map { ("refs/tags/\($0.name)", $0.target.hex) }, uniquingKeysWith: { first, _ in first })
        guard let root = try? UntrustedDirectory.open(privateGitDirectory) else { return [] }
        var names = Set<String>()
        if let refs = try? root.directory("refs") { collect(refs, prefix: "refs", depth: 0, into: &names) }
        if let bytes = try? root.readFile("packed-refs", limit: AgentHead.maximumPackedRefsSize) {
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("^") {
                let fields = line.split(separator: " ", maxSplits: 1)
                guard fields.count == 2, names.count < maximumNames else { continue }
                let name = String(fields[1]).trimmingCharacters(in: .whitespaces)
                if givenTargets[name] != String(fields[0]) { names.insert(name) }
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
