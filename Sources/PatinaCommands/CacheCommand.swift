import ArgumentParser
import Foundation
import PatinaCore

/// `patina cache`: this repository's warm package caches, and emptying them.
struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "List this repository's warm package caches (pip, npm, cargo, go, …) and their sizes.",
        discussion: """
            Runs of a repository share its download caches, kept under patina's home and mounted \
            into the sandbox, so a second run does not download again. `patina cache clear` empties them.
            """,
        subcommands: [CacheListCommand.self, CacheClearCommand.self],
        defaultSubcommand: CacheListCommand.self
    )
}

struct CacheListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the caches and their sizes.")

    @Flag(help: "Print a JSON array.")
    var json = false

    func run() async throws {
        let caches = CacheStore(store: try RunStore.forCurrentRepository())
        let entries = caches.list()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            printJSON(String(decoding: try encoder.encode(entries), as: UTF8.self))
            return
        }
        guard !entries.isEmpty else {
            say("no caches yet for this repository (\(caches.root.path))")
            return
        }
        for entry in entries {
            let size = ByteCountFormatter.string(fromByteCount: entry.bytes, countStyle: .file)
            say("\(entry.name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(size.padding(toLength: 10, withPad: " ", startingAt: 0)) \(String(entry.files).padding(toLength: 7, withPad: " ", startingAt: 0)) files  \(entry.path)\(entry.inUse ? "  (in use)" : "")")
        }
        let total = entries.reduce(Int64(0)) { $0 + $1.bytes }
        say("total    \(ByteCountFormatter.string(fromByteCount: total, countStyle: .file))")
    }
}

struct CacheClearCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "Empty the caches (all, or the ones named).")

    @Argument(help: "Caches to empty (pip, uv, npm, pnpm, yarn, cargo, go, swiftpm); all when none is named.")
    var names: [String] = []

    func run() async throws {
        let caches = CacheStore(store: try RunStore.forCurrentRepository())
        let (cleared, busy) = try caches.clear(names)
        for name in cleared { say("cleared \(name)") }
        if cleared.isEmpty && busy.isEmpty { say("nothing to clear") }
        if !busy.isEmpty {
            Terminal.write("warning: \(busy.joined(separator: ", ")) in use by a run in flight: not cleared\n")
            throw ExitCode(1)
        }
    }
}
