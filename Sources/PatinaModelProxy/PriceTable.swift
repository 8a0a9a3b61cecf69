import Foundation

/// What one model costs, in US dollars per million tokens (web searches: per search).
public struct ModelPrice: Codable, Sendable, Equatable {
    public struct Rates: Codable, Sendable, Equatable {
        public var input: Double
        public var output: Double
        public var cacheWrite5m: Double?
        public var cacheWrite1h: Double?
        public var cacheRead: Double?

        public init(input: Double, output: Double, cacheWrite5m: Double? = nil, cacheWrite1h: Double? = nil, cacheRead: Double? = nil) {
            self.input = input
            self.output = output
            self.cacheWrite5m = cacheWrite5m
            self.cacheWrite1h = cacheWrite1h
            self.cacheRead = cacheRead
        }

        enum CodingKeys: String, CodingKey {
            case input, output
            case cacheWrite5m = "cache_write_5m"
            case cacheWrite1h = "cache_write_1h"
            case cacheRead = "cache_read"
        }
    }

    /// Other rates for a prompt (input, cache reads and writes together) above a size.
    public struct LongPrompt: Codable, Sendable, Equatable {
        public var abovePromptTokens: Int
        public var rates: Rates

        enum CodingKeys: String, CodingKey {
            case abovePromptTokens = "above_prompt_tokens"
        }

        public init(abovePromptTokens: Int, rates: Rates) {
            self.abovePromptTokens = abovePromptTokens
            self.rates = rates
        }

        public init(from decoder: Decoder) throws {
            abovePromptTokens = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .abovePromptTokens)
            rates = try Rates(from: decoder)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(abovePromptTokens, forKey: .abovePromptTokens)
            try rates.encode(to: encoder)
        }
    }

    public var rates: Rates
    public var webSearch: Double?
    public var longPrompt: LongPrompt?
    /// Rates for `usage.speed == "fast"`; without them a fast answer has no price.
    public var fast: Rates?
    /// Other names the API answers with for this model (dated ids).
    public var aliases: [String]

    public init(rates: Rates, webSearch: Double? = nil, longPrompt: LongPrompt? = nil, fast: Rates? = nil, aliases: [String] = []) {
        self.rates = rates
        self.webSearch = webSearch
        self.longPrompt = longPrompt
        self.fast = fast
        self.aliases = aliases
    }

    enum CodingKeys: String, CodingKey {
        case webSearch = "web_search"
        case longPrompt = "long_prompt"
        case fast, aliases
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rates = try Rates(from: decoder)
        webSearch = try c.decodeIfPresent(Double.self, forKey: .webSearch)
        longPrompt = try c.decodeIfPresent(LongPrompt.self, forKey: .longPrompt)
        fast = try c.decodeIfPresent(Rates.self, forKey: .fast)
        aliases = try c.decodeIfPresent([String].self, forKey: .aliases) ?? []
    }

    public func encode(to encoder: Encoder) throws {
        try rates.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(webSearch, forKey: .webSearch)
        try c.encodeIfPresent(longPrompt, forKey: .longPrompt)
        try c.encodeIfPresent(fast, forKey: .fast)
        if !aliases.isEmpty { try c.encode(aliases, forKey: .aliases) }
    }
}

/// Prices per model: the shipped table (`templates/model-prices.json`), with a
/// repository's `model_prices` on top. A model it does not know, or a kind of usage
/// it has no rate for, has no price: the cost is unknown, never guessed.
public struct PriceTable: Sendable, Equatable {
    public private(set) var models: [String: ModelPrice]
    /// `usage.inference_geo` → factor on the token cost (e.g. "us": 1.1).
    public private(set) var inferenceGeoMultipliers: [String: Double]
    /// Claude Code's model aliases (`opus`, `sonnet`, `haiku`) → the model each stands for
    /// (the file's `claude_code_defaults`), for checking a `--model` alias before a run.
    public private(set) var claudeCodeAliases: [String: String]

    public init(models: [String: ModelPrice] = [:], inferenceGeoMultipliers: [String: Double] = [:], claudeCodeAliases: [String: String] = [:]) {
        self.models = models
        self.inferenceGeoMultipliers = inferenceGeoMultipliers
        self.claudeCodeAliases = claudeCodeAliases
    }

