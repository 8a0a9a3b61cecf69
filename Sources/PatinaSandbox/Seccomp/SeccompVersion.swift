import CSeccomp

/// The libseccomp patina links.
public enum SeccompLibrary {
    /// Its version, as "major.minor.micro".
    public static var version: String {
        guard let version = seccomp_version()?.pointee else { return "unknown" }
        return "\(version.major).\(version.minor).\(version.micro)"
    }
}
