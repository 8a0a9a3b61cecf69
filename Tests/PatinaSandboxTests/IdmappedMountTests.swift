import Foundation
import PatinaSandbox
import Synchronization
import Testing

/// Idmapped views mounted from several threads at once, as a batch's runs mount their
/// worktrees' views (BranchStep): the real kernel, real mounts.
@Suite("idmapped mounts", .serialized)
struct IdmappedMountTests {
    /// Each mount forks a child that waits on a pipe for its parent's word. A fork copies
    /// every descriptor open at that moment, the other threads' pipes too: a child that kept
    /// another child's pipe open while waiting on its own made both wait for ever, and both
    /// mounting threads with them (a `patina batch` that hung, Ctrl-C or not).
    @Test(.enabled(if: getuid() == 0, "only root mounts idmapped views"))
    func mountsFromSeveralThreadsAtOnceNeverWaitOnEachOther() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("patina-idmap-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let threads = 4, rounds = 250
        let mounted = Mutex(0)
        let stop = Mutex(false)
        let failures = Mutex<[String]>([])
        let finished = DispatchSemaphore(value: 0)
        for index in 0..<threads {
            let source = root.appendingPathComponent("source-\(index)"), target = root.appendingPathComponent("view-\(index)")
            try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            Thread {
                defer { finished.signal() }
                for _ in 0..<rounds where !stop.withLock({ $0 }) {
                    do {
                        try IdmappedMount.mount(source, at: target, disk: (0, 0), view: (1000, 1000))
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                        return
                    }
                    IdmappedMount.detach(target)
                    mounted.withLock { $0 += 1 }
                }
            }.start()
        }
        // Hung: no mount finished for 10 s (all of them take a second or two).
        var joined = 0, last = -1
        while joined < threads {
            joined += Self.join(finished, count: threads - joined, within: 10)
            let now = mounted.withLock { $0 }
            if joined < threads, now == last { break }
            last = now
        }
        if joined < threads {
            // The children each wait on another's pipe. Killing them (this process's own
            // children, blocked reading a pipe) frees their threads, which stop.
            stop.withLock { $0 = true }
            let stuck = Self.ownChildrenReadingAPipe()
            for pid in stuck { kill(pid, SIGKILL) }
            joined += Self.join(finished, count: threads - joined, within: 10)
            Issue.record("mounting from \(threads) threads hung after \(last) mounts: children \(stuck) blocked reading a pipe")
        }
        #expect(joined == threads)
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.first ?? "")")
        #expect(mounted.withLock { $0 } == threads * rounds)
        #expect(MountTable.points(under: root).isEmpty, "a view is still mounted under \(root.path)")
    }

    /// How many of `count` signals arrived within `seconds`.
    static func join(_ semaphore: DispatchSemaphore, count: Int, within seconds: Double) -> Int {
        let deadline = DispatchTime.now() + seconds
        var joined = 0
        while joined < count, semaphore.wait(timeout: deadline) == .success { joined += 1 }
        return joined
    }

    /// This process's children asleep in a pipe read.
    static func ownChildrenReadingAPipe() -> [pid_t] {
        let me = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(pid_t.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // "pid (comm) state ppid …": comm may hold spaces, so split after its ")".
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let wchan = (try? String(contentsOfFile: "/proc/\(pid)/wchan", encoding: .utf8)) ?? ""
            return fields.count > 1 && pid_t(fields[1]) == me && wchan.contains("pipe")
        }
    }
}
