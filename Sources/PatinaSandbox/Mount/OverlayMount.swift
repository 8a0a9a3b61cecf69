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

    /// The mount points below `directory` (this process's mount table), deepest first.
    public static func mountPoints(under directory: URL) -> [String] {
        let prefix = directory.standardizedFileURL.path + "/"
        // Read to its end: a /proc file says it is empty, and a reader trusting its size stops short.
        let data = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/mountinfo")).readToEnd()) ?? Data()
        let table = String(decoding: data, as: UTF8.self)
        // Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
        let points = table.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { return nil }
            return String(fields[4]).replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t")
                .replacingOccurrences(of: "\\012", with: "\n").replacingOccurrences(of: "\\134", with: "\\")
        }
        return points.filter { $0.hasPrefix(prefix) }.sorted { $0.count > $1.count }
    }
}
