import Foundation

/// The seccomp profile the DaemonSet ships (deploy/kubernetes/tierd-seccomp.json), in the OCI
/// format a Kubernetes `Localhost` profile takes. Container runtimes' default profiles refuse
/// migrate_pages(2) and move_pages(2), so tierd needs its own: an allow list of the calls tierd
/// and tierctl were seen to make in the lab (the `probe-syscalls` scenario, under strace), and
/// a refusal (EPERM) for everything else.
public enum SeccompProfile {
    /// Calls a container runtime may still make after it applied the filter and before tierd
    /// runs: the exec itself, and what a runtime's threads (runc's Go runtime) do meanwhile.
    /// Not measured here (the lab has no container runtime); a handful, all harmless.
    public static let runtimeCalls: Set<String> = [
        "execve", "futex", "nanosleep", "epoll_pwait", "sched_yield", "rt_sigreturn", "tgkill", "getpid",
        "exit", "exit_group", "close", "fcntl", "write", "capget", "capset", "prctl", "fstat", "newfstatat",
    ]

    /// Calls tierd's own code makes by name (Sources/CNuma/shim.h, libnuma's two movers, and
    /// libc calls on paths a pod's life may not take), allowed whether or not the measured run
    /// took their paths: whole-task moves through migrate_pages(2) with CAP_SYS_NICE lowered
    /// around them, and the mover's CPU placement.
    public static let codeCalls: Set<String> = [
        "migrate_pages", "move_pages", "capget", "capset", "sched_getaffinity", "sched_setaffinity", "getcpu", "gettid",
        // A cgroup directory's children, listed without a DIR stream.
        "getdents64",
        // The policy file's trust check (geteuid), and realpath(3) of a relative --config (getcwd).
        "geteuid", "getcwd",
    ]

    /// The system call an `strace -f -o FILE` line starts, or nil for the lines that do not start
    /// one (`<... resumed>`, signals, exits).
    public static func syscallName(inTraceLine line: Substring) -> String? {
        let fields = line.drop { $0 == " " }
        guard let pidEnd = fields.firstIndex(of: " "), fields[..<pidEnd].allSatisfy(\.isNumber) else { return nil }
        let call = fields[pidEnd...].drop { $0 == " " }
        guard let open = call.firstIndex(of: "("), open != call.startIndex else { return nil }
        let name = call[..<open]
        let valid = name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
        return valid ? String(name) : nil
    }

    /// The profile allowing `measured`, ``codeCalls`` and ``runtimeCalls`` on x86-64, one name per line, sorted,
    /// so that a regenerated profile's diff shows exactly what changed.
    public static func document(allowing measured: Set<String>) -> String {
        let names = measured.union(codeCalls).union(runtimeCalls).sorted().map { "        \"\($0)\"" }.joined(separator: ",\n")
        return """
            {
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 1,
              "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [
                {
                  "action": "SCMP_ACT_ALLOW",
                  "names": [
            \(names)
                  ]
                }
              ]
            }

            """
    }

    /// The names a profile document allows.
    public static func allowedNames(in document: Data) throws -> Set<String> {
        let object = try JSONSerialization.jsonObject(with: document) as? [String: Any]
        let rules = object?["syscalls"] as? [[String: Any]] ?? []
        return Set(rules.filter { $0["action"] as? String == "SCMP_ACT_ALLOW" }.flatMap { $0["names"] as? [String] ?? [] })
    }
}
