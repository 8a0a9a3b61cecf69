import Foundation
import PatinaModelProxy
import PatinaGit
import PatinaSandbox

/// `--rounds N`: after a failing check, the same Claude Code conversation goes on — in a
/// fresh sandbox on the run's branch and worktree, as `patina resume` does — with the
/// check's failures as its follow-up, until the check passes or rounds, money or time run
/// out. Each later round is one more agent step and check on the same run record: its own
/// files in `round-<k>/` of the run's directory, its figures added to the run's.
struct RoundLoop {
    let plan: RunPlan
    let engine: DockerEngine
    let progress: Progress
    let control: RunControl

    func run(from first: RunRecord) async -> RunRecord {
        var record = first
        record.rounds = [Self.roundEntry(first, round: 1, base: plan.baseCommit, dir: nil)]
        keepCheckLog(of: plan.runDirectory, round: 1, in: plan.runDirectory)
        return await loop(record, last: first, round: 1, started: first.started, earlier: 0, continuing: false)
    }

    /// `patina batch resume` of a run interrupted in round `k`: the rounds left after it, in
    /// the same run (record, branch, worktree, conversation). Round `k` counts as used; the
    /// time and money of rounds 1…k count against `--timeout` and `--max-cost`.
    func resume(_ interrupted: RunRecord) async -> RunRecord {
        var record = interrupted
        record.status = .running
        record.reason = nil
        record.stopReason = nil
        record.finished = nil
        record.pid = getpid()
        // Where it goes on now (a Slurm node's run resumed here is this host's now: a pid
        // and containers are judged where they live).
        record.executor = plan.executor
        // A run stopped in round 1 before the loop wrote its rounds (a patina killed then).
        if record.rounds == nil { record.rounds = [Self.roundEntry(interrupted, round: 1, base: plan.baseCommit, dir: nil)] }
        try? plan.store.save(record)
        let round = record.rounds?.last?.round ?? 1
        progress.step("resuming run \(plan.id) after round \(round) of \(plan.rounds)")
        return await loop(record, last: interrupted, round: round, started: Date(), earlier: interrupted.durationS ?? 0, continuing: true)
    }

