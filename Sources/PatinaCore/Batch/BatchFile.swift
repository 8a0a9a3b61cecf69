import Foundation

/// One task of a batch file, with the keys its line set (nil: the flag's default).
public struct BatchTask: Sendable, Equatable {
    public var line: Int
    public var task: String
    public var name: String?
    public var attempts: Int?
    public var models: [String]?
    public var base: String?
    public var timeout: String?
    public var maxTurns: Int?
    public var check: String?
    public var allow: [String]?
    /// The run's budget (`--max-cost`), as written.
    public var maxCost: String?
    /// `rounds` and `check_report` (`--rounds`, `--check-report`).
    public var rounds: Int?
    public var checkReport: String?
    /// The run's leftovers limit (`--max-file-size`), as written.
    public var maxFileSize: String?

    public init(line: Int, task: String) {
        self.line = line
        self.task = task
    }
}

/// `patina batch FILE`: `.txt` (one task per line; blank and `#` lines ignored)
/// or `.jsonl` (one object per line). Any bad line stops the batch before
/// anything is created, with one line naming FILE:LINE.
public enum BatchFile {
    public static let keys = ["task", "name", "attempts", "model", "models", "base", "timeout", "max_turns", "check", "allow", "max_cost", "rounds", "check_report", "max_file_size"]

    public static func load(_ path: String) throws -> [BatchTask] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PlanError("batch file \(path) does not exist; give a .txt (one task per line) or .jsonl file")
        }
        guard !isDirectory.boolValue, let data = FileManager.default.contents(atPath: path) else {
            throw PlanError("batch file \(path) is not readable; give a .txt (one task per line) or .jsonl file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw PlanError("\(path) is not UTF-8 text")
        }
        let tasks = try parse(text, path: path, jsonLines: path.lowercased().hasSuffix(".jsonl"))
        guard !tasks.isEmpty else { throw PlanError("\(path) holds no tasks (blank and # lines are ignored)") }
        return tasks
    }

    public static func parse(_ text: String, path: String, jsonLines: Bool) throws -> [BatchTask] {
        var tasks: [BatchTask] = []
        // Lines end at "\n" only, so a task may hold other Unicode line breaks.
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = offset + 1
            let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || (!jsonLines && trimmed.hasPrefix("#")) { continue }
            if jsonLines {
                tasks.append(try parseObject(trimmed, path: path, line: line))
            } else {
                tasks.append(BatchTask(line: line, task: trimmed))
            }
        }
        return tasks
    }

    static func parseObject(_ text: String, path: String, line: Int) throws -> BatchTask {
        func bad(_ what: String) -> PlanError { PlanError("\(path):\(line): \(what)") }
        guard let data = text.data(using: .utf8),
              let any = try? JSONSerialization.jsonObject(with: data),
              let object = any as? [String: Any]
        else { throw bad("not a JSON object; each line must be like {\"task\": \"...\"}") }
        if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
            throw bad("unknown key \"\(unknown)\"; known keys: \(keys.joined(separator: ", "))")
        }
        func string(_ key: String) throws -> String? {
            guard let value = object[key] else { return nil }
            guard let s = value as? String else { throw bad("\"\(key)\" must be a string") }
            return s
        }
        func integer(_ key: String) throws -> Int? {
            guard let value = object[key] else { return nil }
            // JSON true/false also bridge to NSNumber: they are not numbers here.
            guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
                  number.doubleValue == Double(number.intValue) else { throw bad("\"\(key)\" must be a whole number") }
            return number.intValue
        }
        func strings(_ key: String) throws -> [String]? {
            guard let value = object[key] else { return nil }
            if let s = value as? String { return [s] }
            guard let list = value as? [Any], list.allSatisfy({ $0 is String }) else {
                throw bad("\"\(key)\" must be a string or a list of strings")
            }
            return list as? [String]
        }
        guard let task = try string("task"), !task.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw bad("\"task\" is missing or empty")
        }
        if object["model"] != nil && object["models"] != nil { throw bad("give \"model\" or \"models\", not both") }
        var result = BatchTask(line: line, task: task.trimmingCharacters(in: .whitespacesAndNewlines))
        result.name = try string("name")
        result.attempts = try integer("attempts")
        result.models = try strings("models") ?? string("model").map { [$0] }
        result.base = try string("base")
        result.timeout = try string("timeout")
        result.maxTurns = try integer("max_turns")
        result.check = try string("check")
        result.allow = try strings("allow")
        result.rounds = try integer("rounds")
        result.checkReport = try string("check_report")
        if let cost = object["max_cost"] {
            // A number (2.5) or a string ("$2.50"); checked with the other options.
            if let text = cost as? String {
                result.maxCost = text
            } else if let number = cost as? NSNumber, String(cString: number.objCType) != "c" {
                result.maxCost = "\(number.doubleValue)"
            } else {
                throw bad("\"max_cost\" must be a number of US dollars")
            }
        }
        if let size = object["max_file_size"] {
            // A size ("50m") or a number of bytes; checked with the other options.
            if let text = size as? String {
                result.maxFileSize = text
            } else if let number = size as? NSNumber, String(cString: number.objCType) != "c", number.int64Value > 0 {
                result.maxFileSize = "\(number.int64Value)"
            } else {
                throw bad("\"max_file_size\" must be a size like \"50m\" or a number of bytes")
            }
        }
        if let attempts = result.attempts, let problem = BatchPlanner.validateAttempts(attempts, source: "\"attempts\"") {
            throw bad(problem)
        }
        if let models = result.models, models.isEmpty || models.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw bad("\"models\" must name at least one model, none empty")
        }
        return result
    }
}

