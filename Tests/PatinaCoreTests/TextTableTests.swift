import Testing
@testable import PatinaCore

@Suite struct TextTableTests {
    @Test func columnsAreAsWideAsTheirLongestCellAndNothingIsCut() {
        let lines = TextTable.lines([
            ["STATUS", "RUN", "CHANGES"],
            ["succeeded", "20261207-1", "2 files +3 -1"],
            ["interrupted", "r", ""],
            ["é✓", "20261207-123456-long-id", "x"],
        ])
        #expect(lines == [
            "STATUS       RUN                      CHANGES",
            "succeeded    20261207-1               2 files +3 -1",
            "interrupted  r",
            "é✓           20261207-123456-long-id  x",
        ])
    }

    @Test func shortRowsAndNoRows() {
        #expect(TextTable.lines([]) == [])
        #expect(TextTable.lines([["a", "bb"], ["ccc"]]) == ["a    bb", "ccc"])
    }
}
