import Foundation
import PatinaCore

/// Printing for the review verbs: JSON on request, a pager and colour on a terminal.
enum Output {
    static var standardOutputIsTerminal: Bool { isatty(1) == 1 }

    static func json<T: Encodable>(_ value: T) throws {
        print(String(decoding: try RunRecord.encoder.encode(value), as: UTF8.self))
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
