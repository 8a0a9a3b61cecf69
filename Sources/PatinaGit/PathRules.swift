/// Path names git refuses to check out, whatever the platform: a checkout of such a path
/// (on the user's machine, later) could write into a repository's git directory.
enum PathRules {
    /// HFS+ ignores these code points in names, so ".g\u{200C}it" is ".git" there.
    private static let ignorable: Set<Unicode.Scalar> = Set(
        [0x200C...0x200F, 0x202A...0x202E, 0x206A...0x206F, 0xFEFF...0xFEFF]
            .flatMap { $0 }.compactMap(Unicode.Scalar.init))

    /// Whether a path component `name` is refused: empty, ".", "..", a slash or NUL in it,
    /// ".git" in any spelling (case, trailing dots or spaces, HFS-ignorable characters,
    /// the NTFS short name "git~1"), or a symbolic link named ".gitmodules".
    static func isRefused(_ name: String, isSymbolicLink: Bool) -> Bool {
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\0") {
            return true
        }
        var folded = String(String.UnicodeScalarView(name.lowercased().unicodeScalars.filter { !ignorable.contains($0) }))
        while folded.hasSuffix(".") || folded.hasSuffix(" ") { folded.removeLast() }
        if folded == ".git" || folded == "git~1" { return true }
        return isSymbolicLink && (folded == ".gitmodules" || folded.hasPrefix("gitmod~"))
    }
}
