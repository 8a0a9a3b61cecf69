import Foundation

/// Whether a recorded run is still being worked on, and by a live patina.
public enum RunLiveness {
    /// A run is in flight while it is recorded as running and the patina process
    /// that runs it is alive.
    public static func inFlight(_ record: RunRecord) -> Bool {
        guard record.status == .running else { return false }
        // A pid means something only on the host that ran it (a Slurm node): a run of
        // another host is left to that host's patina and to the batch that submitted it.
        if let host = record.executor?.host, host != RunExecutor.thisHost { return true }
        return patinaAlive(pid: record.pid)
    }

    /// Whether `pid` is a live patina process (nil: unknown, counted as alive).
    public static func patinaAlive(pid: Int32?) -> Bool {
        guard let pid else { return true }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // Killed but not yet reaped by its parent: gone all the same.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let state = stat.range(of: ") ", options: .backwards).map({ stat[$0.upperBound...].prefix(1) }), state == "Z" || state == "X" {
            return false
        }
        // The pid may have been reused by another program.
        let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "patina"
        return comm.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("patina")
    }
}
