import ArgumentParser

/// The root command: `patina <subcommand>`.
public struct Patina: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "patina",
        abstract: "Run Claude Code in YOLO mode inside a locked-down container, on its own git branch.",
        discussion: """
            Exit codes (every command): 0 success; 1 the run ended without success (the agent \
            failed, the check failed, the timeout or the budget ended it); 2 bad input (a flag, a \
            file, a plan, a run that does not exist; nothing was changed); 3 the environment failed \
            (the container engine is unreachable, an image did not build, the firewall could not be \
            applied, the model API could not be reached); 130 interrupted. A failure before the \
            agent starts leaves no branch, worktree or container.
            """,
        version: VersionCommand.text,
        subcommands: [
            YoloCommand.self,
            RunsCommand.self,
            ShowCommand.self,
            LogCommand.self,
            DiffCommand.self,
            CompareCommand.self,
            MergeCommand.self,
            ApplyCommand.self,
            DiscardCommand.self,
            PruneCommand.self,
            ResumeCommand.self,
            ShellCommand.self,
            BatchCommand.self,
            BatchesCommand.self,
            BatchTaskCommand.self,
            DetectCommand.self,
            CacheCommand.self,
            SeccompCommand.self,
            VersionCommand.self,
        ]
    )

    public init() {}
}
