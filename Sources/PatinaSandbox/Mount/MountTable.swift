import Foundation

/// This process's mount table (`/proc/self/mountinfo`).
public enum MountTable {
    /// The mount points below `directory` (this process's mount table), deepest first.
    public static func points(under directory: URL) -> [String] {
        // The kernel lists where a mount really is: a directory reached through a link (a
        // repository's store) is looked for at its resolved path.
        let prefix = directory.standardizedFileURL.resolvingSymlinksInPath().path + "/"
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
