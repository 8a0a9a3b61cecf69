import CPatinaShim
import Foundation

/// An overlay of a directory (Linux overlayfs, mounted as root): what is below is read
/// through and never written; what is written lands in `upper`, which goes when the
/// overlay goes. The check reads the run's warm caches through one, so tools that write
/// to their cache (uv's lock, Go's `cache/lock`) work, and nothing it writes persists.
public enum OverlayMount {
    public struct Failure: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// overlayfs's option string; nil for a path it cannot carry (`,` `:` `\` or `=` in it).
    public static func options(lower: URL, upper: URL, work: URL) -> String? {
        let paths = [lower.path, upper.path, work.path]
        guard !paths.contains(where: { $0.contains { ",:\\=".contains($0) } }) else { return nil }
        return "lowerdir=\(paths[0]),upperdir=\(paths[1]),workdir=\(paths[2])"
    }

    /// Mounts the overlay of `lower` at `target` (nosuid, nodev); `upper` and `work` are
    /// empty directories on one filesystem.
    public static func mount(lower: URL, upper: URL, work: URL, at target: URL) throws(Failure) {
        guard let options = options(lower: lower, upper: upper, work: work) else {
            throw Failure(reason: "an overlay cannot name \(lower.path) (a ',', ':', '\\' or '=' in the path)")
        }
        let code = patina_overlay_mount(target.path, options)
        guard code != 0 else { return }
        throw Failure(reason: "mounting an overlay of \(lower.path): \(String(cString: strerror(code)))")
    }
}
