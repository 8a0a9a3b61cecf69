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
    private var agentContainer: String?
    private let engine: DockerEngine

    public init(engine: DockerEngine) {
        self.engine = engine
    }

    public func stop(_ reason: StopReason) async {
        guard self.reason == nil else { return }
        self.reason = reason
        if let agentContainer { await engine.kill(agentContainer) }
    }

    public func agentStarted(_ name: String) async {
        agentContainer = name
        if reason != nil { await engine.kill(name) }
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
        for sig in [SIGINT, SIGTERM] {
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
    }
}
