import ArgumentParser

struct YoloCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "yolo")
    func run() async throws {}
}
