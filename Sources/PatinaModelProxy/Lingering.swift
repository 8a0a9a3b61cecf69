import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Connections ended after a last answer (a refusal), closed only once the client has sent
/// what it was sending. Closing a socket with unread input sends a reset, and a reset can
/// overtake the answer on its way: through the docker bridge, about half of the clients
/// refused at once (their request arriving just after the answer) never read their 503. So
/// the write side ends at once (the FIN follows the answer), and one thread for the whole
/// process reads and drops what each client still sends until it closes its side, at most
/// `seconds` and `bytes` each, for at most `capacity` connections at a time (past that, a
/// connection is drained once and closed: a flood costs neither threads nor descriptors).
/// The thread that answered (the accepting one, for a refusal) never waits.
final class Lingering: Sendable {
    static let shared = Lingering()

    let capacity = 128
    let seconds = 2.0
    let bytes = 256 << 10

    private struct Entry {
        let socket: Socket
        let deadline: Date
        var read: Int
    }

    private struct State {
        var entries: [Entry] = []
        var running = false
    }

    private let state = Mutex(State())

    func end(_ socket: Socket) {
        _ = Glibc.shutdown(socket.fd, Int32(SHUT_WR))
        let (open, read) = socket.drain(limit: bytes)
        guard open, read < bytes else { return }
        let start = state.withLock { state -> Bool in
            guard state.entries.count < capacity else { return false }
            state.entries.append(Entry(socket: socket, deadline: Date().addingTimeInterval(seconds), read: read))
            defer { state.running = true }
            return !state.running
        }
        if start {
            let thread = Thread { [self] in run() }
            thread.name = "patina-model-proxy-lingering"
            thread.start()
        }
    }

    /// Polls the lingering connections; ends when there is none left (`end` starts it again).
    private func run() {
        while true {
            let entries = state.withLock { state -> [Entry]? in
                if state.entries.isEmpty { state.running = false; return nil }
                return state.entries
            }
            guard let entries else { return }
            var fds = entries.map { pollfd(fd: $0.socket.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 50)
            let now = Date()
            var done = Set<Int32>()
            var progress: [Int32: Int] = [:]
            for (entry, pfd) in zip(entries, fds) {
                var read = entry.read
                if pfd.revents != 0 {
                    let (open, more) = entry.socket.drain(limit: bytes - read)
                    read += more
                    if !open { done.insert(entry.socket.fd); continue }
                }
                if read >= bytes || now >= entry.deadline { done.insert(entry.socket.fd) } else { progress[entry.socket.fd] = read }
            }
            // Dropped here, outside the lock: the last reference closes each.
            let closing = state.withLock { state -> [Entry] in
                let closing = state.entries.filter { done.contains($0.socket.fd) }
                state.entries.removeAll { done.contains($0.socket.fd) }
                for index in state.entries.indices { state.entries[index].read = progress[state.entries[index].socket.fd] ?? state.entries[index].read }
                return closing
            }
            withExtendedLifetime(closing) {}
        }
    }
}
