/// An operator's request to move one group's memory now (`tierctl demote` / `tierctl promote`).
public struct ManualRequest: Sendable, Equatable, Codable {
    public var direction: MigrationAction.Direction
    public var group: CgroupPath
    /// At most this many bytes; nil: all the group's own memory on the source tier that fits.
    public var bytes: UInt64?

    public init(direction: MigrationAction.Direction, group: CgroupPath, bytes: UInt64? = nil) {
        self.direction = direction; self.group = group; self.bytes = bytes
    }
}

/// Why a manual request was not turned into a move.
public enum ManualRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    case noSuchGroup
    case noSlowTier
    case optedOut(workload: String)
    case noTasks
    case noTargetNodes(detail: String)
    case nothingToMove(tier: String)
    case atDramFloor(fastBytes: UInt64, floor: UInt64)
    case noRoom(detail: String)

    /// A short stable name, for scripts reading `tierctl --json`.
    public var code: String {
        switch self {
        case .noSuchGroup: "no_such_group"
        case .noSlowTier: "no_slow_tier"
        case .optedOut: "opted_out"
        case .noTasks: "no_tasks"
        case .noTargetNodes: "no_target_nodes"
        case .nothingToMove: "nothing_to_move"
        case .atDramFloor: "at_dram_floor"
        case .noRoom: "no_room"
        }
    }

    public var description: String {
        switch self {
        case .noSuchGroup: "no such cgroup under the cgroup root"
        case .noSlowTier: "no slow memory tier on this host"
        case .optedOut(let w): "workload \(w) is not opted in to demotion (demote: never or unset): tierd never demotes it (to move it, change its policy)"
        case .noTasks: "no task in the group to move its memory with"
        case .noTargetNodes(let d): "no target node: \(d)"
        case .nothingToMove(let tier): "none of the group's own memory is on \(tier) nodes"
        case .atDramFloor(let f, let floor): "at its DRAM floor (\(formatBytes(f)) in DRAM, floor \(formatBytes(floor)))"
        case .noRoom(let d): "no room: \(d)"
        }
    }
}

/// Turns an operator's request into one action under the rules the daemon's own moves follow.
///
/// Placement rules bind: only an opted-in workload is demoted, never below its DRAM floor; targets
/// are the tier's nodes ∩ the group's `cpuset.mems.effective` ∩ tierd's own nodes; each task's
/// mempolicy is checked by the migrator, as for every move. Timing rules are the operator's call:
/// no pressure guard, no rate limit (the bytes moved are charged to it afterwards). Room is kept so
/// that tierd does not undo the move at its next tick: a promotion leaves DRAM free at the high
/// watermark (half the low one for an opt-out workload, as tierd's own promotions do), a
/// demotion leaves `slowKeepFreeShare` of its target nodes free, and at least what keeps them above
/// the kernel's high watermark (with their per-CPU lists), as tierd's own demotions do.
public enum ManualPlanner {
    /// The share of a demotion's target nodes that stays free: the slow tier is never filled to
    /// the point where the kernel reclaims (swaps or discards) there instead.
    public static let slowKeepFreeShare = 0.02

    public static func action(for request: ManualRequest, snapshot: HostSnapshot, policy: Policy) -> Result<MigrationAction, ManualRefusal> {
        let topology = snapshot.topology
        guard !topology.slow.isEmpty else { return .failure(.noSlowTier) }
        guard let group = snapshot.groups.first(where: { $0.path == request.group }) else { return .failure(.noSuchGroup) }
        // Resolved with its ancestors: a workload is inherited down the tree.
        let lineage = sequence(first: group.path, next: \.parent).map { $0 }
        let workload = policy.resolve(lineage)[group.path]
            ?? ResolvedWorkload(name: Policy.defaultWorkloadName, rule: policy.defaultRule, matchedAt: nil)
        let own = snapshot.ownNumaStats()[group.path] ?? NumaStat()
        let demoting = request.direction == .demote
        if demoting, workload.rule.demote != .allowed { return .failure(.optedOut(workload: workload.name)) }
        guard !group.pids.isEmpty else { return .failure(.noTasks) }

        let (source, tier) = demoting ? (topology.fast, topology.slow) : (topology.slow, topology.fast)
        let targets = tier.intersection(group.cpusetMems).intersection(snapshot.tierdAllowedNodes)
        guard !targets.isEmpty else {
            let tierName = demoting ? "slow" : "DRAM"
            return .failure(.noTargetNodes(detail: "\(tierName) nodes \(tier) ∩ cpuset \(group.cpusetMems) ∩ tierd's own nodes \(snapshot.tierdAllowedNodes) is empty"))
        }
        let sourceBytes = own.bytes(on: source)
        guard sourceBytes > 0 else { return .failure(.nothingToMove(tier: demoting ? "DRAM" : "slow")) }
        var movable = sourceBytes
        if demoting {
            guard sourceBytes > workload.rule.dramFloor else {
                return .failure(.atDramFloor(fastBytes: sourceBytes, floor: workload.rule.dramFloor))
            }
            movable = sourceBytes - workload.rule.dramFloor
        }

        let keepFree = demoting
            ? max(UInt64(Double(topology.totalBytes(targets)) * slowKeepFreeShare), topology.reserveBytes(targets), 4096)
            : promotionKeepsFree(topology: topology, policy: policy, optedOut: workload.rule.demote == .never)
        let free = topology.freeBytes(targets)
        guard free > keepFree else {
            return .failure(.noRoom(detail: "the target nodes \(targets) have \(formatBytes(free)) free, within the \(formatBytes(keepFree)) kept free"))
        }
        let bytes = min(movable, free - keepFree, request.bytes ?? .max)
        let asked = request.bytes.map { formatBytes($0) } ?? "all"
        var action = MigrationAction(
            group: group.path, workload: workload.name, direction: request.direction, pids: group.pids,
            from: NodeSet(source.filter { own.bytes(on: $0) > 0 }), to: topology.orderedByDistance(targets),
            bytes: bytes, mempolicy: workload.rule.mempolicy, reason: "manual: tierctl \(request.direction.rawValue) (asked \(asked))")
        action.step = .whole(keepFree: keepFree)
        action.onTaskCPU = policy.controller.moveOnTaskCPU
        return .success(action)
    }

    /// DRAM a manual promotion leaves free: the high watermark, so that the next tick does not start
    /// a reclaim that demotes it again; for an opt-out workload half the low watermark, as tierd's own
    /// promotions of protected memory do.
    static func promotionKeepsFree(topology: Topology, policy: Policy, optedOut: Bool) -> UInt64 {
        let dramTotal = Double(topology.totalBytes(topology.fast))
        return optedOut ? UInt64(dramTotal * policy.controller.dramLowFree / 2) : UInt64(dramTotal * policy.controller.dramHighFree)
    }
}

/// A cgroup path travels as its text ("/batch.slice/job1").
extension CgroupPath: Codable {
    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
