import Foundation
import Mustache

/// Errors from finding, reading or rendering a template.
public enum TemplateError: Error, CustomStringConvertible, Equatable {
    case dataDirectoryMissing(searched: [String])
    case missing(String)
    case unreadable(path: String, reason: String)
    case invalid(path: String, reason: String)

    public var description: String {
        switch self {
        case .dataDirectoryMissing(let searched):
            return "cannot find patina's templates (looked in \(searched.joined(separator: ", "))); set PATINA_DATA_DIR to the folder holding templates/ and firewall/"
        case .missing(let name):
            return "template \(name) not found"
        case .unreadable(let path, let reason):
            return "cannot read template \(path): \(reason)"
        case .invalid(let path, let reason):
            return "template \(path) is not valid mustache: \(reason)"
        }
    }
}

/// The shipped data files plus a repository's overrides.
///
/// A file at `<repo>/.patina/<relativePath>` replaces the shipped
/// `<data>/<relativePath>`, e.g. `.patina/templates/Dockerfile.mustache`.
public struct TemplateSet: Sendable {
    public let dataDirectory: URL
    public let overrideDirectory: URL?

    public init(dataDirectory: URL, overrideDirectory: URL?) {
        self.dataDirectory = dataDirectory
        self.overrideDirectory = overrideDirectory
    }

    /// The file that will be used for `relativePath`, override first.
    public func url(for relativePath: String) throws -> URL {
        if let overrideDirectory {
            let candidate = overrideDirectory.appendingPathComponent(relativePath)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        let shipped = dataDirectory.appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: shipped.path) else { throw TemplateError.missing(relativePath) }
        return shipped
    }

    /// Whether the repository overrides `relativePath`.
    public func isOverridden(_ relativePath: String) -> Bool {
        guard let overrideDirectory else { return false }
        return FileManager.default.fileExists(atPath: overrideDirectory.appendingPathComponent(relativePath).path)
    }

    public func read(_ relativePath: String) throws -> String {
        let url = try url(for: relativePath)
        do {
            return try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw TemplateError.unreadable(path: url.path, reason: Self.reason(error))
        }
    }

    /// Renders a mustache template. Output is plain text: nothing is HTML-escaped,
    /// so callers pass values already quoted for the target format.
    public func render(_ relativePath: String, _ context: [String: Any]) throws -> String {
        let text = try read(relativePath)
        let template: MustacheTemplate
        do {
            template = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + text)
        } catch let error as MustacheTemplate.ParserError {
            throw TemplateError.invalid(path: try url(for: relativePath).path,
                                        reason: "line \(error.context.lineNumber): \(Self.explain(error.error))")
        } catch {
            throw TemplateError.invalid(path: try url(for: relativePath).path, reason: "\(error)")
        }
        return template.render(context)
    }

    static func explain(_ error: Error) -> String {
        switch error as? MustacheTemplate.Error {
        case .expectedSectionEnd?: return "a section is never closed (missing {{/name}})"
        case .sectionCloseNameIncorrect?: return "a section is closed with the wrong name"
        case .unfinishedName?: return "a tag is not finished (missing }})"
        case .invalidSetDelimiter?: return "bad set-delimiter tag"
        default: return "\(error)"
        }
    }

    static func reason(_ error: Error) -> String {
        if let posix = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError {
            return posix.localizedDescription
        }
        return (error as NSError).localizedDescription
    }
}
