import Foundation
import Testing
import TierCore
import TierTestSupport
import Yams

/// The Kubernetes manifest, parsed as Kubernetes would read it: every field tierd needs in a pod
/// on a cgroup v2 node is there, and the policy it ships compiles.
struct DeploymentManifestTests {
    let documents: [[String: Any]]

    init() throws {
        let path = ShippedConfigTests.configDirectory.deletingLastPathComponent()
            .appendingPathComponent("deploy/kubernetes/tierd-daemonset.yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        documents = try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    func object(kind: String) throws -> [String: Any] {
        try #require(documents.first { $0["kind"] as? String == kind }, "no \(kind) in the manifest")
    }

    func value(_ object: [String: Any], _ path: String) -> Any? {
        path.split(separator: ".").reduce(object as Any?) { current, key in
            (current as? [String: Any])?[String(key)]
        }
    }

    var podSpec: [String: Any] {
        get throws { try #require(value(try object(kind: "DaemonSet"), "spec.template.spec") as? [String: Any]) }
    }

    var container: [String: Any] {
        get throws {
            let containers = try #require(try podSpec["containers"] as? [[String: Any]])
            return try #require(containers.first { $0["name"] as? String == "tierd" })
        }
    }

    @Test func everyObjectHasItsRequiredFields() throws {
        #expect(documents.map { $0["kind"] as? String } == ["Namespace", "ConfigMap", "DaemonSet"])
        for document in documents {
            #expect(document["apiVersion"] is String)
            #expect(value(document, "metadata.name") is String)
        }
        let daemonSet = try object(kind: "DaemonSet")
        let selector = try #require(value(daemonSet, "spec.selector.matchLabels") as? [String: String])
        let labels = try #require(value(daemonSet, "spec.template.metadata.labels") as? [String: String])
        #expect(!selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value })
        #expect(try container["image"] is String)
    }

    @Test func thePodSeesTheHostsProcessesAndCgroupTree() throws {
        #expect(try podSpec["hostPID"] as? Bool == true)
        let volumes = try #require(try podSpec["volumes"] as? [[String: Any]])
        let cgroup = try #require(volumes.first { value($0, "hostPath.path") as? String == "/sys/fs/cgroup" })
        let mounts = try #require(try container["volumeMounts"] as? [[String: Any]])
        let mount = try #require(mounts.first { $0["name"] as? String == cgroup["name"] as? String })
        #expect(mount["mountPath"] as? String == "/sys/fs/cgroup")
        // PSI triggers are written into memory.pressure: the tree must be writable.
        #expect(mount["readOnly"] as? Bool != true)
    }

    @Test func theContainerHasTheCapabilitiesAndSystemCallsItUses() throws {
        let security = try #require(try container["securityContext"] as? [String: Any])
        let added = Set(try #require(value(security, "capabilities.add") as? [String]))
        #expect(added == ["SYS_NICE", "SYS_PTRACE", "DAC_READ_SEARCH", "DAC_OVERRIDE"])
        #expect(value(security, "capabilities.drop") as? [String] == ["ALL"])
        #expect(security["privileged"] as? Bool == false)
        #expect(security["allowPrivilegeEscalation"] as? Bool == false)
        // RuntimeDefault refuses migrate_pages(2) and move_pages(2): it would leave tierd moving nothing.
        #expect(value(security, "seccompProfile.type") as? String == "Localhost")
        #expect(value(security, "seccompProfile.localhostProfile") as? String == "profiles/" + Self.seccompProfileName)
    }

    static let seccompProfileName = "tierd-seccomp.json"

    static var shippedSeccompProfile: Data {
        get throws {
            try Data(contentsOf: ShippedConfigTests.configDirectory.deletingLastPathComponent()
                .appendingPathComponent("deploy/kubernetes/" + seccompProfileName))
        }
    }

    @Test func theSeccompProfileRefusesByDefaultAndAllowsTheMovers() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Self.shippedSeccompProfile) as? [String: Any])
        #expect(object["defaultAction"] as? String == "SCMP_ACT_ERRNO")
        #expect(object["architectures"] as? [String] == ["SCMP_ARCH_X86_64"])
        let allowed = try SeccompProfile.allowedNames(in: Self.shippedSeccompProfile)
        // The moves, the PSI triggers' wait, the socket, the mover's priority and placement.
        for call in ["move_pages", "migrate_pages", "get_mempolicy", "epoll_wait", "accept", "setpriority", "sched_setaffinity"] {
            #expect(allowed.contains(call), "\(call) is not in the profile")
        }
        #expect(SeccompProfile.runtimeCalls.isSubset(of: allowed))
        #expect(SeccompProfile.codeCalls.isSubset(of: allowed))
        // Nothing a filter-escaping or namespace-changing process would want.
        for call in ["ptrace", "unshare", "setns", "mount", "bpf", "kexec_load", "init_module"] {
            #expect(!allowed.contains(call), "\(call) should stay refused")
        }
    }

