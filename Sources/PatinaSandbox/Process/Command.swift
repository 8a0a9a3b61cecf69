import Foundation
import Synchronization
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A finished external command: exit status and captured output.
public struct CommandResult: Sendable {
    public let arguments: [String]
    public let exitCode: Int32
    public let standardOutput: String
    public let standardError: String

    public var succeeded: Bool { exitCode == 0 }
}

/// An external command that failed. Carries the command line and its stderr,
/// so the one line the user sees says what ran and why it failed.
public struct CommandFailure: Error, CustomStringConvertible, Sendable {
    public let arguments: [String]
    public let exitCode: Int32
    public let standardError: String

    public var description: String {
        let detail = standardError.trimmingCharacters(in: .whitespacesAndNewlines)
            .split(separator: "\n").last.map(String.init) ?? ""
        let shown = arguments.prefix(4).joined(separator: " ") + (arguments.count > 4 ? " …" : "")
        return "`\(shown)` failed (exit \(exitCode))" + (detail.isEmpty ? "" : ": \(detail)")
    }
}

/// Runs external commands through swift-subprocess, always with an output limit.
///
/// Children get their own process group so a Ctrl-C in the terminal reaches
/// patina only; patina then stops what it started, in order.
public enum Command {
    public static let outputLimit = 16 << 20

    public static func run(
        _ arguments: [String],
        environment: [String: String?] = [:],
        input: String? = nil,
        workingDirectory: URL? = nil
    ) async throws -> CommandResult {
        let env = environment.isEmpty ? Environment.inherit : Environment.inherit.updating(Self.keys(environment))
        let result: ExecutionResult<Void, StringOutput<UTF8>, StringOutput<UTF8>>
        do {
            // No input is an empty stdin: the child sees end-of-file at once.
            result = try await Subprocess.run(
                executable(arguments), arguments: Arguments(Array(arguments.dropFirst())), environment: env,
                workingDirectory: workingDirectory.map { FilePath($0.path) }, platformOptions: ownProcessGroup,
                input: .string(input ?? ""), output: .string(limit: outputLimit), error: .string(limit: outputLimit))
        } catch {
            throw CommandFailure(arguments: arguments, exitCode: 127, standardError: "\(error)")
        }
        return CommandResult(
            arguments: arguments, exitCode: exitCode(result.terminationStatus),
            standardOutput: result.standardOutput, standardError: result.standardError)
    }

    /// Runs the command and throws `CommandFailure` unless it exits 0.
    @discardableResult
    public static func check(
        _ arguments: [String],
        environment: [String: String?] = [:],
        input: String? = nil,
        workingDirectory: URL? = nil
    ) async throws -> CommandResult {
        let result = try await run(arguments, environment: environment, input: input, workingDirectory: workingDirectory)
        guard result.succeeded else {
            throw CommandFailure(arguments: arguments, exitCode: result.exitCode, standardError: result.standardError)
        }
        return result
    }

    static func executable(_ arguments: [String]) -> Executable {
        precondition(!arguments.isEmpty)
        if arguments[0].contains("/") { return .path(FilePath(arguments[0])) }
        return resolved(arguments[0]).map { .path(FilePath($0)) } ?? .name(arguments[0])
    }

    /// Where PATH finds `name`, looked up once per process: a name would otherwise be tried
    /// in every PATH directory on every call (docker is called dozens of times per run).
    private static func resolved(_ name: String) -> String? {
        let environment = ProcessInfo.processInfo.environment
        let key = name + "\u{0}" + (environment["PATH"] ?? "")
        if let hit = pathCache.withLock({ $0[key] }) { return hit }
        let found = which(name, environment: environment)
        if let found { pathCache.withLock { $0[key] = found } }
        return found
    }

