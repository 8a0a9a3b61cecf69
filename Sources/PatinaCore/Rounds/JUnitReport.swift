import Foundation

/// A check's JUnit XML report (pytest `--junitxml`, `swift test --xunit-output`, go-junit-report,
/// cargo nextest, jest-junit, Maven Surefire), read as untrusted input: the check runs code the
/// agent wrote. A small parser of its own, bounded in what it reads and keeps: no DTD, no entity
/// but XML's five and character references, no external anything. What it cannot read is a note.
public struct JUnitReport: Sendable, Equatable {
    public var counts: TestCounts
    /// The failing tests, in the report's order, at most `keptFailures`.
    public var failures: [TestFailure]
    /// Failing tests beyond those kept.
    public var failuresNotKept: Int

    /// The most of a report that is read.
    public static let byteLimit = 8 << 20
    public static let keptFailures = 50
    static let fieldLimit = 1000
    static let depthLimit = 64

    public struct Unreadable: Error, CustomStringConvertible, Equatable {
        public let reason: String
        public var description: String { reason }
    }

    public static func parse(_ data: Data) throws -> JUnitReport {
        guard data.count <= byteLimit else {
            throw Unreadable(reason: "the report is \(data.count) bytes, more than the \(byteLimit) read")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw Unreadable(reason: "the report is not UTF-8 text") }
        var scanner = XMLScanner(Array(text.utf8))
        var report = JUnitReport(counts: TestCounts(total: 0, failed: 0, skipped: 0), failures: [], failuresNotKept: 0)
        var stack: [String] = []
        var current: (attributes: [String: String], failure: TestFailure?, skipped: Bool)?
        var failureText: String?
        var sawSuite = false
        while let token = try scanner.next() {
            switch token {
            case .start(let name, let attributes, let selfClosing):
                if stack.count >= depthLimit { throw Unreadable(reason: "the report nests deeper than \(depthLimit) elements") }
                switch name {
                case "testsuites", "testsuite": sawSuite = true
                case "testcase":
                    current = (attributes, nil, false)
                case "failure", "error":
                    if current != nil, current?.failure == nil {
                        let a = current!.attributes
                        current!.failure = TestFailure(
                            name: bounded(a["name"] ?? "?"), classname: a["classname"].map(bounded),
                            file: a["file"].map(bounded), line: a["line"].flatMap { Int($0) },
                            message: attributes["message"].map(bounded).flatMap { $0.isEmpty ? nil : $0 })
                        if !selfClosing { failureText = "" }
                    }
                case "skipped":
                    current?.skipped = true
                default: break
                }
                if selfClosing {
                    if name == "testcase", let c = current { count(c, into: &report); current = nil }
                } else {
                    stack.append(name)
                }
            case .end(let name):
                guard stack.last == name else {
                    throw Unreadable(reason: "malformed XML: </\(bounded(name, 40))> does not close <\(bounded(stack.last ?? "", 40))>")
                }
                stack.removeLast()
                if name == "failure" || name == "error", let text = failureText {
                    failureText = nil
                    if current?.failure?.message == nil {
                        let line = text.split(whereSeparator: \.isNewline).first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                        current?.failure?.message = line.map { bounded(String($0).trimmingCharacters(in: .whitespaces)) }
                    }
                }
                if name == "testcase", let c = current { count(c, into: &report); current = nil }
            case .text(let text):
                if let t = failureText, t.utf8.count < fieldLimit * 4 { failureText = t + text }
            }
        }
        guard stack.isEmpty else { throw Unreadable(reason: "malformed XML: <\(bounded(stack.last ?? "", 40))> is never closed") }
        guard sawSuite else { throw Unreadable(reason: "not a JUnit report: no <testsuite> or <testsuites>") }
        return report
    }

    private static func count(_ c: (attributes: [String: String], failure: TestFailure?, skipped: Bool), into report: inout JUnitReport) {
        report.counts.total += 1
        if let failure = c.failure {
            report.counts.failed += 1
            if report.failures.count < keptFailures { report.failures.append(failure) } else { report.failuresNotKept += 1 }
        } else if c.skipped {
            report.counts.skipped += 1
        }
    }

    static func bounded(_ text: String) -> String { bounded(text, fieldLimit) }

    static func bounded(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }
}

