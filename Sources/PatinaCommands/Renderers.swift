import CPatinaShim
import Foundation
import Synchronization
import PatinaCore
import PatinaSandbox

/// Text from the agent made safe for a terminal: control characters and escape
/// sequences are shown as visible escapes, never interpreted (no cursor moves,
/// title changes, hyperlinks or clipboard writes from what the agent wrote).
enum Terminal {
    static func inert(_ text: String) -> String {
        Escaping.visible(text, keepLines: true)
    }

    /// One line: newlines too are made visible.
    static func line(_ text: String) -> String {
        inert(text).replacingOccurrences(of: "\n", with: "⏎").replacingOccurrences(of: "\t", with: " ")
    }

    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }

    /// Rows and columns of the terminal on stderr, nil when it is not one.
    static var size: (rows: Int, columns: Int)? {
        var rows: Int32 = 0, columns: Int32 = 0
        guard patina_terminal_size(2, &rows, &columns) == 0, rows > 0, columns > 0 else { return nil }
        return (Int(rows), Int(columns))
    }

    /// `text` cut to `width` characters (with an ellipsis), so a redrawn line never wraps.
    static func fit(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(max(0, width - 1))) + "…"
    }

    static func write(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds)
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
    }
}

/// `patina yolo`: one run's events as lines on stderr (stdout stays clean for --json).
final class SingleRunRenderer: Sendable {
    let quiet: Bool
    private let lock = NSLock()

    init(quiet: Bool) { self.quiet = quiet }

    func warn(_ text: String) {
        lock.withLock { Terminal.write("warning: \(Terminal.line(text))\n") }
    }

    var handle: RunEventHandler {
        { [self] envelope in render(envelope) }
    }

    private func render(_ envelope: RunEventEnvelope) {
        let clock = Terminal.clock(envelope.elapsed)
        let line: String?
        switch envelope.event {
        case .warning(let text): warn(text); return
        case .step(let text): line = "• \(text)"
        case .note(let text): line = "  [\(clock)] \(text)"
        case .agentStarted(let model): line = "  [\(clock)] agent started" + (model.map { " (\($0))" } ?? "")
        case .tool(let turn, let name, let summary, let cost):
            line = String(format: "  [%@] turn %d · %@%@ · $%.4f", clock, turn, name, summary.isEmpty ? "" : " · " + summary, cost)
        case .toolError(let text): line = "  [\(clock)]   ↳ error: \(text)"
        case .agentText(let text): line = "  [\(clock)] says: \(text)"
        case .apiError(let status): line = "  [\(clock)] the model API answered \(status)"
        case .modelAPI(let status, let rateLimited, let overloaded):
            line = "  [\(clock)] " + RunSummary.apiPushback(status: status, rateLimited: rateLimited, overloaded: overloaded)
        case .placement(let state, let node, let reason): line = "• slurm: " + RunEvent.placementText(state: state, node: node, reason: reason)
        case .replaced(let by): line = "• starts over as run \(by)"
        case .phase, .finished: line = nil
        }
        guard let line, !quiet else { return }
        lock.withLock { Terminal.write(Terminal.line(line) + "\n") }
    }
}

/// A batch's events. On a terminal: one live line per active run and a totals
/// line, redrawn in place, each finished run printed once above them. Otherwise
/// one line per event, prefixed with the run's short id.
final class BatchRenderer: Sendable {
    private struct Live {
        var label: String
        var attempt: Int?
        var model: String?
        var phase: RunPhase = .queued
        var turns = 0
        var cost = 0.0
        var started = Date()
        /// 429/529 answers so far.
        var pushback = 0
        /// Where the executor placed it (`pending (Resources)`, `running on node12`).
        var placement: String?
    }

    private let quiet: Bool
    private let live: Bool
    private let total: Int
    private let started = Date()

    /// What the board shows, and what it drew last.
    private struct Board {
        var labels: [String: (String, Int?, String?)] = [:]
        var shortIDs: [String: String] = [:]
        var active: [String: Live] = [:]
        var order: [String] = []
        var done = 0
        var failed = 0
        var spend = 0.0
        var drawnLines = 0
        var ticker: Task<Void, Never>?
        /// Set by finish(): the board is gone for good.
        var finished = false

