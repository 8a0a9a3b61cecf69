import ArgumentParser

/// The root command: `patina <subcommand>`.
public struct Patina: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "patina",
        abstract: "Run Claude Code in YOLO mode inside a locked-down container, on its own git branch.",
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
