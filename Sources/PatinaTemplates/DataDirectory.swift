import Foundation

/// Where patina's shipped data (`templates/`, `firewall/`) lives.
///
/// Looked up relative to the executable, never the current directory, so an
/// installed binary works from anywhere: `$PATINA_DATA_DIR`, then
/// `<prefix>/share/patina` next to `<prefix>/bin/patina`, then (for a build in the
/// source tree) the nearest ancestor of the executable holding both folders.
public enum DataDirectory {
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executable: URL = currentExecutable()
    ) throws -> URL {
        if let explicit = environment["PATINA_DATA_DIR"], !explicit.isEmpty {
            let url = URL(fileURLWithPath: explicit, isDirectory: true)
            guard holdsData(url) else { throw TemplateError.dataDirectoryMissing(searched: [url.path]) }
            return url
        }
        var searched: [String] = []
        let binDir = executable.deletingLastPathComponent()
        let share = binDir.deletingLastPathComponent().appendingPathComponent("share/patina", isDirectory: true)
        searched.append(share.path)
        if holdsData(share) { return share }
        var dir = binDir
        while dir.path != "/" {
            searched.append(dir.path)
            if holdsData(dir) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        throw TemplateError.dataDirectoryMissing(searched: searched)
    }

    /// The running binary: /proc/self/exe, else argv[0] looked up on PATH.
    public static func currentExecutable(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: target)
        }
        let argv0 = CommandLine.arguments[0]
        if !argv0.contains("/"), let found = which(argv0, environment) { return found }
        return URL(fileURLWithPath: argv0).resolvingSymlinksInPath()
    }

    static func holdsData(_ url: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: url.appendingPathComponent("templates").path)
            && fm.fileExists(atPath: url.appendingPathComponent("firewall").path)
    }

    private static func which(_ name: String, _ environment: [String: String]) -> URL? {
        for dir in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate.resolvingSymlinksInPath()
            }
        }
        return nil
    }
}
