/// Rows of cells as aligned terminal lines: each column as wide as its longest cell, two
/// spaces between columns, no trailing blanks, no cell ever cut. `patina runs`, `patina batch
/// show` (and a batch's end) and `patina compare` lay their tables out with it.
public enum TextTable {
    public static let gap = "  "

    public static func lines(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { i in rows.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return rows.map { row in
            var line = row.enumerated().map { i, cell in cell + String(repeating: " ", count: widths[i] - cell.count) }
                .joined(separator: gap)
            while line.last?.isWhitespace == true { line.removeLast() }
            return line
        }
    }
}
