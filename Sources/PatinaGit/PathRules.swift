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

    /// A quick look at a component's bytes: `false` only when `isRefused` is certainly false
    /// (ASCII, not "." or "..", no "git" in any case). Every refused name has "git" in it
    /// once HFS-ignorable (non-ASCII) characters are dropped.
    static func mayBeRefused<Bytes: Collection>(_ name: Bytes) -> Bool where Bytes.Element == CChar {
        if name.isEmpty || name.elementsEqual([0x2e]) || name.elementsEqual([0x2e, 0x2e]) { return true }
        var previous2: UInt8 = 0, previous1: UInt8 = 0
        for signed in name {
            let byte = UInt8(bitPattern: signed)
            if byte >= 0x80 || byte == 0 || byte == 0x2f { return true }
            let lower = byte | 0x20
            if previous2 == UInt8(ascii: "g") && previous1 == UInt8(ascii: "i") && lower == UInt8(ascii: "t") { return true }
            previous2 = previous1
            previous1 = lower
        }
        return false
    }
}
