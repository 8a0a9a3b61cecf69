import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization

/// What arrives from the upstream for one request, in order; the connection's thread
/// takes it from here and writes it to the client as it comes.
final class ResponseStream: Sendable {
    enum Event {
        case head(status: Int, headers: [(String, String)])
        case data(Data)
        case end(Error?)
    }

    private let events = Mutex<[Event]>([])
    /// One signal per event pushed: `next` waits for one, then takes the first event.
    private let arrived = DispatchSemaphore(value: 0)

    func push(_ event: Event) {
        events.withLock { $0.append(event) }
        arrived.signal()
    }

    /// Blocks until the next event.
    func next() -> Event {
        arrived.wait()
        return events.withLock { $0.removeFirst() }
    }
}

/// The upstream Messages API through URLSession (TLS with the system's certificate
/// store, verified), one session per proxy. Answers stream back through a
/// `ResponseStream` per request; redirects are never followed (they could carry the
/// credential elsewhere).
final class Upstream: NSObject, URLSessionDataDelegate, Sendable {
    private struct State {
        var open = true
        var streams: [Int: ResponseStream] = [:]
        /// Set once in init (the session needs this delegate first).
        var session: URLSession?
    }
    private let state = Mutex(State())
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
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: queue)
        state.withLock { $0.session = session }
    }

    /// Starts the request; its answer arrives through the returned stream. `cancel` stops it.
    /// Once the session is invalidated, the stream ends at once (cancelled).
    func start(_ request: URLRequest) -> (stream: ResponseStream, cancel: @Sendable () -> Void) {
        let stream = ResponseStream()
        // A task is only ever created on a session that is still open.
        let task = state.withLock { state -> URLSessionDataTask? in
            guard state.open, let session = state.session else { return nil }
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
        let session = state.withLock { state in
            state.open = false
            return state.session
        }
        session?.invalidateAndCancel()
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