/// Just enough XML for a JUnit report: elements, attributes, text, CDATA, comments and
/// processing instructions. A document type declaration is refused (it is where entities
/// would be declared); an entity reference other than XML's five is an error.
struct XMLScanner {
    enum Token: Equatable {
        case start(String, [String: String], selfClosing: Bool)
        case end(String)
        case text(String)
    }

    private let bytes: [UInt8]
    private var i = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        // A byte-order mark is not text.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
    }

    private func fail(_ why: String) -> JUnitReport.Unreadable {
        JUnitReport.Unreadable(reason: "malformed XML at byte \(i): \(why)")
    }

    private func hasPrefix(_ s: String) -> Bool {
        let p = Array(s.utf8)
        return i + p.count <= bytes.count && Array(bytes[i..<(i + p.count)]) == p
    }

    /// Moves past `terminator`; returns what came before it.
    private mutating func until(_ terminator: String) throws -> [UInt8] {
        let t = Array(terminator.utf8)
        var j = i
        while j + t.count <= bytes.count {
            if bytes[j] == t[0] && Array(bytes[j..<(j + t.count)]) == t {
                let found = Array(bytes[i..<j])
                i = j + t.count
                return found
            }
            j += 1
        }
        throw fail("\(terminator) missing")
    }

    mutating func next() throws -> Token? {
        while i < bytes.count {
            if bytes[i] != UInt8(ascii: "<") {
                var j = i
                while j < bytes.count && bytes[j] != UInt8(ascii: "<") { j += 1 }
                let raw = String(decoding: bytes[i..<j], as: UTF8.self)
                i = j
                return .text(try decode(raw))
            }
            if hasPrefix("<!--") { i += 4; _ = try until("-->"); continue }
            if hasPrefix("<![CDATA[") { i += 9; return .text(String(decoding: try until("]]>"), as: UTF8.self)) }
            if hasPrefix("<!") { throw JUnitReport.Unreadable(reason: "the report has a document type declaration (<!DOCTYPE …>); refused, as its entities could be") }
            if hasPrefix("<?") { i += 2; _ = try until("?>"); continue }
            if hasPrefix("</") {
                i += 2
                let name = String(decoding: try until(">"), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard Self.isName(name) else { throw fail("bad end tag") }
                return .end(name)
            }
            i += 1
            return try startTag()
        }
        return nil
    }

    private static func isName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil || "_-.:".unicodeScalars.contains($0) }
    }

    private mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    private mutating func name() -> String {
        let start = i
        while i < bytes.count, ![0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "="), UInt8(ascii: ">"), UInt8(ascii: "/")].contains(bytes[i]) { i += 1 }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    private mutating func startTag() throws -> Token {
        let element = name()
        guard Self.isName(element) else { throw fail("bad start tag") }
        var attributes: [String: String] = [:]
        while true {
            skipSpace()
            guard i < bytes.count else { throw fail("unfinished <\(element)>") }
            if hasPrefix("/>") { i += 2; return .start(element, attributes, selfClosing: true) }
            if bytes[i] == UInt8(ascii: ">") { i += 1; return .start(element, attributes, selfClosing: false) }
            let key = name()
            guard Self.isName(key) else { throw fail("bad attribute in <\(element)>") }
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else { throw fail("attribute \(key) without a value") }
            i += 1
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") else { throw fail("attribute \(key) not quoted") }
            let quote = String(UnicodeScalar(bytes[i]))
            i += 1
            let raw = String(decoding: try until(quote), as: UTF8.self)
            guard !raw.contains("<") else { throw fail("< in attribute \(key)") }
            attributes[key] = try decode(raw)
        }
    }

    /// XML's five entities and character references; any other entity is an error.
    private func decode(_ raw: String) throws -> String {
        guard raw.contains("&") else { return raw }
        var out = ""
        var rest = Substring(raw)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].prefix(12).firstIndex(of: ";") else { throw fail("& without ;") }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "lt": out += "<"
            case "gt": out += ">"
            case "amp": out += "&"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                var value: UInt32?
                if entity.hasPrefix("#x") { value = UInt32(entity.dropFirst(2), radix: 16) } else if entity.hasPrefix("#") { value = UInt32(entity.dropFirst(), radix: 10) }
                guard let value, let scalar = Unicode.Scalar(value) else { throw fail("unknown entity &\(entity.prefix(20));") }
                out.unicodeScalars.append(scalar)
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }
}
