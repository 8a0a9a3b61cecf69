import ArgumentParser

struct SeccompCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "seccomp")
    func run() async throws {}
}