    /// The shipped file's shape: `{"models": {ID: {...}}, "inference_geo_multipliers": {...}}`;
    /// keys starting with "//" are comments.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static func parse(_ data: Data, source: String) throws -> PriceTable {
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw Invalid(description: "\(source): not a JSON object")
            }
            object = parsed
        } catch let error as Invalid {
            throw error
        } catch {
            throw Invalid(description: "\(source): not valid JSON")
        }
        guard let models = object["models"] as? [String: Any] else {
            throw Invalid(description: "\(source): no \"models\" object")
        }
        var table = PriceTable()
        table.inferenceGeoMultipliers = object["inference_geo_multipliers"] as? [String: Double] ?? [:]
        table.claudeCodeAliases = object["claude_code_defaults"] as? [String: String] ?? [:]
        try table.add(models, source: source)
        return table
    }

    /// Adds or replaces models from `{ID: {"input": …, "output": …, …}}` (a config's `model_prices`).
    public mutating func add(_ entries: [String: Any], source: String) throws {
        for (id, value) in entries where !id.hasPrefix("//") {
            guard value is [String: Any] else { throw Invalid(description: "\(source): \(id): not a price object") }
            let data = try JSONSerialization.data(withJSONObject: value)
            do {
                let price = try JSONDecoder().decode(ModelPrice.self, from: data)
                try Self.validate(price, id: id, source: source)
                models[id] = price
            } catch let error as Invalid {
                throw error
            } catch {
                throw Invalid(description: "\(source): \(id): needs numbers \"input\" and \"output\" (USD per million tokens); optional \"cache_write_5m\", \"cache_write_1h\", \"cache_read\", \"web_search\"")
            }
        }
    }

    /// Adds or replaces models (a config's `model_prices`, already decoded).
    public mutating func add(_ prices: [String: ModelPrice], source: String) throws {
        for (id, price) in prices {
            try Self.validate(price, id: id, source: source)
            models[id] = price
        }
    }

    static func validate(_ price: ModelPrice, id: String, source: String) throws {
        var values = [price.rates.input, price.rates.output] + [price.rates.cacheWrite5m, price.rates.cacheWrite1h, price.rates.cacheRead, price.webSearch].compactMap { $0 }
        if let long = price.longPrompt { values += [long.rates.input, long.rates.output] }
        guard values.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw Invalid(description: "\(source): \(id): prices must be numbers of at least 0")
        }
    }

    /// The entry for a model as the API names it: its id, an alias, or the id with a
    /// date suffix (`-20250929`) or context suffix (`[1m]`) taken off.
    public func price(for model: String) -> ModelPrice? {
        if let exact = models[model] { return exact }
        if let id = claudeCodeAliases[model.lowercased()], id != model { return price(for: id) }
        if let aliased = models.values.first(where: { $0.aliases.contains(model) }) { return aliased }
        var base = model
        if base.hasSuffix("]"), let open = base.lastIndex(of: "[") { base = String(base[..<open]) }
        if let range = base.range(of: #"-[0-9]{8}$"#, options: .regularExpression) { base.removeSubrange(range) }
        if base != model { return price(for: base) }
        return nil
    }

    /// Why an answer has no price, naming what to add.
    public enum Unpriced: Error, Sendable, Equatable, CustomStringConvertible {
        case unknownModel(String)
        case missingRate(model: String, rate: String)
        case noModel

        public var description: String {
            switch self {
            case .unknownModel(let model): "no price for model \(model)"
            case .missingRate(let model, let rate): "no \(rate) price for model \(model)"
            case .noModel: "the answer did not name its model"
            }
        }
    }

    /// The cost of one answer in US dollars, or why it has none.
    public func cost(model: String?, usage: APIUsage) -> Result<Double, Unpriced> {
        guard let model else { return .failure(.noModel) }
        guard let price = price(for: model) else { return .failure(.unknownModel(model)) }
        var rates = price.rates
        if usage.speed == "fast" {
            guard let fast = price.fast else { return .failure(.missingRate(model: model, rate: "fast")) }
            rates = fast
        } else if let long = price.longPrompt, usage.promptTokens > long.abovePromptTokens {
            rates = long.rates
        }
        func rate(_ value: Double?, _ name: String, tokens: Int) -> Result<Double, Unpriced> {
            guard tokens > 0 else { return .success(0) }
            guard let value else { return .failure(.missingRate(model: model, rate: name)) }
            return .success(Double(tokens) * value)
        }
        let oneHour = min(usage.cacheWrite1hTokens, usage.cacheWriteTokens)
        var perMillion = Double(usage.inputTokens) * rates.input + Double(usage.outputTokens) * rates.output
        for part in [rate(rates.cacheRead, "cache_read", tokens: usage.cacheReadTokens),
                     rate(rates.cacheWrite5m, "cache_write_5m", tokens: usage.cacheWriteTokens - oneHour),
                     rate(rates.cacheWrite1h, "cache_write_1h", tokens: oneHour)] {
            switch part {
            case .success(let value): perMillion += value
            case .failure(let why): return .failure(why)
            }
        }
        var cost = perMillion / 1_000_000
        if let geo = usage.inferenceGeo, let factor = inferenceGeoMultipliers[geo] { cost *= factor }
        if usage.webSearchRequests > 0 {
            guard let search = price.webSearch else { return .failure(.missingRate(model: model, rate: "web_search")) }
            cost += Double(usage.webSearchRequests) * search
        }
        return .success(cost)
    }
}
