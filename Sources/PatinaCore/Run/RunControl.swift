import Foundation
import PatinaSandbox

/// Why a run is being stopped early.
public enum StopReason: Sendable, Equatable {
    case timeout
    case interrupted
}

/// Shared stop state of one run: the timer and the Ctrl-C handler ask for a
/// stop; the lifecycle checks between steps and kills the agent's container.
public actor RunControl {
    public private(set) var reason: StopReason?
    /// True once a kill actually stopped the running agent: only then does the
    /// stop reason decide the run's status (an agent that finished on its own
    /// a moment before keeps its own result).
    public private(set) var killedAgent = false
    private var agentContainer: String?
    private let engine: DockerEngine

    public init(engine: DockerEngine) {
        self.engine = engine
    }

    public func stop(_ reason: StopReason) async {
        if self.reason == nil { self.reason = reason }
        await killAgentIfStopping()
    }

    /// Kills the agent when a stop was asked for. Called again and again by the
    /// watchdog: a kill sent before `docker run` has created the container
    /// misses it, so it is repeated until the container is gone.
    public func killAgentIfStopping() async {
        guard reason != nil, let agentContainer else { return }
        if await engine.kill(agentContainer) { killedAgent = true }
    }

    public func agentStarted(_ name: String) async {
        agentContainer = name
        await killAgentIfStopping()
    }

    public func agentFinished() {
        agentContainer = nil
    }
}

/// Turns SIGINT/SIGTERM into a graceful stop: the agent is stopped, the run is
/// still collected, nothing is left running. A second Ctrl-C is ignored while
/// collection finishes, so the user's work is not lost half-way.
public final class InterruptHandler: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    public init(control: RunControl, progress: Progress) {
        // SIGHUP too: a closed terminal or ssh session must not leave the agent running.
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                progress.warn("stopping: the agent is being stopped and the run collected")
                Task { await control.stop(.interrupted) }
            }
            source.resume()
            sources.append(source)
        }
    }

    public func cancel() {
        for s in sources { s.cancel() }
        sources.removeAll()
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        signal(SIGHUP, SIG_DFL)
    }
}