    /// A direct system call added to the shim without a place in the profile would be refused in a pod.
    @Test func everySystemCallTheShimMakesIsAllowed() throws {
        let shim = try String(contentsOf: ShippedConfigTests.configDirectory.deletingLastPathComponent()
            .appendingPathComponent("Sources/CNuma/shim.h"), encoding: .utf8)
        let named = Set(shim.matches(of: /SYS_([a-z0-9_]+)/).map { String($0.output.1) })
        #expect(!named.isEmpty)
        #expect(named.isSubset(of: SeccompProfile.codeCalls), "not in SeccompProfile.codeCalls: \(named.subtracting(SeccompProfile.codeCalls).sorted())")
    }

    @Test func theSeccompProfileIsInItsGeneratedForm() throws {
        let shipped = try Self.shippedSeccompProfile
        let regenerated = SeccompProfile.document(allowing: try SeccompProfile.allowedNames(in: shipped))
        #expect(String(decoding: shipped, as: UTF8.self) == regenerated)
    }

    @Test func straceLinesNameTheirSystemCalls() throws {
        let lines: [Substring] = [
            "4242  move_pages(4250, 512, 0x7f3c2a1fe010, 0x7f3c2a1ff010, 0x7f3c2a200010, MPOL_MF_MOVE) = 0",
            "4243  <... futex resumed>)                = 0",
            "4242  --- SIGHUP {si_signo=SIGHUP, si_code=SI_USER, si_pid=1, si_uid=0} ---",
            "4242  +++ exited with 0 +++",
            "4244  epoll_wait(7,  <unfinished ...>",
            "4242  restart_syscall(<... resuming interrupted read ...>) = 0",
        ]
        #expect(lines.map(SeccompProfile.syscallName(inTraceLine:)) == ["move_pages", nil, nil, nil, "epoll_wait", "restart_syscall"])
    }

    @Test func theContainerIsBoundedAndOpensNoPort() throws {
        #expect(value(try container, "resources.limits.memory") is String)
        #expect(value(try container, "resources.requests.cpu") is String)
        #expect(try container["ports"] == nil)
        #expect(try podSpec["hostNetwork"] as? Bool != true)
    }

    @Test func theConfigMapPolicyCompilesAndIsTheOneTierdReads() throws {
        let data = try #require(value(try object(kind: "ConfigMap"), "data") as? [String: Any])
        let policyText = try #require(data["tierd.yaml"] as? String)
        let policy = try PolicyCompiler.compile(yaml: policyText, file: "tierd-daemonset.yaml:ConfigMap:tierd.yaml")
        #expect(policy.workloads.map(\.name) == ["guaranteed", "besteffort"])
        let command = try #require(try container["command"] as? [String])
        let configPath = try #require(command.firstIndex(of: "--config").map { command[$0 + 1] })
        let mounts = try #require(try container["volumeMounts"] as? [[String: Any]])
        let policyMount = try #require(mounts.first { $0["name"] as? String == "policy" })
        #expect(configPath == (policyMount["mountPath"] as? String ?? "") + "/tierd.yaml")
    }

    @Test func theProbesAskTierctlOverTheSocketTierdServes() throws {
        let command = try #require(try container["command"] as? [String])
        let socket = try #require(command.firstIndex(of: "--socket").map { command[$0 + 1] })
        for (probe, ready) in [("readinessProbe", true), ("livenessProbe", false)] {
            let argv = try #require(value(try container, "\(probe).exec.command") as? [String], "\(probe)")
            #expect(Array(argv.prefix(2)) == ["/usr/local/bin/tierctl", "health"])
            #expect(argv.contains("--ready") == ready)
            #expect(argv.firstIndex(of: "--socket").map { argv[$0 + 1] } == socket)
        }
        // The socket's directory is the host's, so that tierctl on the node reaches it too.
        let mounts = try #require(try container["volumeMounts"] as? [[String: Any]])
        let volumes = try #require(try podSpec["volumes"] as? [[String: Any]])
        let directory = String(socket[..<socket.lastIndex(of: "/")!])
        let mount = try #require(mounts.first { $0["mountPath"] as? String == directory })
        #expect(volumes.first { $0["name"] as? String == mount["name"] as? String }.flatMap { value($0, "hostPath.path") as? String } == directory)
    }

    @Test func theContainerfileBuildsTheBinariesTheManifestRuns() throws {
        let path = ShippedConfigTests.configDirectory.deletingLastPathComponent().appendingPathComponent("deploy/container/Containerfile").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("swift build -c release --static-swift-stdlib --product tierd"))
        #expect(text.contains("swift build -c release --static-swift-stdlib --product tierctl"))
        #expect(text.contains("libnuma1"))
        // Both binaries land where the manifest's command and probes run them.
        #expect(try container["command"] as? [String] != nil && (try container["command"] as? [String])?.first == "/usr/local/bin/tierd")
        #expect(text.contains("COPY --from=build /out/tierd /out/tierctl /usr/local/bin/"))
    }
}
