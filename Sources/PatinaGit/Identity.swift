/// Who commits and tags patina writes are by.
public struct Identity: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var email: String

    public init(name: String, email: String) {
        self.name = name
        self.email = email
    }

    /// The agent: author of its own commits in the sandbox and of what it left uncommitted.
    public static let agent = Identity(name: "patina agent", email: "agent@patina.invalid")
    /// patina itself: committer of the leftovers commit, tagger of session tags when the
    /// repository has no user.name/user.email.
    public static let patina = Identity(name: "patina", email: "patina@localhost")

    public var description: String { "\(name) <\(email)>" }
}