    /// Rounds after `round` (whose record is `last`) until one of the stops. `earlier`: seconds
    /// the run took before `started` (a resumed run's earlier rounds). `continuing`: `last`
    /// was interrupted and the run goes on anyway (`resume`).
    private func loop(_ first: RunRecord, last firstLast: RunRecord, round firstRound: Int, started: Date, earlier: Double, continuing: Bool) async -> RunRecord {
        var record = first
        let originalBase = plan.baseCommit
        let runDirectory = plan.runDirectory
        var round = firstRound
        var last = firstLast
        var roundBase = plan.baseCommit
        var resuming = continuing
        let stop: RoundStopReason
        while true {
            if !resuming, let reason = Self.stopAfter(last, round: round, rounds: plan.rounds, changed: round == 1 || last.headCommit != roundBase.hex || last.leftoversCommitted) {
                stop = reason
                break
            }
            if await control.reason == .interrupted {
                // Ctrl-C during the round's check: the run was interrupted, not just failed.
                stop = .interrupted
                record.status = .interrupted
                record.reason = ([record.reason].compactMap { $0 } + ["interrupted after round \(round)"]).joined(separator: "; ")
                break
            }
            if resuming && round >= plan.rounds {
                stop = .roundsExhausted
                record.status = .interrupted
                record.reason = "interrupted in round \(round), its last: no round left to resume"
                break
            }
            let elapsed = earlier + Date().timeIntervalSince(started)
            let timeLeft = plan.timeoutSeconds - elapsed
            if timeLeft < 1 {
                stop = .timedOut
                record.status = .timedOut
                record.reason = "the run's \(DurationParser.format(plan.timeoutSeconds)) timeout was reached after round \(round)"
                break
            }
            let spent = record.costUSD ?? 0
            if let budget = plan.maxCostUSD, spent >= budget {
                stop = .budgetExceeded
                record.status = .budgetExceeded
                record.reason = "the run's budget of \(Money.format(budget)) was spent after round \(round)"
                break
            }
            guard let head = last.headCommit.flatMap({ ObjectID(hex: $0) }), let sessionID = last.claudeSessionID,
                  let transcript = last.transcript, let check = last.check ?? (resuming ? CheckResult(command: plan.check ?? "", exitCode: nil, passed: false, durationS: 0, outputTail: "", error: "not run") : nil) else {
                stop = .error
                record.reason = ([record.reason].compactMap { $0 } + ["round \(round + 1) could not start: round \(round) left no conversation to continue"]).joined(separator: "; ")
                break
            }
            round += 1
            let followUp: String
            do {
                followUp = try FollowUp.render(check: check, round: round, rounds: plan.rounds, templates: plan.templates,
                                               interrupted: resuming && check.exitCode == nil)
            } catch {
                stop = .error
                record.status = .error
                record.reason = "round \(round) could not start: \(error)"
                break
            }
            progress.step("round \(round) of \(plan.rounds): the check's failures go back to the agent")
            var next = plan
            next.round = round
            next.task = followUp
            next.baseCommit = head
            next.runDirectory = runDirectory.appendingPathComponent("round-\(round)")
            next.resume = ResumeSource(runID: plan.id, sessionID: sessionID, transcript: URL(fileURLWithPath: transcript))
            next.timeoutSeconds = timeLeft
            next.maxCostUSD = plan.maxCostUSD.map { $0 - spent }
            roundBase = head
            resuming = false
            try? FileManager.default.createDirectory(at: next.runDirectory, withIntermediateDirectories: true)
            // The run so far, for recovery should this patina die during the round (whose own
            // record is the store's meanwhile).
            try? Data(record.json().utf8).write(to: runDirectory.appendingPathComponent(Self.savedRunFile), options: .atomic)
            try? Data(followUp.utf8).write(to: next.runDirectory.appendingPathComponent("follow-up.md"))
            let result = await RunLifecycle(plan: next, engine: engine, progress: progress, control: control).executeRound()
            last = result
            Self.merge(result, round: round, base: head, into: &record, originalBase: originalBase, repository: plan.repository)
            keepCheckLog(of: next.runDirectory, round: round, in: runDirectory)
            if result.createdNothing { stop = result.status == .interrupted ? .interrupted : .error; break }
        }
        record.stopReason = stop
        if record.status == .running { record.status = .error }  // a resumed run that could not go on
        record.passedAtRound = record.rounds?.first(where: { $0.check?.passed == true })?.round
        progress.step("rounds: \(round) of \(plan.rounds) used, stopped: \(stop.rawValue)"
            + (record.passedAtRound.map { ", the check passed at round \($0)" } ?? ""))
        record.finished = Date()
        record.durationS = ((earlier + (record.finished ?? Date()).timeIntervalSince(started)) * 1000).rounded() / 1000
        do {
            let written = try SessionMarkdown.write(record: record, repository: plan.repository, secrets: plan.credentials.secretValues)
            if let earlier = plan.resume?.runID, earlier != plan.id, let before = try? plan.store.load(earlier) {
                try RoundsMarkdown.insertPreviousContext(RoundsMarkdown.context(of: before), into: written)
            }
            try RoundsMarkdown.append(record: record, to: URL(fileURLWithPath: record.runDir).appendingPathComponent("session.md"))
        } catch {
            progress.warn("could not write session.md: \(error)")
        }
        try? plan.store.save(record)
        try? FileManager.default.removeItem(at: runDirectory.appendingPathComponent(Self.savedRunFile))
        return record
    }

    /// Why the rounds stop after `last` (round `round`), or nil to go on.
    static func stopAfter(_ last: RunRecord, round: Int, rounds: Int, changed: Bool) -> RoundStopReason? {
        if last.check?.passed == true && last.status == .succeeded { return .passed }
        switch last.status {
        case .checkFailed: break
        case .budgetExceeded: return .budgetExceeded
        case .timedOut: return .timedOut
        case .interrupted: return .interrupted
        default: return .error
        }
        if !changed { return .noChange }
        if round >= rounds { return .roundsExhausted }
        return nil
    }

