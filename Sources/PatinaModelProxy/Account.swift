import Foundation
import Synchronization

/// A budget shared by several runs (a batch's `--max-total-cost`): every run's proxy
/// adds what its answers cost, and refuses new requests once the total reached the limit.
public final class SpendingLimit: Sendable {
    public let limitUSD: Double
    private let state: Mutex<(spent: Double, unknown: Bool)>

    /// `alreadySpent`: what earlier runs counted against this limit (a resumed batch).
    public init(limitUSD: Double, alreadySpent: Double = 0) {
        self.limitUSD = limitUSD
        state = Mutex((alreadySpent, false))
    }

    public var spentUSD: Double { state.withLock { $0.spent } }

    /// True once the spending reached the limit, or some spending could not be priced.
    public var isReached: Bool { state.withLock { $0.spent >= limitUSD || $0.unknown } }

    func add(_ cost: Double?) {
        state.withLock {
            if let cost { $0.spent = Money.exact($0.spent + cost) } else { $0.unknown = true }
        }
    }
}

/// A run's model API use as the proxy counted it: the numbers in run.json. Nothing the
/// sandbox prints changes them.
public struct ModelUsage: Sendable, Equatable {
    /// Every request the proxy answered (forwarded or refused).
    public var requests = 0
    /// Messages API answers (HTTP 200) to a request that offered tools: the agent's model turns.
    public var turns = 0
    public var usage = APIUsage()
    /// The sum of every answer's cost; nil once an answer had no price.
    public var costUSD: Double? = 0
    /// Why some answer had no price (model names, missing rates), each once.
    public var unpriced: [String] = []
    /// HTTP status → how many answers had it (upstream answers only).
    public var statuses: [Int: Int] = [:]
    /// Requests the proxy refused because a budget was reached.
    public var refusedForBudget = 0
    /// Requests with a wrong or missing placeholder credential.
    public var refusedCredential = 0
    /// Requests refused for asking the API for a server-side network feature: feature → count.
    public var refusedFeatures: [String: Int] = [:]
    /// Clients answered and dropped for breaking the proxy's rules or caps (malformed,
    /// too large, too slow, too many connections or bytes in flight).
    public var refusedClients = 0
    /// The last HTTP status the upstream answered a Messages request with.
    public var lastStatus: Int?
    /// Set when the upstream could not be reached, for good (see `ModelProxy`).
    public var unreachable: String?
    /// Set once a request was refused for the budget: why.
    public var budgetExceeded: String?
    /// Set once a request was refused because, under a budget, its model has no price: why.
    public var refusedUnpriced: String?

    public var rateLimited: Int { statuses[429] ?? 0 }
    public var overloaded: Int { statuses[529] ?? 0 }

    public init() {}

    /// The totals again from api.jsonl's lines (a run whose patina died before it counted them).
    public init(replaying entries: [APILogEntry]) {
        for entry in entries {
            if !entry.method.isEmpty { requests += 1 }
            if let feature = entry.feature { refusedFeatures[feature, default: 0] += 1 }
            if entry.refused == "credential" { refusedCredential += 1 }
            if entry.refused == "budget" { refusedForBudget += 1 }
            if let refused = entry.refused, ["bad_request", "too_large", "timeout", "in_flight", "connections"].contains(refused) {
                refusedClients += 1
            }
            guard entry.refused == nil, entry.status > 0 else { continue }
            statuses[entry.status, default: 0] += 1
            guard entry.path == "/v1/messages" else { continue }
            lastStatus = entry.status
            if entry.status == 200 && (entry.tools ?? 0) > 0 { turns += 1 }
            guard let used = entry.usage else { continue }
            usage.inputTokens += used.inputTokens
            usage.outputTokens += used.outputTokens
            usage.cacheReadTokens += used.cacheReadTokens
            usage.cacheWriteTokens += used.cacheWriteTokens
            usage.cacheWrite1hTokens += used.cacheWrite1hTokens
            usage.webSearchRequests += used.webSearchRequests
            if let cost = entry.costUSD, let total = costUSD { costUSD = Money.exact(total + cost) } else { costUSD = nil }
            if let unpriced = entry.unpriced, !self.unpriced.contains(unpriced) { self.unpriced.append(unpriced) }
        }
    }
}

/// Sums of dollar amounts without binary noise (0.00138, not 0.0013800000000000002).
public enum Money {
    /// `usd` rounded to 10 decimals: far below any price, far above a double's noise.
    public static func exact(_ usd: Double) -> Double {
        (usd * 1e10).rounded() / 1e10
    }

