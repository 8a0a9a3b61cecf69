import Foundation
import Testing
@testable import PatinaCore

@Suite struct RunIDTests {
    @Test func idHasDateSlugAndSuffix() {
        let date = Date(timeIntervalSince1970: 1_795_000_000)
        let id = RunID.make(task: "Add a /health endpoint!", at: date, suffix: "k3x9")
        #expect(id == "20261118-110640-add-a-health-endpoint-k3x9")
        #expect(RunID.isValid(id))
    }

    @Test(arguments: [
        ("", ""),
        ("  Fix   bug #12 ", "fix-bug-12"),
        ("Ünïcode tâsk", "n-code-t-sk"),
        ("a very long task description that goes on and on and on", "a-very-long-task-description"),
        ("supercalifragilisticexpialidocious-and-more-words", "supercalifragilisticexpialidocio"),
    ])
    func slug(task: String, expected: String) {
        #expect(RunID.slug(task) == expected)
    }

    @Test func idsAreUniqueAndSortable() {
        let early = RunID.make(task: "x", at: Date(timeIntervalSince1970: 1_000_000_000))
        let late = RunID.make(task: "x", at: Date(timeIntervalSince1970: 1_000_000_060))
        #expect(early < late)
        let many = Set((0..<200).map { _ in RunID.make(task: "same task") })
        #expect(many.count > 190)
    }

    @Test(arguments: ["../etc", "a b", "-leading", "20261118-074640-x-abcd/..", "x"])
    func invalidIDsAreRejected(id: String) {
        #expect(!RunID.isValid(id))
    }
}

@Suite struct DurationParserTests {
    @Test(arguments: [("20s", 20.0), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("90", 90), ("1.5m", 90)])
    func parses(text: String, seconds: Double) throws {
        #expect(try DurationParser.seconds(text) == seconds)
    }

    @Test(arguments: ["", "abc", "10x", "-5s", "0s", "m", "5m3"])
    func rejects(text: String) {
        #expect(throws: DurationParser.Invalid.self) { try DurationParser.seconds(text) }
    }

    @Test func errorSaysWhatToDo() {
        let error = DurationParser.Invalid(text: "soon")
        #expect(error.description.contains("\"soon\""))
        #expect(error.description.contains("15m"))
    }
}

@Suite struct DurationLimitTests {
    @Test(arguments: ["1e300", "300000000d", "31d", "2592001"])
    func absurdTimeoutsAreRejected(text: String) {
        #expect(throws: DurationParser.Invalid.self) { try DurationParser.seconds(text) }
    }

    @Test func thirtyDaysIsTheMaximum() throws {
        #expect(try DurationParser.seconds("30d") == 30 * 86400)
    }
}
