import Foundation
import PatinaCore

/// Everything the commands print to stdout goes through here (the commands never call
/// `print`): text that came from an agent (messages, file and branch names, reasons) may
/// hold control characters and escape sequences; they are shown as text, never
/// interpreted by the terminal.
func say(_ text: String = "", terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((Terminal.inert(text) + terminator).utf8))
}

/// JSON for stdout. The encoder escapes C0 control characters itself; DEL, C1 controls
/// and invisible bidi marks (which JSON allows raw) become `\uXXXX` escapes, which can
/// only occur inside strings, so the JSON means the same and cannot drive a terminal.
func printJSON(_ text: String, terminator: String = "\n") {
    var out = String.UnicodeScalarView()
    for u in text.unicodeScalars {
        switch u.value {
        case 0x7F...0x9F, 0x200B, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069, 0x2028, 0x2029, 0xFEFF:
            out.append(contentsOf: String(format: "\\u%04x", u.value).unicodeScalars)
        default:
            out.append(u)
        }
    }
    FileHandle.standardOutput.write(Data((String(out) + terminator).utf8))
}

/// Printing for the review verbs: JSON on request, a pager and colour on a terminal.
enum Output {
    static var standardOutputIsTerminal: Bool { isatty(1) == 1 }

    static func json<T: Encodable>(_ value: T) throws {
        printJSON(String(decoding: try RunRecord.encoder.encode(value), as: UTF8.self))
    }

    /// Long text through `$PAGER` (default `less -FRX`) when stdout is a terminal.
    static func page(_ text: String) {
        guard standardOutputIsTerminal else {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        let pager = ProcessInfo.processInfo.environment["PAGER"].flatMap { $0.isEmpty ? nil : $0 } ?? "less -FRX"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", pager]
        let pipe = Pipe()
        process.standardInput = pipe
        do {
            try process.run()
        } catch {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        try? pipe.fileHandleForWriting.write(contentsOf: Data(text.utf8))
        try? pipe.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    enum Colour: String {
        case red = "31", green = "32", yellow = "33", cyan = "36", bold = "1", dim = "2"
    }

    static func paint(_ text: String, _ colour: Colour, when enabled: Bool) -> String {
        enabled ? "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m" : text
    }

    static func column(_ text: String, _ width: Int) -> String {
        text.count >= width ? String(text.prefix(width - 1)) + " " : text.padding(toLength: width, withPad: " ", startingAt: 0)
    }
}