    static func roundEntry(_ r: RunRecord, round: Int, base: ObjectID, dir: String?) -> RoundRecord {
        RoundRecord(round: round, started: r.started, durationS: r.durationS ?? 0, head: r.headCommit, commits: r.commits ?? 0,
                    costUSD: r.costUSD, tokens: r.tokens, check: r.check, status: r.status, dir: dir)
    }

    /// Round `round`'s record folded into the run's: the last round's ending and check, the
    /// figures added up, the changes counted from the run's base.
    static let savedRunFile = "rounds-run.json"

    /// The round a run directory holds (`round-<k>` inside the run's own), if it is one.
    static func roundNumber(of directory: URL) -> Int? {
        let name = directory.lastPathComponent
        guard name.hasPrefix("round-"), let k = Int(name.dropFirst(6)), k > 1,
              FileManager.default.fileExists(atPath: directory.deletingLastPathComponent().appendingPathComponent(savedRunFile).path)
        else { return nil }
        return k
    }

    /// The run's record as it was before its latest round started.
    static func savedRun(in runDirectory: URL) -> RunRecord? {
        guard let data = FileManager.default.contents(atPath: runDirectory.appendingPathComponent(savedRunFile).path) else { return nil }
        return try? RunRecord.decoder.decode(RunRecord.self, from: data)
    }

    static func merge(_ r: RunRecord, round: Int, base: ObjectID, into record: inout RunRecord, originalBase: ObjectID, repository: Repository) {
        record.rounds = (record.rounds ?? []) + [roundEntry(r, round: round, base: base, dir: r.runDir)]
        record.status = r.status
        record.reason = r.reason
        record.check = r.check
        if let head = r.headCommit { record.headCommit = head }
        record.exitCode = r.exitCode
        if let id = r.claudeSessionID { record.claudeSessionID = id }
        if let transcript = r.transcript { record.transcript = transcript }
        record.lastMessage = r.lastMessage ?? record.lastMessage
        record.leftoversCommitted = record.leftoversCommitted || r.leftoversCommitted
        record.costUSD = Self.sum(record.costUSD, r.costUSD)
        record.numTurns = Self.sum(record.numTurns, r.numTurns)
        record.requests = Self.sum(record.requests, r.requests)
        if let tokens = r.tokens { record.tokens = (record.tokens ?? TokenCounts()) + tokens }
        record.steps += r.steps.map { StepTiming(name: "round \(round) \($0.name)", seconds: $0.seconds, detail: $0.detail) }
        if let head = record.headCommit.flatMap({ ObjectID(hex: $0) }), let history = try? repository.gitDirectoryOnly() {
            if let stats = try? history.diffStat(from: originalBase, to: head) {
                record.filesChanged = stats.map {
                    FileChangeRecord(path: $0.path, additions: $0.additions, deletions: $0.deletions, status: $0.status.rawValue)
                }
                record.sensitiveChanges = record.markedPaths.map(\.path)
            }
            record.commits = (try? history.commits(from: originalBase, to: head).count) ?? record.commits
        }
        if r.outputTruncated != nil { record.outputTruncated = (record.outputTruncated ?? []) + (r.outputTruncated ?? []) }
    }

    static func sum<T: AdditiveArithmetic>(_ a: T?, _ b: T?) -> T? {
        guard a != nil || b != nil else { return nil }
        return (a ?? .zero) + (b ?? .zero)
    }

    /// Each round's check output stays: `check-round-<k>.log` beside check.log, which
    /// holds the last round's.
    func keepCheckLog(of roundDirectory: URL, round: Int, in runDirectory: URL) {
        let fm = FileManager.default
        let log = roundDirectory.appendingPathComponent("check.log")
        guard fm.fileExists(atPath: log.path) else { return }
        let kept = runDirectory.appendingPathComponent("check-round-\(round).log")
        try? fm.removeItem(at: kept)
        try? fm.copyItem(at: log, to: kept)
        if roundDirectory != runDirectory {
            let last = runDirectory.appendingPathComponent("check.log")
            try? fm.removeItem(at: last)
            try? fm.copyItem(at: log, to: last)
        }
    }
}
