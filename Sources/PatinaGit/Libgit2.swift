import CGit2
import CPatinaShim

/// libgit2's process-wide set-up, done once, lazily, by the first PatinaGit call that needs it.
///
/// Owner validation (`safe.directory`) stays at libgit2's default (on): opening the
/// user's repository behaves like git. Collection never opens the agent-touched worktree
/// or the sandbox's git directory as a repository (it opens the host's own git directory
/// and attaches the worktree as a working directory), so a worktree still owned by the
/// container's uid cannot make collection fail, and no global switch is flipped.
enum Libgit2 {
    private static let ready: Bool = {
        git_libgit2_init()
        // On by default in libgit2; set explicitly because collection relies on it:
        // every object read from the agent's object store is re-hashed.
        return patina_git_set_strict_hash_verification(1) == 0
    }()

    static func initialize() {
        _ = ready
    }
}

extension Repository {
    /// The version of the libgit2 patina links, as "major.minor.revision".
    public static var libgit2Version: String {
        var major: Int32 = 0, minor: Int32 = 0, revision: Int32 = 0
        guard git_libgit2_version(&major, &minor, &revision) == 0 else { return "unknown" }
        return "\(major).\(minor).\(revision)"
    }
}
