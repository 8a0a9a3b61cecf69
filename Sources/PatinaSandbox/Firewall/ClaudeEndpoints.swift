import Foundation

/// How Claude Code authenticates in the sandbox.
public enum ClaudeAuth: String, Sendable, Codable {
    /// `ANTHROPIC_API_KEY` or `ANTHROPIC_AUTH_TOKEN`: only the Messages API is needed.
    case apiKey
    /// `CLAUDE_CODE_OAUTH_TOKEN` (a subscription token from `claude setup-token`).
    case oauthToken
}

/// What Claude Code itself must reach, added to every firewalled run.
///
/// - With `ANTHROPIC_BASE_URL` set: exactly its host and port over TCP, nothing else
///   (not the rest of that host, and no Anthropic host).
/// - With an API key: `api.anthropic.com:443/tcp`.
/// - With an OAuth token: also `console.anthropic.com:443/tcp` and `claude.ai:443/tcp`,
///   where the CLI looks up and refreshes subscription credentials. All three are
///   Anthropic's own hosts, so they open no new place to send data to.
///
/// Telemetry and feature-flag hosts (Statsig, Sentry, Datadog) are never added: runs
/// set `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`. The `anthropic` preset lists
/// them for whoever wants them.
public enum ClaudeEndpoints {
    public static let source = "Claude Code"
    public static let baseURLSource = "ANTHROPIC_BASE_URL"

    public static func entries(baseURL: String?, auth: ClaudeAuth) throws -> [AllowEntry] {
        if let baseURL, !baseURL.isEmpty {
            return [try entry(forBaseURL: baseURL)]
        }
        var hosts = ["api.anthropic.com"]
        if auth == .oauthToken { hosts += ["console.anthropic.com", "claude.ai"] }
        return hosts.map { AllowEntry(host: .name($0), port: 443, transport: .tcp, source: source) }
    }

    /// `http://172.17.0.1:4321` -> `172.17.0.1:4321/tcp`; the scheme's port when none is given.
    ///
    /// A base URL naming a host that only `/etc/hosts` knows (`host.docker.internal`)
    /// never passes through the sandbox resolver, so its address is never allowed:
    /// callers pass such a URL with the address instead.
    public static func entry(forBaseURL text: String) throws -> AllowEntry {
        func fail(_ reason: String) -> FirewallError {
            .invalidSetting(name: baseURLSource, value: text, reason: reason)
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
            return try AllowList.parseEntry(written, source: baseURLSource)
        } catch let error as FirewallError {
            if case .invalidEntry(_, _, let reason) = error { throw fail(reason) }
            throw error
        }
    }
}
