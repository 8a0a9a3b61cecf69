import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The Docker Engine API over the daemon's unix socket: HTTP/1.1, one connection per
/// request. A `docker` process costs tens of milliseconds of start-up; a request here
/// costs about one. Used for the calls on a run's critical path that need no terminal
/// (creating and starting the network holder, removing containers, looking things up);
/// the attached agent run stays with the CLI.
public struct DockerAPI: Sendable {
    /// The daemon's socket.
    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The socket the docker CLI would use, or nil when it would use something this client
    /// does not speak (a TCP or SSH `DOCKER_HOST`, a context, another executable through
    /// PATINA_DOCKER): then every call goes through the CLI.
    public static func daemonSocket(environment: [String: String]) -> String? {
        if environment["PATINA_DOCKER"] != nil { return nil }
        if let context = environment["DOCKER_CONTEXT"], !context.isEmpty, context != "default" { return nil }
        guard let host = environment["DOCKER_HOST"], !host.isEmpty else {
            // A context chosen with `docker context use` lives in the CLI's config.
            let config = environment["DOCKER_CONFIG"].map { URL(fileURLWithPath: $0) }
                ?? URL(fileURLWithPath: environment["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".docker")
            if let data = FileManager.default.contents(atPath: config.appendingPathComponent("config.json").path),
               let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let context = object["currentContext"] as? String, !context.isEmpty, context != "default" {
                return nil
            }
            return "/var/run/docker.sock"
        }
        guard host.hasPrefix("unix://") else { return nil }
        return String(host.dropFirst("unix://".count))
    }

    /// One answer: its status code and body.
    public struct Response: Sendable {
        public let status: Int
        public let body: Data

        /// The daemon's own message (`{"message": "…"}`), or the body as text.
        public var message: String {
            if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let message = object["message"] as? String {
                return message
            }
            return String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        public var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    }

    /// A request the daemon could not be asked (no socket, a broken answer).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static let version = "v1.40"

    /// Sends one request and returns the answer. Blocking socket work runs off the
    /// cooperative pool.
    public func request(_ method: String, _ path: String, json body: Any? = nil, timeout: Int = 120) async throws -> Response {
        let payload = try body.map { try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) }
        let socketPath = self.socketPath
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    try Self.exchange(socketPath: socketPath, method: method, path: "/\(Self.version)\(path)", body: payload, timeout: timeout)
                })
            }
        }
    }

    private static func exchange(socketPath: String, method: String, path: String, body: Data?, timeout: Int) throws -> Response {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var time = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure(description: "socket path too long: \(socketPath)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw Failure(description: "cannot connect to the Docker daemon at unix://\(socketPath): \(String(cString: strerror(errno)))")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nUser-Agent: patina\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        var out = Data((head + "\r\n").utf8)
        if let body { out.append(body) }
        try out.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw Failure(description: "writing to the Docker daemon: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
        var answer = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while answer.count < 64 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { throw Failure(description: "reading from the Docker daemon: \(String(cString: strerror(errno)))") }
            answer.append(contentsOf: buffer[0..<n])
        }
        return try parse(answer)
    }

    /// An HTTP/1.1 answer read to its end (the connection was `close`): status line,
    /// headers, then the body as sent, with or without chunked encoding.
    static func parse(_ answer: Data) throws -> Response {
        let separator = Data("\r\n\r\n".utf8)
        guard let end = answer.range(of: separator) else { throw Failure(description: "the Docker daemon's answer has no header end") }
        let head = String(decoding: answer[answer.startIndex..<end.lowerBound], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusWords = lines.first?.split(separator: " ") ?? []
        guard statusWords.count >= 2, let status = Int(statusWords[1]) else {
            throw Failure(description: "the Docker daemon's answer has no status: \(lines.first ?? "")")
        }
        var chunked = false
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "transfer-encoding", parts[1].lowercased().contains("chunked") { chunked = true }
        }
        var body = Data(answer[end.upperBound...])
        if chunked {
            var decoded = Data()
            var rest = body[...]
            while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
                let size = Int(String(decoding: rest[rest.startIndex..<lineEnd.lowerBound], as: UTF8.self)
                    .split(separator: ";").first.map(String.init) ?? "", radix: 16) ?? 0
                if size == 0 { break }
                let start = lineEnd.upperBound
                guard rest.distance(from: start, to: rest.endIndex) >= size else { break }
                let stop = rest.index(start, offsetBy: size)
                decoded.append(rest[start..<stop])
                rest = rest[stop...].dropFirst(2)
            }
            body = decoded
        }
        return Response(status: status, body: body)
    }

    // MARK: - Calls

    /// `GET /_ping`: whether the daemon answers; throws with why not.
    public func ping() async throws {
        let response = try await request("GET", "/_ping", timeout: 30)
        guard response.status == 200 else { throw Failure(description: "the Docker daemon answered \(response.status): \(response.message)") }
    }

    /// Creates and starts a detached container; returns its id. A missing image is an
    /// error (never pulled). A container created but not started is removed again.
    public func run(_ spec: ContainerSpec) async throws -> String {
        let body = try spec.createBody()
        let name = spec.name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? spec.name
        let created = try await request("POST", "/containers/create?name=\(name)", json: body)
        guard created.status == 201, let object = created.json as? [String: Any], let id = object["Id"] as? String else {
            throw Failure(description: "creating container \(spec.name) (\(spec.image)): \(created.message)")
        }
        let started = try await request("POST", "/containers/\(id)/start")
        guard started.status == 204 || started.status == 304 else {
            _ = try? await request("DELETE", "/containers/\(id)?force=1&v=1")
            throw Failure(description: "starting container \(spec.name): \(started.message)")
        }
        return id
    }

    /// Removes a container (killing it if it runs) and its anonymous volumes. True when it
    /// is gone, including when there was none.
    public func remove(_ name: String) async -> Bool {
        guard let response = try? await request("DELETE", "/containers/\(name)?force=1&v=1") else { return false }
        return response.status == 204 || response.status == 404
    }

    /// `GET /containers/NAME/json`, or nil when there is no such container (or no answer).
    public func inspect(_ name: String) async -> [String: Any]? {
        guard let response = try? await request("GET", "/containers/\(name)/json", timeout: 30), response.status == 200 else { return nil }
        return response.json as? [String: Any]
    }

    /// When the named volume was created (`GET /volumes/NAME`): nil when it does not exist,
    /// `.some(nil)` when the daemon did not answer.
    public func volumeCreated(_ name: String) async -> String?? {
        guard let response = try? await request("GET", "/volumes/\(name)", timeout: 30) else { return .some(nil) }
        guard response.status == 200 else { return .none }
        return .some((response.json as? [String: Any])?["CreatedAt"] as? String ?? "")
    }

    /// Whether an image exists locally (never pulled).
    public func imageExists(_ reference: String) async -> Bool? {
        let escaped = reference.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.:@"))) ?? reference
        guard let response = try? await request("GET", "/images/\(escaped)/json", timeout: 30) else { return nil }
        return response.status == 200
    }

    /// Names of containers carrying `label`, running or not.
    public func containers(label: String) async throws -> [String] {
        let filters = try JSONSerialization.data(withJSONObject: ["label": [label]])
        let query = String(decoding: filters, as: UTF8.self).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let response = try await request("GET", "/containers/json?all=1&filters=\(query)", timeout: 60)
        guard response.status == 200, let list = response.json as? [[String: Any]] else {
            throw Failure(description: "listing containers: \(response.message)")
        }
        return list.compactMap { ($0["Names"] as? [String])?.first.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } }
    }
}

