import ArgumentParser
import Foundation

/// Any failure, printed as one line `error: …` with a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    let underlying: Error
    init(_ error: Error) { underlying = error }
    var description: String { String(describing: underlying) }
}
