import TierCore
import TierLinux

/// One thing tierd found about the host before its first tick.
public struct StartupFinding: Sendable, Equatable, CustomStringConvertible {
    /// A fatal finding stops tierd; a warning is logged once and tierd runs (perhaps observing only).
    public enum Level: String, Sendable { case fatal, warning, info }
    public var level: Level
    public var message: String
    public var description: String { "\(level.rawValue): \(message)" }
}

/// The start-up checks: cgroup v2 with the memory controller, a slow tier, tierd's own cpuset
/// covering the slow nodes, and the capability to move other processes' pages.
public enum StartupChecks {
    /// CAP_SYS_NICE: needed to move pages of other users' tasks and shared pages.
    static let capSysNice = 23

    public static func run(collector: SnapshotCollector, policy: Policy, dryRun: Bool) -> (Topology?, [StartupFinding]) {
        var findings: [StartupFinding] = []
        let files = collector.files
        let controllers = (try? files.read(collector.cgroupMount + "/cgroup.subtree_control")) ?? ""
        if !controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("memory") {
            findings.append(.init(level: .warning, message:
                "the memory controller is not enabled for child groups (\(collector.cgroupMount)/cgroup.subtree_control): no group has memory.numa_stat to act on"))
        }
        // The root cgroup alone has no cgroup.type: a mount that has one shows a subtree, as the
        // runtime's own mount does inside a pod's private cgroup namespace.
        if files.exists(collector.cgroupMount + "/cgroup.type") {
            findings.append(.init(level: .warning, message:
                "the cgroup tree at \(collector.cgroupMount) is not the host's root (it has cgroup.type, which only the root lacks): tierd sees only the groups below it; in a Kubernetes pod, mount the host's /sys/fs/cgroup as a hostPath volume"))
        }
        if !collector.namespace.isIdentity {
            findings.append(.init(level: .info, message:
                "tierd is in a cgroup namespace of its own: its cgroup there (/\(collector.namespace.selfInNamespace.joined(separator: "/"))) is \(collector.namespace.selfInMount) in the tree at \(collector.cgroupMount); tasks' cgroups are mapped through it"))
        }
        guard let topology = try? collector.topology(selection: policy.tiers) else {
            findings.append(.init(level: .fatal, message: "cannot read the NUMA topology under \(KernelPaths.nodeRoot)"))
            return (nil, findings)
        }
        if topology.slow.isEmpty {
            findings.append(.init(level: .warning, message:
                "no slow memory tier (nodes \(NodeSet(topology.nodes.map(\.id))), one tier): observe mode, nothing will be moved"))
        } else {
            findings.append(.init(level: .info, message:
                "fast nodes \(topology.fast), slow nodes \(topology.slow), from \(topology.source.rawValue)"))
        }
        if let allowed = collector.tierdAllowedNodes(), !topology.slow.isSubset(of: allowed) {
            findings.append(.init(level: .warning, message:
                "tierd's own cpuset allows nodes \(allowed) but the slow tier is \(topology.slow): migrate_pages(2) cannot target \(topology.slow.subtracting(allowed)); run tierd in a cgroup whose cpuset.mems includes them"))
        }
        let wanted = KernelSetting.wanted(by: policy.controller)
        if !wanted.isEmpty {
            let values = wanted.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            findings.append(.init(level: .info, message:
                "the policy has tierd set \(values) while it runs\(dryRun ? " (not in a dry run)" : "") and put back what it found"))
        }
        if policy.controller.hotPages == .written && !topology.slow.isEmpty {
            findings.append(collector.tracksWrittenPages
                ? .init(level: .info, message: "hot pages: opted-in workloads' pages written on the slow tier come back to DRAM at up to \(formatBytes(policy.controller.hotPromotionRate))/s (soft-dirty bits)")
                : .init(level: .warning, message: "hot pages: this kernel keeps no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY), or tierd cannot clear them: opted-in workloads' hot pages stay on the slow tier (set controller.hot_pages: off to say so)"))
        }
        for mover in (dryRun ? collector.kernelMovers() : collector.kernelMovers().owned(by: policy.controller)).findings {
            findings.append(.init(level: .warning, message: "kernel mover: \(mover.text)"))
        }
        if !dryRun, let status = try? files.read(KernelPaths.selfStatus) {
            let capEff = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
                .flatMap { UInt64($0.dropFirst("CapEff:".count).trimmingWhitespace(), radix: 16) } ?? 0
            if capEff & (1 << UInt64(capSysNice)) == 0 {
                findings.append(.init(level: .fatal, message:
                    "tierd lacks CAP_SYS_NICE: it cannot move other processes' pages (run as root, or use --dry-run)"))
            }
        }
        return (topology, findings)
    }
}

extension Substring {
    func trimmingWhitespace() -> String { String(self.filter { !$0.isWhitespace }) }
}
