import Foundation
import PatinaTestSupport
import Testing
@testable import PatinaModelProxy

/// The shipped price table and what answers cost by it.
@Suite struct PriceTableTests {
    static let shippedFile = TestEnvironment.packageRoot.appendingPathComponent("templates/model-prices.json")

    static func shipped() throws -> PriceTable {
        try PriceTable.parse(try Data(contentsOf: shippedFile), source: "templates/model-prices.json")
    }

    @Test func everyModelClaudeCodePicksByDefaultHasAPrice() throws {
        let table = try Self.shipped()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.shippedFile)) as? [String: Any])
        let defaults = try #require(object["claude_code_defaults"] as? [String: String])
        #expect(Set(defaults.keys).isSuperset(of: ["opus", "sonnet", "haiku"]))
        for (alias, model) in defaults {
            #expect(table.price(for: model) != nil, "no price for \(alias) → \(model)")
        }
        // Every price is complete: cache reads and writes (5 minutes and 1 hour) and web searches.
        for (id, price) in table.models {
            #expect(price.rates.cacheRead != nil && price.rates.cacheWrite5m != nil && price.rates.cacheWrite1h != nil && price.webSearch != nil, "\(id)")
        }
    }

    @Test("dated and suffixed ids find their model", arguments: [
        ("claude-sonnet-4-5-20250929", 3.0), ("claude-sonnet-4-5", 3.0), ("claude-haiku-4-5-20251001", 1.0),
        ("claude-opus-4-20250514", 15.0), ("claude-opus-4-1-20250805", 15.0), ("claude-sonnet-4-6[1m]", 3.0),
        ("claude-opus-5-5", 4.0), ("claude-sonnet-5-5", 2.0), ("claude-haiku-5-5", 0.1),
        ("opus", 4.0), ("sonnet", 2.0), ("haiku", 0.1),
    ])
    func lookup(model: String, input: Double) throws {
        #expect(try Self.shipped().price(for: model)?.rates.input == input)
    }

    @Test func unknownModelsHaveNoPrice() throws {
        let table = try Self.shipped()
        #expect(table.price(for: "claude-nonesuch-9") == nil)
        #expect(table.price(for: "gpt-4o") == nil)
        #expect(table.cost(model: "claude-nonesuch-9", usage: APIUsage(inputTokens: 10)) == .failure(.unknownModel("claude-nonesuch-9")))
        #expect(table.cost(model: nil, usage: APIUsage(inputTokens: 10)) == .failure(.noModel))
    }

    @Test func costOfOneAnswer() throws {
        let table = try Self.shipped()
        // Sonnet 4.5: $3 in, $15 out, $0.30 cache read, $3.75 5-minute write, $6 1-hour write, $0.01 a search.
        let usage = APIUsage(inputTokens: 1200, outputTokens: 57, cacheReadTokens: 300, cacheWriteTokens: 40,
                             cacheWrite1hTokens: 10, webSearchRequests: 2)
        let expected = (1200 * 3.0 + 57 * 15.0 + 300 * 0.3 + 30 * 3.75 + 10 * 6.0) / 1_000_000 + 2 * 0.01
        #expect(try table.cost(model: "claude-sonnet-4-5-20250929", usage: usage).get() == expected)
    }

    @Test func longPromptsAndRegionsChangeTheRates() throws {
        let table = try Self.shipped()
        // Haiku 5.5 charges other rates above 100,000 prompt tokens (input + cache reads + writes).
        let short = APIUsage(inputTokens: 60_000, outputTokens: 10, cacheReadTokens: 40_000)
        let long = APIUsage(inputTokens: 60_000, outputTokens: 10, cacheReadTokens: 40_001)
        #expect(try table.cost(model: "claude-haiku-5-5", usage: short).get() == (60_000 * 0.1 + 10 * 0.5 + 40_000 * 0.01) / 1_000_000)
        #expect(try table.cost(model: "claude-haiku-5-5", usage: long).get() == (60_000 * 0.5 + 10 * 2.5 + 40_001 * 0.05) / 1_000_000)
        var us = APIUsage(inputTokens: 1_000_000)
        us.inferenceGeo = "us"
        #expect(try table.cost(model: "claude-sonnet-4-5", usage: us).get() == 3.0 * 1.1)
        var fast = APIUsage(inputTokens: 10)
        fast.speed = "fast"
        #expect(table.cost(model: "claude-opus-5-5", usage: fast) == .failure(.missingRate(model: "claude-opus-5-5", rate: "fast")))
    }

    @Test func configAddsAndOverridesPrices() throws {
        var table = try Self.shipped()
        try table.add([
            "claude-sonnet-4-5": ["input": 1, "output": 2],
            "my-gateway-model": ["input": 0.5, "output": 1.5, "cache_read": 0.05],
        ], source: ".patina/config.json model_prices")
        #expect(try table.cost(model: "claude-sonnet-4-5-20250929", usage: APIUsage(inputTokens: 1_000_000, outputTokens: 1_000_000)).get() == 3)
        #expect(try table.cost(model: "my-gateway-model", usage: APIUsage(inputTokens: 2_000_000, cacheReadTokens: 1_000_000)).get() == 1.05)
        // A rate the entry does not give is not guessed.
        #expect(table.cost(model: "my-gateway-model", usage: APIUsage(inputTokens: 1, cacheWriteTokens: 5))
                == .failure(.missingRate(model: "my-gateway-model", rate: "cache_write_5m")))
        #expect(try table.cost(model: "my-gateway-model", usage: APIUsage(inputTokens: 1, cacheWriteTokens: 0)).get() == 0.5 / 1_000_000)
    }

    @Test("bad prices are one clear error", arguments: [
        (#"{"m": {"input": 1}}"#, "needs numbers \"input\" and \"output\""),
        (#"{"m": {"input": "1", "output": 2}}"#, "needs numbers"),
        (#"{"m": {"input": -1, "output": 2}}"#, "at least 0"),
        (#"{"m": 3}"#, "not a price object"),
    ])
    func badPrices(json: String, expected: String) throws {
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        var table = PriceTable()
        #expect {
            try table.add(entries, source: "model_prices")
        } throws: { error in
            "\(error)".contains(expected) && "\(error)".contains("model_prices: m")
        }
    }
}
