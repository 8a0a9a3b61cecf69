import PatinaTemplates

/// The containers that own and program the sandbox's network namespace (the pod
/// pattern), all from the netguard image built from `firewall/Dockerfile.mustache`.
///
/// - holder: owns the namespace on the docker bridge and runs the sandbox resolver
///   (started with `--dns 127.0.0.1`, so every container that joins it resolves
///   through that resolver);
/// - helper: joins the namespace once, runs `apply.sh`, and exits;
/// - probe: the agent's image and user, no capabilities, runs `selftest.sh`.
public enum Netguard {
    public static let dockerfileTemplate = "firewall/Dockerfile.mustache"
    /// Where the rendered firewall files are mounted, read-only.
    public static let mountPath = "/patina/firewall"

    public static let holderCommand = ["dnsmasq", "--conf-file=\(mountPath)/dnsmasq.conf"]
    /// dnsmasq adds to ipsets (NET_ADMIN) and listens on port 53 (NET_BIND_SERVICE).
    public static let holderCapabilities = ["NET_ADMIN", "NET_BIND_SERVICE"]
    public static let holderDNS = "127.0.0.1"

    public static let helperCommand = ["bash", "\(mountPath)/apply.sh"]
    /// NET_RAW too: iptables' set match looks sets up through a raw socket.
    public static let helperCapabilities = ["NET_ADMIN", "NET_RAW"]

    public static let selfTestCommand = ["bash", "\(mountPath)/selftest.sh"]

    public static func dockerfile(templates: TemplateSet, baseImage: String) throws -> String {
        try templates.render(dockerfileTemplate, ["base_image": baseImage])
    }
}
