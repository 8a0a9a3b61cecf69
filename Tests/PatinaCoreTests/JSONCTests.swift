import Foundation
import Testing
@testable import PatinaCore

@Suite("JSONC")
struct JSONCTests {
    @Test func commentsAndTrailingCommasAreJSONC() throws {
        let text = """
            // devcontainer.json
            {
              /* the image */ "image": "debian:bookworm", // trailing comment
              "forwardPorts": [3000, 8080,],
              "containerEnv": { "A": "x // not a comment", "B": "/* nor this */", },
              "n": -1.5e2, "t": true, "f": false, "z": null,
            }
            """
        let value = try JSONC.parse(text)
        let object = try #require(value.object)
        #expect(object.keys == ["image", "forwardPorts", "containerEnv", "n", "t", "f", "z"])
        #expect(object["image"] == .string("debian:bookworm"))
        #expect(object["forwardPorts"] == .array([.number(3000), .number(8080)]))
        #expect(object["containerEnv"]?.object?["A"] == .string("x // not a comment"))
        #expect(object["containerEnv"]?.object?["B"] == .string("/* nor this */"))
        #expect(object["n"] == .number(-150))
        #expect(object["z"] == .null)
    }

    @Test func escapesAndUnicode() throws {
        let value = try JSONC.parse(#"{"s": "a\"b\\c\/d\n\t\u00e9\ud83d\ude00", "é": "ü"}"#)
        #expect(value.object?["s"] == .string("a\"b\\c/d\n\té😀"))
        #expect(value.object?["é"] == .string("ü"))
    }

    @Test func scalarTextOfNumbersAndBooleans() {
        #expect(JSONValue.number(3).scalarText == "3")
        #expect(JSONValue.number(1.5).scalarText == "1.5")
        #expect(JSONValue.bool(true).scalarText == "true")
        #expect(JSONValue.null.scalarText == nil)
    }

    @Test func duplicateKeysKeepTheLastValueInTheFirstPlace() throws {
        let object = try #require(try JSONC.parse(#"{"a": 1, "b": 2, "a": 3}"#).object)
        #expect(object.keys == ["a", "b"])
        #expect(object["a"] == .number(3))
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        let text: String
        let line: Int
        let column: Int
        let message: String
        var testDescription: String { message }
    }

    @Test(arguments: [
        Bad(text: "{\n  \"image\": \"x\"\n  \"name\": \"y\"\n}", line: 3, column: 3, message: "expected ',' or '}'"),
        Bad(text: "{\"a\": [1, 2}", line: 1, column: 12, message: "expected ',' or ']'"),
        Bad(text: "{\n  /* never closed\n", line: 2, column: 3, message: "comment is never closed"),
        Bad(text: "{\"a\": \"open", line: 1, column: 7, message: "string is never closed"),
        Bad(text: "{a: 1}", line: 1, column: 2, message: "expected a quoted key"),
        Bad(text: "{\"a\": tru}", line: 1, column: 7, message: "expected a value"),
        Bad(text: "{\"a\": 01}", line: 1, column: 7, message: "cannot start with 0"),
        Bad(text: "", line: 1, column: 1, message: "the file is empty"),
        Bad(text: "{} {}", line: 1, column: 4, message: "after the end of the value"),
        Bad(text: "{\"é\": \"x\"\n,,}", line: 2, column: 2, message: "expected a quoted key"),
    ])
    func errorsNameLineAndColumn(_ bad: Bad) {
        #expect {
            _ = try JSONC.parse(bad.text)
        } throws: { error in
            guard let error = error as? JSONCError else { return false }
            return error.line == bad.line && error.column == bad.column && error.message.contains(bad.message)
        }
    }
}
