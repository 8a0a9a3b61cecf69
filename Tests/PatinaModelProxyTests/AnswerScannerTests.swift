import Foundation
import Testing
@testable import PatinaModelProxy

/// Usage as the proxy reads it from answers passing through: streamed (SSE) and whole (JSON).
@Suite struct AnswerScannerTests {
    static let stream = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"usage":{"input_tokens":1200,"output_tokens":1,"cache_read_input_tokens":300,"cache_creation_input_tokens":40,"cache_creation":{"ephemeral_5m_input_tokens":30,"ephemeral_1h_input_tokens":10}}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\\"error\\" is only text here"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":57,"server_tool_use":{"web_search_requests":2}}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    static func scan(_ text: String, contentType: String = "text/event-stream; charset=utf-8", pieces: Int) -> AnswerSummary {
        var scanner = AnswerScanner(contentType: contentType)
        let bytes = Array(text.utf8)
        let size = max(1, bytes.count / pieces)
        var offset = 0
        while offset < bytes.count {
            scanner.feed(Data(bytes[offset..<min(offset + size, bytes.count)]))
            offset += size
        }
        return scanner.finish()
    }

    @Test("message_start then message_delta: the delta's counts are totals, not increments", arguments: [1, 7, 100, 5000])
    func streamedUsage(pieces: Int) {
        let summary = Self.scan(Self.stream, pieces: pieces)
        #expect(summary.model == "claude-sonnet-4-5-20250929")
        #expect(summary.stopReason == "end_turn")
        #expect(summary.errorType == nil)
        var expected = APIUsage(inputTokens: 1200, outputTokens: 57, cacheReadTokens: 300, cacheWriteTokens: 40,
                                cacheWrite1hTokens: 10, webSearchRequests: 2)
        expected.speed = nil
        #expect(summary.usage == expected)
    }

    @Test func carriageReturnsAndMissingEventLines() {
        let text = Self.stream
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("event:") }
            .joined(separator: "\r\n")
        let summary = Self.scan(text, pieces: 3)
        #expect(summary.usage?.inputTokens == 1200)
        #expect(summary.usage?.outputTokens == 57)
    }

    @Test func newerDeltasCarryEveryCount() {
        let text = """
            event: message_start
            data: {"type":"message_start","message":{"model":"claude-opus-5-5","usage":{"input_tokens":5,"output_tokens":1}}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":9,"cache_read_input_tokens":4,"output_tokens":12,"speed":"standard","inference_geo":"us"}}


            """
        let usage = Self.scan(text, pieces: 2).usage
        #expect(usage?.inputTokens == 9 && usage?.cacheReadTokens == 4 && usage?.outputTokens == 12)
        #expect(usage?.inferenceGeo == "us" && usage?.speed == "standard")
    }

    @Test func errorEventInAStream() {
        let text = """
            event: message_start
            data: {"type":"message_start","message":{"model":"claude-opus-5-5","usage":{"input_tokens":5,"output_tokens":1}}}

            event: error
            data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}


            """
        let summary = Self.scan(text, pieces: 4)
        #expect(summary.errorType == "overloaded_error")
        #expect(summary.errorMessage == "Overloaded")
        #expect(summary.usage?.inputTokens == 5)
    }

    @Test func wholeJSONAnswer() {
        let body = #"{"id":"msg_2","type":"message","model":"claude-haiku-5-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#
        let summary = Self.scan(body, contentType: "application/json", pieces: 3)
        #expect(summary.model == "claude-haiku-5-5")
        #expect(summary.usage == APIUsage(inputTokens: 10, outputTokens: 3))
        #expect(summary.stopReason == "end_turn")
    }

    @Test func errorJSONAnswerHasNoUsage() {
        let body = #"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#
        let summary = Self.scan(body, contentType: "application/json", pieces: 1)
        #expect(summary.usage == nil)
        #expect(summary.errorType == "rate_limit_error")
        #expect(summary.errorMessage == "slow down")
    }

    @Test func garbageIsNoUsage() {
        #expect(Self.scan("not json at all", contentType: "application/json", pieces: 1).usage == nil)
        #expect(Self.scan("data: {broken\n\n", pieces: 1).usage == nil)
    }
}
