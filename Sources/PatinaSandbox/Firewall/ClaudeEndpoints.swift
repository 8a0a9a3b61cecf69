import Foundation

/// What Claude Code itself must reach, added to every firewalled run: exactly the host
/// and port of its run's model proxy (patina's own listener on the docker bridge
/// gateway), over TCP, and nothing else. The model API is not on the agent's
/// allow-list: the proxy reaches it from outside the sandbox, with the credential the
/// sandbox never holds.
///
/// Telemetry and feature-flag hosts (Statsig, Sentry, Datadog) are never added: runs
/// set `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`. The `anthropic` preset lists
/// Anthropic's hosts for whoever wants them anyway.
public enum ClaudeEndpoints {
    public static let source = "patina model proxy"

    /// The allow entry for a run's model proxy, from its URL (`http://172.17.0.1:41234`).
    public static func modelProxy(url: String) throws -> AllowEntry {
        try entry(forURL: url, source: source)
    }

    /// `http://172.17.0.1:4321` -> `172.17.0.1:4321/tcp`; the scheme's port when none is given.
    ///
    /// A URL naming a host that only `/etc/hosts` knows (`host.docker.internal`) never
    /// passes through the sandbox resolver, so its address is never allowed: callers
    /// pass such a URL with the address instead.
    public static func entry(forURL text: String, source: String) throws -> AllowEntry {
        func fail(_ reason: String) -> FirewallError {
            .invalidSetting(name: source, value: text, reason: reason)
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw fail("not a URL")
        }
        guard scheme == "http" || scheme == "https" else { throw fail("the scheme must be http or https") }
        guard var host = components.host, !host.isEmpty else { throw fail("no host") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        let written = host.contains(":") ? "[\(host)]:\(port)/tcp" : "\(host):\(port)/tcp"
        do {
            return try AllowList.parseEntry(written, source: source)
        } catch let error as FirewallError {
            if case .invalidEntry(_, _, let reason) = error { throw fail(reason) }
            throw error
        }
    }
}
