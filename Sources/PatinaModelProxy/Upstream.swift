import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization

/// What arrives from the upstream for one request, in order; the connection's thread
/// takes it from here and writes it to the client as it comes.
final class ResponseStream: @unchecked Sendable {
    // @unchecked: `events` and `finished` are only touched with `condition` locked.
    enum Event {
        case head(status: Int, headers: [(String, String)])
        case data(Data)
        case end(Error?)
    }

    private let condition = NSCondition()
    private var events: [Event] = []

    func push(_ event: Event) {
        condition.lock()
        events.append(event)
        condition.signal()
        condition.unlock()
    }

    /// Blocks until the next event.
    func next() -> Event {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty { condition.wait() }
        return events.removeFirst()
    }
}

/// The upstream Messages API through URLSession (TLS with the system's certificate
/// store, verified), one session per proxy. Answers stream back through a
/// `ResponseStream` per request; redirects are never followed (they could carry the
/// credential elsewhere).
final class Upstream: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // @unchecked: `state` is behind its Mutex; `session` is set once in init.
    private struct State {
        var open = true
        var streams: [Int: ResponseStream] = [:]
    }
    private let state = Mutex(State())
    private var session: URLSession!
    private let queue = OperationQueue()

    override init() {
        super.init()
        queue.maxConcurrentOperationCount = 1
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.httpMaximumConnectionsPerHost = 16
        // Claude Code waits up to 10 minutes for an answer; so does the proxy.
        configuration.timeoutIntervalForRequest = 600
        configuration.timeoutIntervalForResource = 3600
        session = URLSession(configuration: configuration, delegate: self, delegateQueue: queue)
    }

    /// Starts the request; its answer arrives through the returned stream. `cancel` stops it.
    /// Once the session is invalidated, the stream ends at once (cancelled).
    func start(_ request: URLRequest) -> (stream: ResponseStream, cancel: @Sendable () -> Void) {
        let stream = ResponseStream()
        // A task is only ever created on a session that is still open.
        let task = state.withLock { state -> URLSessionDataTask? in
            guard state.open else { return nil }
            let task = session.dataTask(with: request)
            state.streams[task.taskIdentifier] = stream
            return task
        }
        guard let task else {
            stream.push(.end(URLError(.cancelled)))
            return (stream, {})
        }
        task.resume()
        return (stream, { task.cancel() })
    }

    func invalidate() {
        state.withLock { $0.open = false }
        session.invalidateAndCancel()
    }

    private func stream(for task: URLSessionTask) -> ResponseStream? {
        state.withLock { $0.streams[task.taskIdentifier] }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        if let http = response as? HTTPURLResponse {
            let headers = http.allHeaderFields.compactMap { key, value -> (String, String)? in
                guard let name = key as? String else { return nil }
                return (name, "\(value)")
            }.sorted { $0.0.lowercased() < $1.0.lowercased() }
            stream(for: dataTask)?.push(.head(status: http.statusCode, headers: headers))
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        stream(for: dataTask)?.push(.data(data))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        let stream = state.withLock { $0.streams.removeValue(forKey: task.taskIdentifier) }
        stream?.push(.end(error))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
