import Foundation

/// Linux capability names (as docker's --cap-add takes them) and their bits,
/// to validate a repository's `cap_add` and to know the bounding set the
/// probes must see.
public enum Capabilities {
    public static let bits: [String: Int] = [
        "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
        "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
        "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
        "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
        "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
        "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
        "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
        "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
    ]

    /// `NET_ADMIN`, `cap_net_admin` and `CAP_NET_ADMIN` all name the same capability.
    public static func normalize(_ name: String) -> String {
        let upper = name.uppercased()
        return upper.hasPrefix("CAP_") ? String(upper.dropFirst(4)) : upper
    }

    public static func validate(_ names: [String]) throws -> [String] {
        try names.map { name in
            let normalized = normalize(name)
            guard bits[normalized] != nil else {
                throw PlanError("unknown capability \"\(name)\" in cap_add of .patina/config.json")
            }
            guard normalized != "SYS_ADMIN" else {
                throw PlanError("cap_add SYS_ADMIN is refused: it undoes the sandbox (mounts, namespaces)")
            }
            return normalized
        }
    }

    /// The 16-hex-digit mask /proc/self/status shows for these capabilities.
    public static func mask(_ names: [String]) -> String {
        let value = names.reduce(UInt64(0)) { $0 | (bits[normalize($1)].map { UInt64(1) << UInt64($0) } ?? 0) }
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }
}
