import Foundation
import Synchronization

/// A count that may not pass its limit: connections held, or request bytes buffered.
/// Thread-safe; a reservation that would pass the limit is refused whole.
public final class Quota: Sendable {
    public let limit: Int
    private let used = Mutex(0)

    public init(limit: Int) {
        self.limit = limit
    }

    public var inUse: Int { used.withLock { $0 } }

    /// Takes `amount` when it fits under the limit; false (nothing taken) otherwise.
    func reserve(_ amount: Int) -> Bool {
        guard amount >= 0 else { return false }
        return used.withLock { used in
            guard amount <= limit - used else { return false }
            used += amount
            return true
        }
    }

    func release(_ amount: Int) {
        used.withLock { $0 = max(0, $0 - amount) }
    }
}

/// What one client may hold of the process that serves every run's proxy (a batch runs
/// many in one patina): connections, buffered request bytes and time, per run and for
/// the whole process. A client past a cap is answered and dropped; other runs never
/// notice it.
public struct ProxyLimits: Sendable {
    /// Connections a run's proxy holds at once (Claude Code keeps a handful open).
    public var connections = 32
    /// Request bytes a run's proxy buffers at once (a request body is at most 64 MB).
    public var bytesInFlight = 160 << 20
    /// Largest request body (Claude Code sends the whole conversation; with images, tens of MB).
    public var maxBodyBytes = 64 << 20
    /// From a request's first byte to the end of its head.
    public var headSeconds = 30.0
    /// From a request's first byte to the end of its body.
    public var requestSeconds = 180.0
    /// An idle keep-alive connection ends after this long; Claude Code opens another.
    public var idleSeconds = 300.0
    /// Shared by every proxy of this process.
    public var process: ProcessLimits = .shared

    public init() {}
}

/// The caps of the whole process, shared by every run's proxy in it.
public struct ProcessLimits: Sendable {
    public let connections: Quota
    public let bytesInFlight: Quota

    public init(connections: Int, bytesInFlight: Int) {
        self.connections = Quota(limit: connections)
        self.bytesInFlight = Quota(limit: bytesInFlight)
    }

    /// 256 connections and 512 MB of buffered requests for every run of one patina.
    public static let shared = ProcessLimits(connections: 256, bytesInFlight: 512 << 20)
}

/// Both quotas a reservation takes from: the run's and the process's.
struct QuotaPair: Sendable {
    let run: Quota
    let process: Quota

    /// Which one refused, or nil when both took `amount`.
    func reserve(_ amount: Int) -> String? {
        guard run.reserve(amount) else { return "run" }
        guard process.reserve(amount) else {
            run.release(amount)
            return "process"
        }
        return nil
    }

    func release(_ amount: Int) {
        run.release(amount)
        process.release(amount)
    }
}
