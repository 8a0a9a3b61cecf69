import Foundation
import PatinaCore
#if canImport(Glibc)
import Glibc
#endif

/// Everything the commands print to stdout goes through here (the commands never call
/// `print`): text that came from an agent (messages, file and branch names, reasons) may
/// hold control characters and escape sequences; they are shown as text, never
/// interpreted by the terminal.
func say(_ text: String = "", terminator: String = "\n") {
    StandardOutput.write(Terminal.inert(text) + terminator)
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
    StandardOutput.write(String(out) + terminator)
}

/// The one writer of stdout. A reader that went away (`patina show | head -1`: EPIPE)
/// ends the command quietly with status 141, as git does when SIGPIPE kills it; any
/// other write error (a full disk) is one line on stderr and exit 1. Foundation's
/// `FileHandle.write(_:)` would stop the process with a crash report instead.
enum StandardOutput {
    static func write(_ text: String) {
        write(Data(text.utf8))
    }

    static func write(_ data: Data) {
        let failure: Int32? = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Int32? in
            guard let start = raw.baseAddress else { return nil }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(1, start + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
        if let failure { fail(failure) }
    }

    /// Ends the process for a failed write to stdout (`errno`).
    static func fail(_ code: Int32) -> Never {
        if code == EPIPE { Glibc.exit(141) }
        Terminal.write("error: could not write to standard output: \(String(cString: strerror(code)))\n")
        Glibc.exit(1)
    }
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
            StandardOutput.write(text)
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
            StandardOutput.write(text)
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
