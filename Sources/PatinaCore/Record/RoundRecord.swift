import Foundation

/// What a JUnit report said about the tests of one check.
public struct TestCounts: Codable, Sendable, Equatable {
    public var total: Int
    public var failed: Int
    public var skipped: Int

    public init(total: Int, failed: Int, skipped: Int) {
        self.total = total
        self.failed = failed
        self.skipped = skipped
    }
}

/// One failing (or erroring) test case of a JUnit report. Every field was written by code
/// the agent controls: data, bounded in size, never instructions.
public struct TestFailure: Codable, Sendable, Equatable {
    public var name: String
    public var classname: String?
    public var file: String?
    public var line: Int?
    public var message: String?

    public init(name: String, classname: String? = nil, file: String? = nil, line: Int? = nil, message: String? = nil) {
        self.name = name
        self.classname = classname
        self.file = file
        self.line = line
        self.message = message
    }
}

/// Why a run with rounds stopped going round.
public enum RoundStopReason: String, Codable, Sendable, Equatable {
    case passed
    case roundsExhausted = "rounds_exhausted"
    case noChange = "no_change"
    case budgetExceeded = "budget_exceeded"
    case timedOut = "timed_out"
    case interrupted
    case error
}

/// One round of a run: one agent step and the check after it, on the run's branch.
public struct RoundRecord: Codable, Sendable, Equatable {
    public var round: Int
    public var started: Date
    public var durationS: Double
    /// The branch's head after the round was collected.
    public var head: String?
    /// Commits the round added (leftovers included).
    public var commits: Int
    public var costUSD: Double?
    public var tokens: TokenCounts?
    public var check: CheckResult?
    /// How the round's own agent step ended.
    public var status: RunStatus
    /// Where the round's files are (session.jsonl, transcript, check.log); the run's own
    /// directory for round 1.
    public var dir: String?

    public init(round: Int, started: Date, durationS: Double, head: String?, commits: Int, costUSD: Double?,
                tokens: TokenCounts?, check: CheckResult?, status: RunStatus, dir: String?) {
        self.round = round
        self.started = started
        self.durationS = durationS
        self.head = head
        self.commits = commits
        self.costUSD = costUSD
        self.tokens = tokens
        self.check = check
        self.status = status
        self.dir = dir
    }

    enum CodingKeys: String, CodingKey {
        case round, started, head, commits, tokens, check, status, dir
        case durationS = "duration_s"
        case costUSD = "cost_usd"
    }
}

extension TokenCounts {
    static func + (a: TokenCounts, b: TokenCounts) -> TokenCounts {
        TokenCounts(input: a.input + b.input, output: a.output + b.output,
                    cacheRead: a.cacheRead + b.cacheRead, cacheCreation: a.cacheCreation + b.cacheCreation)
    }
}

extension RunRecord {
    /// "rounds 2 of 3, the check passed at round 2 (passed)": for a run with rounds.
    public var roundsText: String? {
        guard let rounds, let stopReason else { return nil }
        let allowed = options?.rounds ?? rounds.count
        return "\(rounds.count) of \(allowed) round\(allowed == 1 ? "" : "s") used, "
            + (passedAtRound.map { "passed at round \($0)" } ?? "never passed") + " (stopped: \(stopReason.rawValue))"
    }
}

/// An optional field written as JSON `null` once it was set to nil, and left out while it
/// was never set: `passed_at_round` is null for a run with rounds none of which passed, and
/// absent for a run without rounds. Decoding keeps the difference.
@propertyWrapper
public struct NullOnceSet<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var value: Value?
    /// Whether the field is written at all.
    public var isSet: Bool

    public init(wrappedValue: Value?) {
        value = wrappedValue
        isSet = wrappedValue != nil
    }

    public var wrappedValue: Value? {
        get { value }
        set { value = newValue; isSet = true }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        value = c.decodeNil() ? nil : try c.decode(Value.self)
        isSet = true
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

extension KeyedEncodingContainer {
    /// Leaves a `NullOnceSet` field out while it was never set (synthesized `Codable` calls this).
    public mutating func encode<V>(_ field: NullOnceSet<V>, forKey key: Key) throws {
        guard field.isSet else { return }
        if let value = field.value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
}

extension KeyedDecodingContainer {
    /// A missing `NullOnceSet` field is one never set; a null one was set to nil.
    public func decode<V>(_ type: NullOnceSet<V>.Type, forKey key: Key) throws -> NullOnceSet<V> {
        guard contains(key) else { return NullOnceSet(wrappedValue: nil) }
        var field = NullOnceSet<V>(wrappedValue: try decodeNil(forKey: key) ? nil : try decode(V.self, forKey: key))
        field.isSet = true
        return field
    }
}