    /// The executable `name` in `environment`'s PATH, its absolute directories only (a
    /// relative one would resolve against the repository patina runs in).
    public static func which(_ name: String, environment: [String: String]) -> String? {
        (environment["PATH"] ?? "").split(separator: ":").lazy.filter { $0.hasPrefix("/") }
            .map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static let pathCache = Mutex<[String: String]>([:])

    static var ownProcessGroup: PlatformOptions {
        var options = PlatformOptions()
        options.processGroupID = 0
        return options
    }

    /// The shell's convention: the exit code, or 128 + the signal that ended it.
    static func exitCode(_ status: TerminationStatus) -> Int32 {
        switch status {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }

    static func keys(_ environment: [String: String?]) -> [Environment.Key: String?] {
        var out: [Environment.Key: String?] = [:]
        for (k, v) in environment { out[Environment.Key(stringLiteral: k)] = v }
        return out
    }
}

extension Command {
    /// The longest stdout line handed on whole; the rest of a longer line is dropped
    /// (`LineSplitter`). A stream-json line holds a tool's result, which Claude Code
    /// itself truncates far below this.
    public static let lineLimit = 8 << 20

    /// Runs a command and hands each line of its stdout to `onLine` as it arrives.
    /// Memory is bounded whatever the command writes: a line longer than `lineLimit`
    /// is handed on cut, followed by `truncatedLineMarker`; stderr keeps its first
    /// `outputLimit` bytes and says how much more was dropped (a flood there is data, not a
    /// failure). A non-zero exit is data, not an error.
    public static func stream(
        _ arguments: [String],
        environment: [String: String?] = [:],
        lineLimit: Int = Command.lineLimit,
        errorLimit: Int = Command.outputLimit,
        onLine: @escaping (String) -> Void
    ) async throws -> CommandResult {
        let env = environment.isEmpty ? Environment.inherit : Environment.inherit.updating(Self.keys(environment))
        let result = try await Subprocess.run(
            executable(arguments), arguments: Arguments(Array(arguments.dropFirst())), environment: env,
            platformOptions: ownProcessGroup, input: .none, output: .sequence, error: .sequence
        ) { execution in
            // Stderr is drained alongside, or a child that fills its pipe would stop.
            async let standardError = Self.collect(execution.standardError, limit: errorLimit)
            var splitter = LineSplitter(limit: lineLimit)
            for try await buffer in execution.standardOutput {
                buffer.withUnsafeBytes { splitter.feed($0, onLine) }
            }
            splitter.finish(onLine)
            return try await standardError
        }
        return CommandResult(arguments: arguments, exitCode: exitCode(result.terminationStatus),
                             standardOutput: "", standardError: result.closureResult)
    }

    /// The first `limit` bytes of `sequence` as text, and a last line saying how many more
    /// were dropped; the rest is read and thrown away.
    static func collect(_ sequence: SubprocessOutputSequence, limit: Int) async throws -> String {
        var kept: [UInt8] = []
        var dropped = 0
        for try await buffer in sequence {
            buffer.withUnsafeBytes { bytes in
                let room = max(0, limit - kept.count)
                kept.append(contentsOf: bytes.prefix(room))
                dropped += max(0, bytes.count - room)
            }
        }
        var text = String(decoding: kept, as: UTF8.self)
        if dropped > 0 {
            if !text.hasSuffix("\n") { text += "\n" }
            text += "[patina: \(dropped) more bytes of stderr dropped past the \(limit)-byte limit]\n"
        }
        return text
    }
}

/// Splits a byte stream into lines ("\n" only: other Unicode line breaks may sit inside a
/// JSON line) with each line's length capped: past `limit`, the line is handed on cut and
/// followed by a marker line saying how many bytes were dropped.
public struct LineSplitter {
    public let limit: Int
    private var line: [UInt8] = []
    private var dropped = 0

    /// The line handed on after a cut one: a JSON object, so a stream-json reader sees
    /// what happened rather than a malformed line.
    public static func truncatedLineMarker(dropped: Int, limit: Int) -> String {
        #"{"type":"patina_truncated_line","dropped_bytes":\#(dropped),"line_limit":\#(limit)}"#
    }

    public init(limit: Int) { self.limit = limit }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ onLine: (String) -> Void) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let end = rest.firstIndex(of: 0x0A)
            let piece = rest[rest.startIndex..<(end ?? rest.endIndex)]
            let room = max(0, limit - line.count)
            line.append(contentsOf: piece.prefix(room))
            dropped += max(0, piece.count - room)
            guard let end else { return }
            emit(onLine)
            rest = rest[(end + 1)...]
        }
    }

    /// The last line, when the stream did not end with a newline.
    public mutating func finish(_ onLine: (String) -> Void) {
        if !line.isEmpty || dropped > 0 { emit(onLine) }
    }

    private mutating func emit(_ onLine: (String) -> Void) {
        onLine(String(decoding: line, as: UTF8.self))
        if dropped > 0 { onLine(Self.truncatedLineMarker(dropped: dropped, limit: limit)) }
        line.removeAll(keepingCapacity: line.count <= 1 << 20)
        dropped = 0
    }
}
