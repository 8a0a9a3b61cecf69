import ArgumentParser
import Foundation
import PatinaCore
import PatinaGit
#if canImport(Glibc)
import Glibc
#endif

extension Patina {
    /// Parses and runs a command. Any error becomes exactly one line on stderr
    /// (`error: what is wrong and what to do`) and a non-zero exit; help and
    /// `--version` print as usual.
    public static func runMain(_ arguments: [String]? = nil) async -> Never {
        // A parent may have started us with SIGINT/SIGTERM blocked; patina must
        // see Ctrl-C to stop the agent and still collect the run.
        // A closed pipe (`patina yolo … | head`) must not kill patina mid-run.
        signal(SIGPIPE, SIG_IGN)
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
        do {
            var command = try parseAsRoot(arguments)
            // A Slurm task recovers nothing: the runs it could see belong to other tasks and their hosts.
            if !(command is SeccompCommand || command is SeccompCheckCommand || command is VersionCommand || command is BatchTaskCommand) {
                await recoverAbandonedRuns()
            }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Glibc.exit(0)
        } catch {
            let code = exitCode(for: error)
            if error is ExitCode { Glibc.exit(code.rawValue) }
            // Help and --version, as ArgumentParser prints them.
            if code == .success { Self.exit(withError: error) }
            let hintUsage = code == .validationFailure
            let failure = Self.failure(error, argumentParserCode: code)
            var message = message(for: error).trimmingCharacters(in: .whitespacesAndNewlines)
            for prefix in ["Error: ", "error: "] where message.hasPrefix(prefix) { message.removeFirst(prefix.count) }
            let line = message.split(separator: "\n").first.map(String.init) ?? "failed"
            let hint = hintUsage && !line.contains("patina") ? " (see `\(helpCommand(for: arguments ?? Array(CommandLine.arguments.dropFirst())))`)" : ""
            try? FileHandle.standardError.write(contentsOf: Data("error: \(Terminal.line(line))\(hint)\n".utf8))
            Glibc.exit(failure.kind.exitCode)
        }
    }

    /// The one place an error becomes an exit code: its kind (`PatinaError.Kind`), from
    /// the error's type; ArgumentParser's usage errors are bad input.
    static func failure(_ error: any Error, argumentParserCode code: ExitCode) -> PatinaError {
        if code == .validationFailure { return PatinaError(.badInput, "\(error)", cause: error) }
        return PatinaError(classifying: error)
    }

    /// Where to read about a usage error: the help of the (sub)command the arguments name,
    /// `patina diff --help` for `patina diff --bogus`, else `patina --help`.
    static func helpCommand(for arguments: [String]) -> String {
        var names = ["patina"]
        var command: ParsableCommand.Type = Patina.self
        for argument in arguments {
            if argument == "--" { break }
            if argument.hasPrefix("-") { continue }
            guard let sub = command.configuration.subcommands.first(where: { $0._commandName == argument }) else { break }
            names.append(argument)
            command = sub
        }
        return (names + ["--help"]).joined(separator: " ")
    }

    /// Runs of this repository whose patina died are collected before anything else
    /// (status `interrupted`), so no command ever sees a dead run as running.
    static func recoverAbandonedRuns() async {
        guard let repository = try? Repository.discover(from: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) else { return }
        let store = RunStore(home: RunStore.home(), repositoryCommonDirectory: repository.commonDirectory)
        let migration = SessionRefMigration.run(repository: repository, store: store)
        if !migration.moved.isEmpty {
            Terminal.write("note: moved \(migration.moved.count) session tag\(migration.moved.count == 1 ? "" : "s") of earlier runs from refs/tags/ to refs/ (same names; git describe and git push --tags no longer see them)\n")
        }
        for problem in migration.problems { Terminal.write("note: \(Terminal.line(problem))\n") }
        let recovered = await Recovery.collectAbandoned(repository: repository, store: store)
        for line in recovered.notes { Terminal.write("note: \(Terminal.line(line))\n") }
        for result in recovered.runs {
            let line = result.problem.map { "run \(result.record.id) was left running by a patina that is gone; not collected yet: \($0)" }
                ?? "run \(result.record.id) was left running by a patina that is gone; collected it (interrupted, head \(result.record.headCommit.map { String($0.prefix(8)) } ?? "none"))"
            Terminal.write("note: \(Terminal.line(line))\n")
        }
    }
}
