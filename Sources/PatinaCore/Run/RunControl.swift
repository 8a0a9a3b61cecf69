import Foundation
import PatinaSandbox
import Synchronization

/// Why a run is being stopped early.
public enum StopReason: Sendable, Equatable {
    case timeout
    case interrupted
    /// The run's model proxy could not reach the model API, for good.
    case modelUnreachable
    /// A filesystem holding the run's worktree or patina's home fell below `--min-free`.
    case diskLow(DiskShortage)

    /// The status of a run stopped for this reason.
    var runStatus: RunStatus {
        switch self {
        case .timeout: .timedOut
        case .interrupted: .interrupted
        case .modelUnreachable, .diskLow: .error
        }
    }

    /// A stop the check must obey too: the user's, or a disk with no room for it.
    var stopsTheCheck: Bool {
        switch self {
        case .interrupted, .diskLow: true
        case .timeout, .modelUnreachable: false
        }
    }
}

/// Shared stop state of one run: the timer and the Ctrl-C handler ask for a
/// stop; the lifecycle checks between steps and kills the agent's container.
public actor RunControl {
    public private(set) var reason: StopReason?
    /// True once a kill actually stopped the running agent: only then does the
    /// stop reason decide the run's status (an agent that finished on its own
    /// a moment before keeps its own result).
    public private(set) var killedAgent = false
    /// The container running now (the agent's, then the check's): what a stop kills.
    private var running: String?
    /// Every sandbox container this run started, in order.
    public private(set) var started: [String] = []
    private let engine: DockerEngine

    public init(engine: DockerEngine) {
        self.engine = engine
    }

    public func stop(_ reason: StopReason) async {
        if self.reason == nil { self.reason = reason }
        await killContainerIfStopping()
    }

    /// Kills the running container when a stop was asked for. Called again and again by the
    /// watchdog: a kill sent before `docker run` has created the container
    /// misses it, so it is repeated until the container is gone.
    public func killContainerIfStopping() async {
        guard reason != nil, let running else { return }
        if await engine.kill(running) { killedAgent = true }
    }

    /// Until cancelled: asks for a stop at `deadline` (none: never) and, every 250 ms,
    /// kills the running container while a stop is asked for.
    nonisolated func watchdog(deadline: Date?) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                if let deadline, Date() >= deadline { await self.stop(.timeout) }
                await self.killContainerIfStopping()
                try? await Task.sleep(nanoseconds: 250_000_000)
            }
        }
    }

    public func containerStarted(_ name: String) async {
        running = name
        if !started.contains(name) { started.append(name) }
        await killContainerIfStopping()
    }

    public func containerFinished() {
        running = nil
    }

    /// The check has its own timeout: what stopped the agent (its timeout, the model
    /// API out of reach) must not stop it, while a user's stop still does.
    public func resetAgentStop() {
        if reason?.stopsTheCheck != true { reason = nil }
        killedAgent = false
    }
}

/// Turns SIGINT/SIGTERM/SIGHUP into a graceful stop: installed once by a
/// command (never by a run), it calls `onSignal` for the first signal; the
/// command stops its runs, which are still collected. Later signals are
/// ignored while collection finishes, so the user's work is not lost half-way.
public final class InterruptHandler: Sendable {
    /// The signal sources, until `cancel()`.
    private let sources: Mutex<[DispatchSourceSignal]>
    /// Set by the first signal.
    private let fired = Latch()

    /// SIGHUP too by default: a closed terminal or ssh session must not leave the agent running.
    public init(signals: [Int32] = [SIGINT, SIGTERM, SIGHUP], onSignal: @escaping @Sendable (Int32) -> Void) {
        sources = Mutex(Self.install(signals, fired: fired, onSignal: onSignal))
    }

    private static func install(_ signals: [Int32], fired: Latch, onSignal: @escaping @Sendable (Int32) -> Void) -> [DispatchSourceSignal] {
        var sources: [DispatchSourceSignal] = []
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if fired.set() { onSignal(sig) }
            }
            source.resume()
            sources.append(source)
        }
        return sources
    }

    /// A flag set once: `set()` says whether this call set it.
    private final class Latch: Sendable {
        private let value = Mutex(false)
        func set() -> Bool {
            value.withLock { value in
                defer { value = true }
                return !value
            }
        }
        var isSet: Bool { value.withLock { $0 } }
    }

    public var interrupted: Bool { fired.isSet }

    public func cancel() {
        let sources = self.sources.withLock { sources in
            defer { sources.removeAll() }
            return sources
        }
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        signal(SIGHUP, SIG_DFL)
    }
}