        func short(_ id: String) -> String { shortIDs[id] ?? String(id.split(separator: "-").last ?? Substring(id)) }
    }
    private let board = Mutex(Board())

    /// `labels`: run id → (task label, attempt, model), for the live lines.
    init(total: Int, quiet: Bool, live: Bool = Terminal.standardErrorIsTerminal) {
        self.total = total
        self.quiet = quiet
        self.live = live && !quiet
        if self.live {
            let ticker = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: 1_000_000_000)
                    // A cancelled sleep returns at once: no board after finish().
                    if Task.isCancelled { return }
                    self?.redraw()
                }
            }
            board.withLock { $0.ticker = ticker }
        }
    }

    func describe(runID: String, label: String, attempt: Int?, model: String?) {
        board.withLock { b in
            b.labels[runID] = (label, attempt, model)
            b.shortIDs = RunID.abbreviations(Array(b.labels.keys))
        }
    }

    func finish() {
        board.withLock { $0.ticker }?.cancel()
        board.withLock { b in
            if live { clear(&b) }
            b.finished = true
        }
    }

    func warn(_ text: String) {
        board.withLock { b in
            if live { clear(&b) }
            Terminal.write("warning: \(Terminal.line(text))\n")
            if live { draw(&b) }
        }
    }

    var handle: RunEventHandler {
        { [self] envelope in render(envelope) }
    }

    private func render(_ envelope: RunEventEnvelope) {
        let id = envelope.runID
        board.withLock { b in
            var isFinished = false
            if case .finished = envelope.event { isFinished = true }
            if b.active[id] == nil && !isFinished {
                let (label, attempt, model) = b.labels[id] ?? (id, nil, nil)
                b.active[id] = Live(label: label, attempt: attempt, model: model)
                b.order.append(id)
            }
            var text: String?
            switch envelope.event {
            case .phase(let phase): b.active[id]?.phase = phase
            case .tool(let turn, let name, let summary, let cost):
                b.active[id]?.turns = turn
                b.active[id]?.cost = cost
                text = "turn \(turn) · \(name)" + (summary.isEmpty ? "" : " · \(summary)")
            case .step(let s): text = s
            case .placement(let state, let node, let reason):
                let phrase = RunEvent.placementText(state: state, node: node, reason: reason)
                b.active[id]?.placement = phrase
                text = "slurm: " + phrase
            case .note(let s): text = s
            case .replaced(let by):
                // The item goes on as `by`: its row carries over, this run's leaves the board.
                if let label = b.labels[id], b.labels[by] == nil {
                    b.labels[by] = label
                    b.shortIDs = RunID.abbreviations(Array(b.labels.keys))
                }
                b.active.removeValue(forKey: id)
                b.order.removeAll { $0 == id }
                text = "starts over as run \(by)"
            case .agentStarted(let model): text = "agent started" + (model.map { " (\($0))" } ?? "")
            case .toolError(let s): text = "↳ error: \(s)"
            case .agentText(let s): text = "says: \(s)"
            case .apiError(let status): text = "the model API answered \(status)"
            case .modelAPI(let status, let rateLimited, let overloaded):
                b.active[id]?.pushback = rateLimited + overloaded
                text = RunSummary.apiPushback(status: status, rateLimited: rateLimited, overloaded: overloaded)
            case .warning(let s):
                if live { clear(&b) }
                Terminal.write("warning: [\(b.short(id))] \(Terminal.line(s))\n")
                if live { draw(&b) }
                return
            case .finished(let record):
                b.active.removeValue(forKey: id)
                b.order.removeAll { $0 == id }
                b.done += 1
                if record.status != .succeeded || record.check?.passed == false { b.failed += 1 }
                b.spend += record.costUSD ?? 0
                if live { clear(&b) }
                Terminal.write(Terminal.line(finishedLine(record, b)) + "\n")
                if live { draw(&b) }
                return
            }
            if live {
                clear(&b)
                draw(&b)
            } else if let text, !quiet {
                Terminal.write("[\(b.short(id))] \(Terminal.line(text))\n")
            }
        }
    }

    private func finishedLine(_ r: RunRecord, _ b: Board) -> String {
        // ✓ only for a run that succeeded and whose check, if any, passed.
        let good = r.status == .succeeded && r.check?.passed != false
        var parts = ["\(good ? "✓" : "✗") [\(b.short(r.id))]", r.status.rawValue]
        if let check = r.check { parts.append(check.passed ? "check passed" : "check FAILED") }
        if let rounds = r.rounds, rounds.count > 1 || (r.options?.rounds ?? 1) > 1 {
            parts.append(r.passedAtRound.map { "passed at round \($0) of \(r.options?.rounds ?? rounds.count)" }
                         ?? "\(rounds.count) round\(rounds.count == 1 ? "" : "s"), \(r.stopReason?.rawValue ?? "")")
        }
        parts.append("\(counted(r.filesChanged.count, "file")) +\(r.additions) -\(r.deletions)")
        parts.append(RunSummary.cost(r.costUSD))
        if let label = b.labels[r.id] { parts.append(label.0 + (label.1.map { " #\($0)" } ?? "") + (label.2.map { " (\($0))" } ?? "")) }
        if let reason = r.reason, r.status != .succeeded { parts.append("— \(reason)") }
        parts.append("→ \(r.branch)")
        return parts.joined(separator: "  ")
    }

    private func redraw() {
        board.withLock { b in
            guard live, !b.finished else { return }
            clear(&b)
            draw(&b)
        }
    }

    // Called with the board locked.
    private func clear(_ b: inout Board) {
        guard b.drawnLines > 0 else { return }
        Terminal.write(String(repeating: "\u{1B}[1A\u{1B}[2K", count: b.drawnLines) + "\r")
        b.drawnLines = 0
    }

    private func draw(_ b: inout Board) {
        guard !b.finished else { return }
        let size = Terminal.size ?? (rows: 24, columns: 100)
        let lines = Self.board(runs: b.order.compactMap { id in b.active[id].map { (b.short(id), $0) } }, total: total, done: b.done,
                               failed: b.failed, spend: b.spend, started: started, rows: size.rows, columns: size.columns)
        Terminal.write(lines.joined(separator: "\n") + "\n")
        b.drawnLines = lines.count
    }

    /// The live board: a line per running run and the totals, each cut to the terminal's
    /// width; when the runs do not fit its height, the counts per phase and the most recent
    /// runs that fit (a board taller than the terminal would scroll instead of redrawing).
    private static func board(runs: [(String, Live)], total: Int, done: Int, failed: Int, spend: Double, started: Date,
                              rows: Int, columns: Int) -> [String] {
        let now = Date()
        func line(_ short: String, _ run: Live) -> String {
            let who = String(run.label.prefix(36)) + (run.attempt.map { " #\($0)" } ?? "") + (run.model.map { " \($0)" } ?? "")
            return String(format: "  %@  %@  %-8@ turn %d  %@  $%.4f", short, Terminal.line(who), run.phase.rawValue, run.turns,
                          Terminal.clock(now.timeIntervalSince(run.started)), run.cost)
                + (run.pushback > 0 ? "  429/529 ×\(run.pushback)" : "")
                + (run.placement.map { "  \($0)" } ?? "")
        }
        let running = runs.count
        let queued = max(0, total - done - running)
        // What was spent: finished runs and what the running ones spent so far.
        let spent = spend + runs.reduce(0) { $0 + $1.1.cost }
        let footer = String(format: "  queued %d · running %d · done %d · failed %d · $%.4f · %@",
                            queued, running, done, failed, spent, Terminal.clock(now.timeIntervalSince(started)))
        // Leave a row for the cursor and one for a line printed above the board.
        let room = max(1, rows - 2)
        var lines: [String]
        if running + 1 <= room {
            lines = runs.map { line($0.0, $0.1) }
        } else {
            var phases: [String: Int] = [:]
            for (_, run) in runs { phases[run.phase.rawValue, default: 0] += 1 }
            let counts = "  " + phases.keys.sorted().map { "\($0) \(phases[$0]!)" }.joined(separator: " · ")
                + "  (\(running) running; the most recent below)"
            let shown = max(0, room - 2)
            lines = [counts] + runs.suffix(shown).map { line($0.0, $0.1) }
        }
        lines.append(footer)
        return lines.suffix(room).map { Terminal.fit($0, max(10, columns - 1)) }
    }
}
