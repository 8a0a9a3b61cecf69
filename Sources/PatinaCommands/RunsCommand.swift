import ArgumentParser

struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs")
    func run() async throws {}
}
