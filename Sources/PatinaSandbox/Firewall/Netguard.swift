import PatinaTemplates

/// The container that owns and programs the sandbox's network namespace (the pod
/// pattern), from the netguard image built from `firewall/Dockerfile.mustache`.
///
/// The holder (`holder.sh`) owns the namespace on the docker bridge, starts the sandbox
/// resolver (it is started with `--dns 127.0.0.1`, so every container that joins it
/// resolves through that resolver), applies the firewall (`apply.sh`), then gives up its
/// capabilities. Sandbox containers may join while it applies the rules: their first
/// process is patina's probe, which uses no network until patina says the rules are in.
/// Every sandbox container proves the protections itself, as the agent's user, before
/// its command starts (`probe.sh` and the firewall's `selftest.sh`).
public enum Netguard {
    public static let dockerfileTemplate = "firewall/Dockerfile.mustache"
    /// Where the rendered firewall files are mounted, read-only.
    public static let mountPath = "/patina/firewall"
    /// Where the holder reports to patina (read-write; mounted in the holder only):
    /// `applied`, `apply.out`, `resolver.log`, the `requests` FIFO and its answers.
    public static let statePath = "/patina/netguard"
    /// The FIFO patina writes "VERB NUMBER" lines to (see `firewall/holder.sh.mustache`).
    public static let requestsFIFO = "requests"
    /// The sandbox resolver's log, in the holder's report folder.
    public static let resolverLog = "resolver.log"

    public static let holderCommand = ["bash", "\(mountPath)/holder.sh"]
    /// apply.sh: NET_ADMIN, and NET_RAW (iptables' set match looks sets up through a raw
    /// socket); the resolver keeps NET_ADMIN (its ipsets) and NET_BIND_SERVICE (port 53);
    /// SETPCAP lets the holder drop the rest from its bounding set once applied (it keeps
    /// NET_ADMIN, to list its sets).
    public static let holderCapabilities = ["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW", "SETPCAP"]
    public static let holderDNS = "127.0.0.1"

    public static func dockerfile(templates: TemplateSet, baseImage: String) throws -> String {
        try templates.render(dockerfileTemplate, ["base_image": baseImage])
    }
}
