import TierCore
import TierLinux

/// The running daemon's state as its local endpoint serves it (`GET /status`) and `tierctl status`
/// shows it: what tierd saw at its last tick, the rule each group falls under and where that came
/// from, what it carries between ticks, its last plan with reasons, and what it has moved so far.
/// Built after each tick from the controller's own values, so it is what the daemon decided on,
/// not a fresh reading.
public struct DaemonStatus: Codable, Sendable, Equatable {
    public struct Node: Codable, Sendable, Equatable {
        public var id: Int
        /// "fast" or "slow", as tierd classified the node.
        public var tier: String
        /// The kernel's memory tier (memory_tierN), if it has one.
        public var memoryTier: Int?
        public var totalBytes: UInt64
        public var freeBytes: UInt64
    }

    public struct Pressure: Codable, Sendable, Equatable {
        public var someAvg10: Double
        public var fullAvg10: Double
    }

    public struct Action: Codable, Sendable, Equatable {
        public var group: String
        public var workload: String
        public var direction: String
        public var bytes: UInt64
        public var from: String
        public var to: String
        public var reason: String
        /// Filled once the action ran: bytes that left the source nodes, and why it stopped short.
        public var movedBytes: UInt64?
        public var dropped: String?
        /// Each task's result ("moved", "mempolicy", "left_group", …) and what it means.
        public var tasks: [TaskOutcome]
    }

    public struct TaskOutcome: Codable, Sendable, Equatable {
        public var pid: Int32
        public var result: String
        public var detail: String
    }

    public struct Skip: Codable, Sendable, Equatable {
        public var group: String
        public var workload: String
        /// A stable name ("pressure_guard", "no_target_nodes", …), as the metrics label it.
        public var code: String
        public var detail: String
    }

    public struct Group: Codable, Sendable, Equatable {
        public var path: String
        public var workload: String
        /// "matched here", "inherited from /a/b", or "default".
        public var ruleSource: String
        public var demote: String
        public var processes: Int
        /// memory.numa_stat as read (this group and its children), by node id.
        public var bytesPerNode: [String: UInt64]
        /// Less its children's: what tierd plans on.
        public var ownBytesPerNode: [String: UInt64]
        public var cpusetMems: String
        public var pressure: Pressure
        /// The last tick's actions on this group (a demotion may come in batches), or the reason it
        /// was left alone.
        public var actions: [Action]
        /// The actions of the most recent tick that had any on this group, and that tick: why a
        /// group was not moved often lies in its tasks' results there (a mempolicy, a task gone).
        public var lastActions: [Action]
        public var lastActionsTick: UInt64?
        public var skip: Skip?
        /// Its last promotion moved nothing: not tried again until its slow-node bytes change.
        public var heldBack: Bool
        /// Seconds since its files were read: 0 when the last tick read them; on a quiet host an
        /// opted-in group's figures may be kept from an earlier tick for up to a minute.
        public var readSecondsAgo: Double
    }

    public struct Workload: Codable, Sendable, Equatable {
        public var name: String
        public var demote: String
        public var groups: Int
        public var ownBytesPerNode: [String: UInt64]
        public var demotedBytes: UInt64
        public var promotedBytes: UInt64
    }

    public struct Carried: Codable, Sendable, Equatable {
        public var reclaiming: Bool
        public var globalTokens: UInt64?
        public var workloadTokens: [String: UInt64]
        public var heldBackGroups: [String]
    }

    public struct DRAM: Codable, Sendable, Equatable {
        public var totalBytes: UInt64
        public var freeBytes: UInt64
        public var lowWatermarkBytes: UInt64
        public var highWatermarkBytes: UInt64
        public var demandBytes: UInt64
        public var promotionNeedBytes: UInt64
        /// `controller.dram.reserve`, the part of it unused, and whether free DRAM covers that part
        /// on top of the low watermark; absent without a reserve.
        public var reserveBytes: UInt64?
        public var reserveUnusedBytes: UInt64?
        public var reserveMet: Bool?
    }

    public struct Moved: Codable, Sendable, Equatable {
        public var demotedBytes: UInt64
        public var promotedBytes: UInt64
        /// Task moves by result code ("moved", "exited", "left_group", "mempolicy", …).
        public var taskResults: [String: UInt64]
        public var skips: [String: UInt64]
        public var actionsDropped: UInt64
    }

