/// What the self-test tries that must fail. The caller listens on these (a canary on
/// the docker bridge gateway, say) and confirms afterwards that nothing arrived.
public struct SelfTestTargets: Sendable, Equatable {
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public let address: IPNetwork
        public let port: Int

        /// `address` must be a literal IPv4 or IPv6 address: the self-test must not
        /// depend on resolving it.
        public init(address: String, port: Int) throws {
            guard case .success(let network) = IPNetwork.parse(address), network.isHost else {
                throw FirewallError.invalidSetting(name: "self-test target", value: address, reason: "not an IP address")
            }
            guard (1...65535).contains(port) else {
                throw FirewallError.invalidSetting(name: "self-test port", value: "\(port)", reason: "out of range 1-65535")
            }
            self.address = network
            self.port = port
        }

        public var description: String {
            address.family == .v6 ? "[\(address.address)]:\(port)" : "\(address.address):\(port)"
        }
    }

    /// A TCP connection to each must be refused at once (not hang, not connect).
    public var blockedTCP: [Endpoint]
    /// A datagram to each must be rejected before it leaves.
    public var blockedUDP: [Endpoint]
    /// A DNS query to each, over UDP and TCP, must be rejected: "another resolver".
    public var foreignDNS: [Endpoint]
    /// A name that is not allowed: the sandbox resolver must answer NXDOMAIN.
    public var blockedName: String
    /// Every check runs at once; one still waiting after this long fails as hanging.
    public var deadlineSeconds: Int

    public init(blockedTCP: [Endpoint] = [], blockedUDP: [Endpoint] = [], foreignDNS: [Endpoint] = [],
                blockedName: String = "blocked.patina-selftest.invalid", deadlineSeconds: Int = 3) {
        self.blockedTCP = blockedTCP
        self.blockedUDP = blockedUDP
        self.foreignDNS = foreignDNS
        self.blockedName = blockedName
        self.deadlineSeconds = max(1, deadlineSeconds)
    }

    /// One canary host listening on a TCP port, a UDP port and (optionally) a port
    /// that receives DNS-shaped queries.
    public static func canary(address: String, tcpPort: Int, udpPort: Int, dnsPort: Int? = nil) throws -> SelfTestTargets {
        SelfTestTargets(
            blockedTCP: [try Endpoint(address: address, port: tcpPort)],
            blockedUDP: [try Endpoint(address: address, port: udpPort)],
            foreignDNS: try dnsPort.map { [try Endpoint(address: address, port: $0)] } ?? [])
    }
}