    /// For people: two decimals from $1, at least four below, more when `usd` has them
    /// (a budget of $0.0025 reads $0.0025, not $0.00).
    public static func format(_ usd: Double) -> String {
        if usd >= 1 || usd == 0 { return String(format: "$%.2f", usd) }
        for decimals in 4...8 {
            let text = String(format: "%.\(decimals)f", usd)
            if abs((Double(text) ?? 0) - usd) < 1e-12 { return "$" + text }
        }
        return String(format: "$%.8f", usd)
    }
}

/// What the proxy decides before it forwards a Messages request.
enum Admission: Equatable {
    case forward
    case refuse(status: Int, type: String, message: String)
}

/// The per-run ledger behind the proxy: counts, cost, budgets. Thread-safe.
final class Account: Sendable {
    let prices: PriceTable
    let maxCostUSD: Double?
    let sharedLimit: SpendingLimit?
    private let state = Mutex(ModelUsage())

    init(prices: PriceTable, maxCostUSD: Double?, sharedLimit: SpendingLimit?) {
        self.prices = prices
        self.maxCostUSD = maxCostUSD
        self.sharedLimit = sharedLimit
    }

    var snapshot: ModelUsage { state.withLock { $0 } }

    func countRequest() {
        state.withLock { $0.requests += 1 }
    }

    func countRefusedCredential() {
        state.withLock { $0.refusedCredential += 1 }
    }

    func countRefusedFeature(_ feature: String) {
        state.withLock { $0.refusedFeatures[feature, default: 0] += 1 }
    }

    func countRefusedClient() {
        state.withLock { $0.refusedClients += 1 }
    }

    /// Before forwarding a Messages request for `model`: refuse once a budget is reached.
    /// With a budget, a model without a price is refused too: its cost could not be counted.
    func admit(model: String?) -> Admission {
        let budgeted = maxCostUSD != nil || sharedLimit != nil
        var refusal: String?
        state.withLock { usage in
            if let maxCostUSD {
                if let cost = usage.costUSD, cost >= maxCostUSD {
                    refusal = "the run's budget (--max-cost \(Money.format(maxCostUSD))) is spent: \(Money.format(cost)) so far"
                } else if usage.costUSD == nil {
                    refusal = "the run's budget (--max-cost \(Money.format(maxCostUSD))) cannot be kept: an answer had no price ("
                        + usage.unpriced.joined(separator: "; ") + ")"
                }
            }
            if refusal == nil, let sharedLimit, sharedLimit.isReached {
                refusal = "the batch's budget (--max-total-cost \(Money.format(sharedLimit.limitUSD))) is spent: \(Money.format(sharedLimit.spentUSD)) so far"
            }
            if refusal != nil {
                usage.refusedForBudget += 1
                if usage.budgetExceeded == nil { usage.budgetExceeded = refusal }
            }
        }
        if let refusal {
            return .refuse(status: 402, type: "billing_error", message: "patina: \(refusal); no further requests are forwarded")
        }
        if budgeted, let model, prices.price(for: model) == nil {
            let message = "patina: no price for model \(model), so its cost cannot be counted against the budget; add it under \"model_prices\" in .patina/config.json"
            state.withLock { if $0.refusedUnpriced == nil { $0.refusedUnpriced = message } }
            return .refuse(status: 400, type: "invalid_request_error", message: message)
        }
        return .forward
    }

    /// Records an upstream answer; returns its cost (nil: no price) and, when it has none, why.
    func record(status: Int, isMessages: Bool, offeredTools: Bool, summary: AnswerSummary, requestedModel: String?) -> (cost: Double?, unpriced: String?) {
        var cost: Double? = 0
        var unpriced: String?
        if isMessages, let usage = summary.usage {
            switch prices.cost(model: summary.model ?? requestedModel, usage: usage) {
            case .success(let value): cost = value
            case .failure(let why):
                cost = nil
                unpriced = why.description
            }
        }
        state.withLock { account in
            account.statuses[status, default: 0] += 1
            if isMessages {
                account.lastStatus = status
                if status == 200 && offeredTools { account.turns += 1 }
            }
            if let usage = summary.usage, isMessages {
                account.usage.inputTokens += usage.inputTokens
                account.usage.outputTokens += usage.outputTokens
                account.usage.cacheReadTokens += usage.cacheReadTokens
                account.usage.cacheWriteTokens += usage.cacheWriteTokens
                account.usage.cacheWrite1hTokens += usage.cacheWrite1hTokens
                account.usage.webSearchRequests += usage.webSearchRequests
                if let cost, let total = account.costUSD { account.costUSD = Money.exact(total + cost) } else { account.costUSD = nil }
                if let unpriced, !account.unpriced.contains(unpriced) { account.unpriced.append(unpriced) }
            }
        }
        if isMessages, summary.usage != nil { sharedLimit?.add(cost) }
        return (cost, unpriced)
    }

    func markUnreachable(_ reason: String) {
        state.withLock { if $0.unreachable == nil { $0.unreachable = reason } }
    }
}
