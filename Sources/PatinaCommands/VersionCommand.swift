import ArgumentParser
import PatinaGit
import PatinaSandbox

/// `patina version` (and `patina --version`): what this binary is and what it links.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print patina's version, the commit it was built from, and the libgit2 and libseccomp it links."
    )

    static let number = "0.1.0"

    /// Four lines; `patina --version` prints the same.
    static var text: String {
        """
        patina \(number)
        commit:     \(BuildInfo.commit)
        libgit2:    \(Repository.libgit2Version)
        libseccomp: \(SeccompLibrary.version)
        """
    }

    func run() throws {
        say(Self.text)
    }
}