extension ContainerSpec {
    /// The body of `POST /containers/create` for this spec: the same container `docker run
    /// --detach` makes from `runArguments`. Only what a detached container of patina's uses;
    /// anything the API form does not carry is an error rather than silently left out.
    public func createBody() throws -> [String: Any] {
        guard passEnvironment.isEmpty, passedValues.isEmpty else {
            throw DockerAPI.Failure(description: "a container passed variables from patina's environment is started with the CLI")
        }
        var host: [String: Any] = [
            "CapDrop": capDrop, "CapAdd": capAdd, "SecurityOpt": securityOptions,
            "ReadonlyRootfs": readOnlyRoot, "Init": initProcess,
            "Mounts": mounts.map { mount -> [String: Any] in
                var body: [String: Any] = ["Type": mount.volume ? "volume" : "bind", "Source": mount.source, "Target": mount.target, "ReadOnly": mount.readOnly]
                if mount.volume { body["VolumeOptions"] = ["NoCopy": true] }
                return body
            },
        ]
        if let network { host["NetworkMode"] = network }
        if !dns.isEmpty { host["Dns"] = dns }
        if !tmpfs.isEmpty {
            var table: [String: String] = [:]
            for entry in tmpfs {
                let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
                table[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            host["Tmpfs"] = table
        }
        if let pidsLimit { host["PidsLimit"] = pidsLimit }
        if memory != nil || cpus != nil {
            throw DockerAPI.Failure(description: "a container with memory or CPU limits is started with the CLI")
        }
        var body: [String: Any] = [
            "Image": image, "Cmd": command, "Labels": labels, "HostConfig": host,
            "Env": environment.keys.sorted().map { "\($0)=\(environment[$0]!)" },
            "AttachStdin": false, "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
        ]
        if let user { body["User"] = user }
        if let workingDirectory { body["WorkingDir"] = workingDirectory }
        return body
    }
}
