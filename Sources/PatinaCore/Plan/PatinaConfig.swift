import Foundation
import PatinaModelProxy

/// A repository's own configuration: `.patina/config.json`, committed with the
/// project. Every field is optional; flags on the command line win.
public struct PatinaConfig: Codable, Sendable, Equatable {
    public struct Limits: Codable, Sendable, Equatable {
        public var memory: String?
        public var cpus: String?
        public var pids: Int?
        public var tmp: String?
    }

    public struct Seccomp: Codable, Sendable, Equatable {
        /// Extra syscalls to deny.
        public var deny: [String]?
        /// Syscalls the default profile denies that this repository needs.
        public var relax: [String]?
    }

    public var allow: [String]?
    public var presets: [String]?
    public var baseImage: String?
    public var model: String?
    public var maxTurns: Int?
    public var timeout: String?
    public var limits: Limits?
    public var seccomp: Seccomp?
    public var capAdd: [String]?
    /// Upstream resolvers for the sandbox's own resolver (`IP` or `IP:PORT`);
    /// default: the host's resolv.conf.
    public var dns: [String]?
    /// Toolchains to install: `["python"]` adds to what patina detects, `{"only": [...]}` replaces it.
    public var toolchains: ToolchainSetting?
    /// The Claude Code executable to put in the image (before the one installed on this machine).
    public var agentBinary: String?
    /// CA certificate files (PEM) the image trusts instead of this machine's system bundle.
    public var caCertificates: [String]?
    /// Allowed names whose answers may be private addresses (an internal mirror), as long as
    /// they are what this machine itself resolves the name to.
    public var acceptPrivateDNS: [String]?
    /// The run's budget in US dollars (`--max-cost` wins).
    public var maxCost: Double?
    /// Prices added to or replacing the shipped table (templates/model-prices.json), by model id.
    public var modelPrices: [String: ModelPrice]?
    /// Server-side network features of the model API the proxy forwards (`--allow-api-feature` adds).
    public var allowAPIFeatures: [String]?
    /// Rounds for runs with a check (`--rounds` wins; ignored without a check).
    public var rounds: Int?
    /// The JUnit report the check writes (`--check-report` wins).
    public var checkReport: String?
    /// Leftovers larger than this are not committed (`--max-file-size` wins).
    public var maxFileSize: SizeSetting?
    /// New paths committed from the worktree at most (`--max-new-paths` wins).
    public var maxNewPaths: Int?
    /// The free space a run leaves on its disks (`--min-free` wins).
    public var minFree: SizeSetting?
    /// `--on slurm`'s defaults (the `--slurm-*` flags and `--proxy-listen` win).
    public var slurm: Slurm?

    public struct Slurm: Codable, Sendable, Equatable {
        public var partition: String?
        public var account: String?
        public var time: String?
        /// More sbatch arguments, before those of `--slurm-arg`.
        public var args: [String]?
        public var proxyListen: String?

        public init(partition: String? = nil, account: String? = nil, time: String? = nil, args: [String]? = nil, proxyListen: String? = nil) {
            self.partition = partition
            self.account = account
            self.time = time
            self.args = args
            self.proxyListen = proxyListen
        }

        enum CodingKeys: String, CodingKey {
            case partition, account, time, args
            case proxyListen = "proxy_listen"
        }
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case allow, presets, model, timeout, limits, seccomp, dns, toolchains, slurm
        case baseImage = "base_image"
        case maxTurns = "max_turns"
        case capAdd = "cap_add"
        case agentBinary = "agent_binary"
        case caCertificates = "ca_certificates"
        case acceptPrivateDNS = "accept_private_dns"
        case maxCost = "max_cost"
        case modelPrices = "model_prices"
        case allowAPIFeatures = "allow_api_features"
        case rounds
        case checkReport = "check_report"
        case maxFileSize = "max_file_size"
        case maxNewPaths = "max_new_paths"
        case minFree = "min_free"
    }

    public struct Invalid: BadInput, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot use \(path): \(reason)" }
    }

    /// Loads `<repo>/.patina/config.json`; a missing file is an empty config.
    public static func load(from directory: URL) throws -> PatinaConfig {
        let url = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return PatinaConfig() }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw Invalid(path: url.path, reason: "unreadable (\(error.localizedDescription))")
        }
        do {
            return try JSONDecoder().decode(PatinaConfig.self, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw Invalid(path: url.path, reason: "wrong type for \"\(key)\"")
        } catch let DecodingError.dataCorrupted(context) {
            throw Invalid(path: url.path, reason: "not valid JSON (\(context.debugDescription))")
        } catch {
            throw Invalid(path: url.path, reason: "\(error)")
        }
    }
}
