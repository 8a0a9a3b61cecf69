import PatinaCommands

@main
struct Entrypoint {
    static func main() async {
        await Patina.runMain()
    }
}