/// Turns tasks, attempts and models into the batch's items, each with the
/// options of its run (flags give the defaults; a line's keys win).
public enum BatchPlanner {
    public static let maxAttempts = 100

    static func validateAttempts(_ attempts: Int, source: String) -> String? {
        (1...maxAttempts).contains(attempts) ? nil : "\(source) must be between 1 and \(maxAttempts) (got \(attempts))"
    }

    public static func validate(attempts: Int, jobs: Int?) throws {
        if let message = validateAttempts(attempts, source: "--attempts") { throw PlanError(message) }
        if let jobs, jobs < 1 { throw PlanError("--jobs must be at least 1 (got \(jobs))") }
    }

    public static func items(tasks: [BatchTask], defaults: YoloOptions, attempts: Int, models: [String], path: String?) throws -> [BatchItem] {
        var items: [BatchItem] = []
        for (index, task) in tasks.enumerated() {
            var options = defaults
            options.task = task.task
            if let base = task.base { options.base = base }
            if let timeout = task.timeout { options.timeout = timeout }
            if let turns = task.maxTurns { options.maxTurns = turns }
            if let check = task.check { options.check = check }
            if let allow = task.allow { options.allow = defaults.allow + allow }
            if let cost = task.maxCost { options.maxCost = cost }
            if let rounds = task.rounds { options.rounds = rounds }
            if let report = task.checkReport { options.checkReport = report }
            if let size = task.maxFileSize { options.maxFileSize = size }
            do {
                try options.validateFlags()
            } catch {
                throw PlanError(path.map { "\($0):\(task.line): \(error)" } ?? "\(error)")
            }
            let runModels: [String?] = (task.models ?? models).isEmpty ? [defaults.model] : (task.models ?? models).map { $0 }
            for model in runModels {
                for attempt in 1...(task.attempts ?? attempts) {
                    var runOptions = options
                    runOptions.model = model
                    items.append(BatchItem(taskIndex: index, name: task.name, task: task.task, attempt: attempt, model: model, options: runOptions))
                }
            }
        }
        return items
    }

    /// How many runs this machine holds at once: 75% of its memory divided by
    /// one run's memory limit, at most two runs per CPU core, at least one.
    public static func defaultJobs(memoryLimit: String) -> Int {
        let perRun = Double((try? ByteSize.parse(memoryLimit, setting: "memory")) ?? 4 << 30)
        let byMemory = Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.75 / perRun)
        let byCPU = ProcessInfo.processInfo.activeProcessorCount * 2
        return max(1, min(byMemory, byCPU))
    }
}
