/// Which cgroup file shields a group from the kernel's reclaim (`controller.kernel_shield`).
public enum ShieldProtection: String, Sendable, Equatable, CaseIterable {
    /// `memory.low`, best effort: the kernel reclaims below it only when it finds nothing else,
    /// and so rather demotes a shielded page than fails an allocation.
    case low
    /// `memory.min`, a guarantee on paper: the kernel does not reclaim below it, and when nothing
    /// else is left it calls the OOM killer rather than demote a shielded page. On 6.12 neither
    /// held absolutely in the lab (`kernel-demotion-neighbours`, docs/DESIGN.md): the repair of
    /// what the kernel demoted all the same is what keeps a group's pages where they belong.
    case min

    /// The cgroup file written.
    public var file: String { "memory.\(rawValue)" }
}

/// Keeps the kernel's own demotion off the groups tierd would not demote. While the kernel's
/// reclaim may demote (demotion on, or NUMA balancing's tiering mode), it takes any group's cold
/// pages, protected workloads' included, and before 6.16 ignores cpusets. `memory.low` keeps
/// reclaim, and so the kernel's demotion, off a group's memory up to that amount; it only holds
/// where every ancestor below the root holds as much for its protected descendants, so the
/// ancestors are raised too. tierd's own `cold` reclaim of an opted-in group is not hindered: a
/// reclaim ignores the protection of the group it was asked of.
///
/// Pure: the snapshot, the policy and the values the groups had before tierd raised them in, the
/// `memory.low` each group should have out.
public enum KernelShield {
    /// What a shielded group may grow by between two ticks and stay covered.
    public static func headroom(_ usage: UInt64) -> UInt64 { max(usage / 8, 32 << 20) }

    /// Whether the kernel's reclaim may demote now.
    public static func kernelDemotes(_ movers: KernelMovers?) -> Bool {
        guard let movers else { return false }
        return movers.demotionEnabled == true || (movers.numaBalancing ?? 0) & 2 != 0
    }

    /// Why a group is shielded, or nil: an opt-out workload the policy names, an opted-in group
    /// whose cpuset holds no slow node, or one whose every task binds itself to nodes that are not
    /// slow under `mempolicy: respect` (tierd never demotes these; the kernel before 6.16 would).
    public static func reason(_ group: CgroupSnapshot, _ workload: ResolvedWorkload, slow: NodeSet) -> String? {
        if workload.rule.demote == .never { return workload.matchedAt != nil ? "opt-out workload \(workload.name)" : nil }
        if group.cpusetMems.isDisjoint(with: slow) { return "cpuset \(group.cpusetMems) holds no slow node" }
        if workload.rule.mempolicy == .respect, let bound = group.tasksBoundTo, bound.isDisjoint(with: slow) {
            return "every task's mempolicy binds it to \(bound), no slow node"
        }
        return nil
    }

    /// The groups whose tasks' own NUMA policies tierd reads now (`CgroupSnapshot.tasksBoundTo`):
    /// while the kernel's reclaim may demote, opted-in groups under `mempolicy: respect` whose
    /// cpuset holds a slow node (one that holds none is shielded by its cpuset alone). Bound to
    /// DRAM, such a group is shielded, and its pages the kernel demoted all the same come back;
    /// where only some of its tasks are bound, those tasks' pages come back, task by task.
    public static func groupsToReadMempolicies(snapshot: HostSnapshot, policy: Policy) -> [CgroupPath] {
        guard kernelDemotes(snapshot.kernelMovers), !snapshot.topology.slow.isEmpty else { return [] }
        let workloads = policy.resolve(snapshot.groups.map(\.path))
        return snapshot.groups.filter { group in
            guard let rule = workloads[group.path]?.rule else { return false }
            return rule.demote == .allowed && rule.mempolicy == .respect && !group.pids.isEmpty
                && !group.cpusetMems.isDisjoint(with: snapshot.topology.slow)
        }.map(\.path)
    }

    /// The `memory.low` each group should have now: a shielded group covers its own memory and
    /// some headroom, every group covers what its descendants claim, never less than the group had
    /// (`original`). Empty while the kernel's reclaim does not demote: every value goes back.
    public static func protections(snapshot: HostSnapshot, policy: Policy) -> [CgroupPath: UInt64] {
        guard kernelDemotes(snapshot.kernelMovers), !snapshot.topology.slow.isEmpty else { return [:] }
        let workloads = policy.resolve(snapshot.groups.map(\.path))
        let own = snapshot.ownNumaStats()
        var claims: [CgroupPath: UInt64] = [:]
        // Children come after their parents: walking backwards sums each subtree before its root.
        for group in snapshot.groups.reversed() {
            var claim = claims[group.path, default: 0]
            if let workload = workloads[group.path], reason(group, workload, slow: snapshot.topology.slow) != nil {
                let usage = own[group.path].map { $0.bytes(on: $0.nodes) } ?? 0
                if usage > 0 { claim += usage + headroom(usage) }
            }
            guard claim > 0 else { continue }
            claims[group.path] = claim
            if let parent = group.path.parent, !parent.isRoot { claims[parent, default: 0] += claim }
        }
        return claims
    }
}