    public struct PolicyState: Codable, Sendable, Equatable {
        public var file: String
        /// 1 at start, one more for every reload that took effect.
        public var generation: UInt64
        public var lastReloadOK: Bool?
        public var lastReloadError: String?

        public init(file: String, generation: UInt64, lastReloadOK: Bool? = nil, lastReloadError: String? = nil) {
            self.file = file; self.generation = generation; self.lastReloadOK = lastReloadOK; self.lastReloadError = lastReloadError
        }
    }

    public var ticks: UInt64
    public var lastTickSeconds: Double
    public var dryRun: Bool
    public var policy: PolicyState
    public var nodes: [Node]
    public var dram: DRAM
    public var workloads: [Workload]
    public var groups: [Group]
    public var carried: Carried
    public var lastPlan: [Action]
    public var skips: [Skip]
    public var moved: Moved
    /// Set when the last tick could not read the host at all.
    public var collectError: String?
}

/// Builds `DaemonStatus` from one tick's report and the controller's carried values. Pure: the
/// tick's duration is passed in.
public enum DaemonStatusBuilder {
    /// - Parameter previous: the status built after the tick before, whose groups' last actions carry over.
    public static func build(report: TickReport, policy: Policy, policyState: DaemonStatus.PolicyState, carried: ControllerState,
                             ledger: MoveLedger, tickSeconds: Double, dryRun: Bool, previous: DaemonStatus? = nil) -> DaemonStatus {
        let snapshot = report.snapshot
        var groups = snapshot.map { groupStatus($0, report: report, policy: policy, carried: carried) } ?? []
        let before = Dictionary((previous?.groups ?? []).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        for index in groups.indices {
            if groups[index].actions.isEmpty, let earlier = before[groups[index].path] {
                groups[index].lastActions = earlier.lastActions
                groups[index].lastActionsTick = earlier.lastActionsTick
            } else if !groups[index].actions.isEmpty {
                groups[index].lastActions = groups[index].actions
                groups[index].lastActionsTick = ledger.ticks
            }
        }
        let summary = report.plan.summary, hasReserve = summary.reserve > 0
        return DaemonStatus(
            ticks: ledger.ticks, lastTickSeconds: tickSeconds, dryRun: dryRun, policy: policyState,
            nodes: snapshot.map { nodes($0.topology) } ?? [],
            dram: DaemonStatus.DRAM(totalBytes: report.plan.summary.dramTotal, freeBytes: report.plan.summary.dramFree,
                                    lowWatermarkBytes: report.plan.summary.lowWatermark, highWatermarkBytes: report.plan.summary.highWatermark,
                                    demandBytes: report.plan.summary.demotionDemand, promotionNeedBytes: report.plan.summary.promotionNeed,
                                    reserveBytes: hasReserve ? summary.reserve : nil, reserveUnusedBytes: hasReserve ? summary.reserveUnused : nil,
                                    reserveMet: hasReserve ? summary.reserveMet : nil),
            workloads: workloads(groups, policy: policy, ledger: ledger),
            groups: groups,
            carried: DaemonStatus.Carried(reclaiming: carried.reclaiming, globalTokens: carried.globalBucket?.tokens,
                                          workloadTokens: carried.workloadBuckets.mapValues(\.tokens),
                                          heldBackGroups: Set(carried.stuckOnSlowNodes.keys).union(carried.blockedSources.keys)
                                              .map(\.description).sorted()),
            lastPlan: actions(report),
            skips: report.plan.skips.map(skip),
            moved: DaemonStatus.Moved(demotedBytes: ledger.total(.demote), promotedBytes: ledger.total(.promote),
                                      taskResults: ledger.taskResults, skips: ledger.skips, actionsDropped: ledger.actionsDropped),
            collectError: report.collectError)
    }

    static func nodes(_ topology: Topology) -> [DaemonStatus.Node] {
        topology.nodes.map { node in
            DaemonStatus.Node(id: node.id, tier: topology.slow.contains(node.id) ? "slow" : topology.fast.contains(node.id) ? "fast" : "unused",
                              memoryTier: node.memoryTier, totalBytes: node.totalBytes, freeBytes: node.freeBytes)
        }
    }

    static func perNode(_ stat: NumaStat) -> [String: UInt64] {
        Dictionary(uniqueKeysWithValues: stat.nodes.sorted.map { (String($0), stat.bytes(on: $0)) })
    }

    static func actions(_ report: TickReport) -> [DaemonStatus.Action] {
        report.plan.actions.map { action in self.action(action, outcome: report.outcomes.first { $0.action == action }) }
    }

    static func action(_ action: MigrationAction, outcome: ActionOutcome?) -> DaemonStatus.Action {
        DaemonStatus.Action(group: action.group.description, workload: action.workload, direction: action.direction.rawValue,
                            bytes: action.bytes, from: action.from.description, to: NodeSet(action.to).description,
                            reason: action.reason, movedBytes: outcome?.movedBytes, dropped: outcome?.dropped,
                            tasks: (outcome?.tasks ?? []).map { DaemonStatus.TaskOutcome(pid: $0.pid, result: $0.result.code, detail: $0.result.description) })
    }

    static func skip(_ skip: PlanSkip) -> DaemonStatus.Skip {
        DaemonStatus.Skip(group: skip.group.description, workload: skip.workload, code: skip.reason.code, detail: skip.reason.description)
    }

    static func groupStatus(_ snapshot: HostSnapshot, report: TickReport, policy: Policy, carried: ControllerState) -> [DaemonStatus.Group] {
        let resolved = policy.resolve(snapshot.groups.map(\.path))
        let own = snapshot.ownNumaStats()
        let planned = Dictionary(grouping: actions(report), by: \.group)
        let skips = Dictionary(report.plan.skips.map { ($0.group, $0) }, uniquingKeysWith: { _, last in last })
        return snapshot.groups.map { group in
            let workload = resolved[group.path]
            let source = workload?.matchedAt.map { $0 == group.path ? "matched here" : "inherited from \($0)" } ?? "default"
            return DaemonStatus.Group(
                path: group.path.description, workload: workload?.name ?? Policy.defaultWorkloadName, ruleSource: source,
                demote: workload?.rule.demote.rawValue ?? "never", processes: group.pids.count,
                bytesPerNode: perNode(group.numaStat), ownBytesPerNode: perNode(own[group.path] ?? NumaStat()),
                cpusetMems: group.cpusetMems.description,
                pressure: DaemonStatus.Pressure(someAvg10: group.pressure.some.avg10, fullAvg10: group.pressure.full.avg10),
                actions: planned[group.path.description] ?? [], lastActions: [], lastActionsTick: nil,
                skip: skips[group.path].map(skip),
                heldBack: carried.stuckOnSlowNodes[group.path] != nil || carried.blockedSources[group.path] != nil,
                readSecondsAgo: readAge(group.path, carried))
        }
    }

    /// How long ago the group's files were read, from the controller's own record of when it last
    /// measured each group's stall (the tick's time for a group read at that tick).
    static func readAge(_ path: CgroupPath, _ carried: ControllerState) -> Double {
        guard let tick = carried.lastTick, let read = carried.pressureTotals[path]?.at, tick > read else { return 0 }
        return (tick - read).seconds
    }

    static func workloads(_ groups: [DaemonStatus.Group], policy: Policy, ledger: MoveLedger) -> [DaemonStatus.Workload] {
        let names = policy.workloads.map(\.name) + [Policy.defaultWorkloadName]
        let moved = ledger.movedByWorkload.mapValues { (demote: $0[.demote] ?? 0, promote: $0[.promote] ?? 0) }
        let byWorkload = Dictionary(grouping: groups, by: \.workload)
        return names.map { name in
            let members = byWorkload[name] ?? []
            var bytes: [String: UInt64] = [:]
            for member in members { for (node, value) in member.ownBytesPerNode { bytes[node, default: 0] += value } }
            let demote = policy.workloads.first { $0.name == name }?.rule.demote.rawValue ?? policy.defaultRule.demote.rawValue
            return DaemonStatus.Workload(name: name, demote: demote, groups: members.count, ownBytesPerNode: bytes,
                                         demotedBytes: moved[name]?.demote ?? 0, promotedBytes: moved[name]?.promote ?? 0)
        }
    }
}
