import Foundation

/// A JSON value as read from a JSONC file, object keys in file order.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var object: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// Strings, numbers and booleans as the text a shell or an environment variable
    /// would hold (`true`, `3`, `1.5`); nil for null, arrays and objects.
    public var scalarText: String? {
        switch self {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        default: return nil
        }
    }

    /// What the value is, for messages: "a string", "an object".
    public var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON object that remembers the order of its keys (a later duplicate wins, in place).
public struct JSONObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    private var values: [String: JSONValue] = [:]

    public init() {}

    public subscript(key: String) -> JSONValue? {
        get { values[key] }
        set {
            if let newValue {
                if values[key] == nil { keys.append(key) }
                values[key] = newValue
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var entries: [(key: String, value: JSONValue)] { keys.map { ($0, values[$0]!) } }
    public var isEmpty: Bool { keys.isEmpty }
}

/// A JSONC file that does not parse: where, and what is wrong there.
public struct JSONCError: Error, Equatable, CustomStringConvertible, Sendable {
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

/// JSON with comments (`//`, `/* */`) and trailing commas: the format of
/// devcontainer.json and devcontainer-feature.json. Errors name the line and column.
public enum JSONC {
    public static func parse(_ text: String) throws(JSONCError) -> JSONValue {
        var parser = Parser(bytes: Array(text.utf8))
        return try parser.document()
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
            // A UTF-8 byte order mark is not content.
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        }

        mutating func document() throws(JSONCError) -> JSONValue {
            try skipSpace()
            guard index < bytes.count else { throw error("the file is empty") }
            let value = try self.value(depth: 0)
            try skipSpace()
            guard index == bytes.count else { throw error("unexpected \(describe(index)) after the end of the value") }
            return value
        }

        func error(_ message: String, at offset: Int? = nil) -> JSONCError {
            let offset = min(offset ?? index, bytes.count)
            var line = 1, column = 1
            var i = 0
            while i < offset {
                if bytes[i] == 0x0A {
                    line += 1
                    column = 1
                } else if bytes[i] & 0xC0 != 0x80 {
                    column += 1  // count characters, not continuation bytes
                }
                i += 1
            }
            return JSONCError(line: line, column: column, message: message)
        }

        func describe(_ offset: Int) -> String {
            guard offset < bytes.count else { return "end of file" }
            let byte = bytes[offset]
            if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            return String(format: "byte 0x%02x", byte)
        }

        mutating func skipSpace() throws(JSONCError) {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D:
                    index += 1
                case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "/"):
                    while index < bytes.count && bytes[index] != 0x0A { index += 1 }
                case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                    let start = index
                    index += 2
                    while index + 1 < bytes.count && !(bytes[index] == UInt8(ascii: "*") && bytes[index + 1] == UInt8(ascii: "/")) {
                        index += 1
                    }
                    guard index + 1 < bytes.count else { throw error("a /* comment is never closed", at: start) }
                    index += 2
                default:
                    return
                }
            }
        }

        mutating func value(depth: Int) throws(JSONCError) -> JSONValue {
            guard depth < 256 else { throw error("nested too deeply") }
            guard index < bytes.count else { throw error("expected a value, found the end of the file") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("expected a value, found \(describe(index))")
            }
        }

        mutating func literal(_ word: String) throws(JSONCError) {
            let utf8 = Array(word.utf8)
            guard bytes.count - index >= utf8.count, Array(bytes[index..<index + utf8.count]) == utf8 else {
                throw error("expected a value, found \(describe(index))")
            }
            index += utf8.count
        }

        mutating func object(depth: Int) throws(JSONCError) -> JSONValue {
            index += 1
            var object = JSONObject()
            try skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(object)
            }
            while true {
                try skipSpace()
                guard index < bytes.count else { throw error("an object is never closed (missing '}')") }
                if bytes[index] == UInt8(ascii: "}") {  // after a trailing comma
                    index += 1
                    return .object(object)
                }
                guard bytes[index] == UInt8(ascii: "\"") else { throw error("expected a quoted key, found \(describe(index))") }
                let key = try string()
                try skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                    throw error("expected ':' after the key \"\(key)\", found \(describe(index))")
                }
                index += 1
                try skipSpace()
                object[key] = try value(depth: depth + 1)
                try skipSpace()
                guard index < bytes.count else { throw error("an object is never closed (missing '}')") }
                switch bytes[index] {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return .object(object)
                default: throw error("expected ',' or '}' in an object, found \(describe(index))")
                }
            }
        }

        mutating func array(depth: Int) throws(JSONCError) -> JSONValue {
            index += 1
            var items: [JSONValue] = []
            while true {
                try skipSpace()
                guard index < bytes.count else { throw error("an array is never closed (missing ']')") }
                if bytes[index] == UInt8(ascii: "]") {  // empty, or after a trailing comma
                    index += 1
                    return .array(items)
                }
                items.append(try value(depth: depth + 1))
                try skipSpace()
                guard index < bytes.count else { throw error("an array is never closed (missing ']')") }
                switch bytes[index] {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"): index += 1; return .array(items)
                default: throw error("expected ',' or ']' in an array, found \(describe(index))")
                }
            }
        }

        mutating func string() throws(JSONCError) -> String {
            let start = index
            index += 1
            var out: [UInt8] = []
            while true {
                guard index < bytes.count else { throw error("a string is never closed (missing '\"')", at: start) }
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw error("a string is never closed (missing '\"')", at: start) }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar), bytes.count - index >= 6,
                           bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw error("invalid \\u surrogate pair", at: index - 6) }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape", at: index - 6) }
                        out += Array(String(Character(unicode)).utf8)
                    default:
                        throw error("invalid escape '\\\(Character(Unicode.Scalar(escape)))' in a string", at: index - 2)
                    }
                case 0x00..<0x20:
                    throw error("a control character inside a string (a line break must be written \\n)")
                default:
                    out.append(byte)
                    index += 1
                }
            }
        }

        mutating func hex4() throws(JSONCError) -> UInt32 {
            guard bytes.count - index >= 4 else { throw error("a \\u escape needs four hex digits") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw error("a \\u escape needs four hex digits")
                }
                value = value * 16 + digit
                index += 1
            }
            return value
        }

        mutating func number() throws(JSONCError) -> JSONValue {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            func digits() -> Int {
                let from = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                return index - from
            }
            let integer = digits()
            guard integer > 0 else { throw error("expected digits in a number", at: start) }
            if integer > 1, bytes[index - integer] == UInt8(ascii: "0") { throw error("a number cannot start with 0", at: start) }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error("expected digits after '.' in a number", at: start) }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw error("expected digits in a number's exponent", at: start) }
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            guard let value = Double(text) else { throw error("invalid number \(text)", at: start) }
            return .number(value)
        }
    }
}
