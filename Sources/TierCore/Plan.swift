/// How a demotion is carried out.
public enum DemotionMechanism: Sendable, Equatable, CustomStringConvertible {
    /// The group's tasks one by one, with migrate_pages(2) and move_pages(2), pages in address order.
    case taskMoves
    /// The kernel's reclaim of the group's coldest pages through its `memory.reclaim`, with kernel
    /// demotion on, so that they are demoted rather than discarded; `argument` follows the byte
    /// count ("swappiness=max": anonymous memory only), nil for none.
    case kernelReclaim(argument: String?)

    public var mode: DemotionMode {
        switch self {
        case .taskMoves: .task
        case .kernelReclaim: .cold
        }
    }

    public var description: String {
        switch self {
        case .taskMoves: "task (whole task sets)"
        case .kernelReclaim(let argument): "cold (memory.reclaim" + (argument.map { ", " + $0 } ?? "") + ")"
        }
    }
}

/// The mechanism a demotion of one group takes now, and why `cold` fell back to `task`.
public struct MechanismChoice: Sendable, Equatable {
    public var mechanism: DemotionMechanism
    /// Why the rule's `cold` could not be used; nil when it is, or when the rule asked for `task`.
    public var fallback: String?
    public init(_ mechanism: DemotionMechanism, fallback: String? = nil) { self.mechanism = mechanism; self.fallback = fallback }

    public var description: String {
        mechanism.description + (fallback.map { "; cold cannot be used: \($0)" } ?? "")
    }
}

/// Which pages of a task a move takes.
public enum PageSelection: String, Sendable, Equatable {
    /// Every page on the source nodes, up to the byte budget.
    case all
    /// Only pages the task wrote since tierd last looked (soft-dirty): a hot promotion. A task
    /// seen for the first time is only looked at: its pages are all new to the kernel's bits.
    case recentlyWritten
}

/// Where an action stands in a tick's schedule, which says how it runs: promotions into DRAM
/// free now, demotions that make room for protected pages, the promotions into that room (paced
/// by those demotions), demotions only the watermark asks for (they yield to the next tick), and
/// last the hot pages opted-in jobs wrote on the slow tier. One value instead of a flag per
/// behaviour: no action can be both a room-maker and a promotion, or yield while making room.
public enum ScheduleStep: Sendable, Equatable {
    /// A promotion into DRAM free now, leaving `keepFree` bytes free on its targets.
    case promoteIntoFreeRoom(keepFree: UInt64)
    /// A demotion that makes room for this tick's promotions (they may run beside it, paced by it).
    case makeRoom
    /// A promotion into the room this tick's demotions make, leaving `keepFree` on its targets.
    case promoteIntoRoomMade(keepFree: UInt64)
    /// A demotion only the watermark asks for: once the next tick is due it stops between
    /// batches, so that a long reclaim never keeps the controller from seeing a new need for
    /// more than an interval and a batch. The rest is planned again on fresh state.
    case watermarkDemotion
    /// The pages an opted-in job wrote on the slow tier since tierd last looked, into DRAM above
    /// `keepFree`.
    case promoteWrittenPages(keepFree: UInt64)
    /// A move that runs whole, as asked (an operator's, or a test's), leaving `keepFree` free on
    /// its targets when it promotes.
    case whole(keepFree: UInt64)
}

/// One move the planner asks for: some of a group's memory from `from` nodes to `to` nodes.
public struct MigrationAction: Sendable, Equatable, CustomStringConvertible {
    /// Toward the slow tier, or back to DRAM.
    public enum Direction: String, Sendable, Equatable, Codable { case demote, promote }

    public var group: CgroupPath
    public var workload: String
    public var direction: Direction
    /// The group's own processes at snapshot time; each is re-checked right before its move.
    public var pids: [Int32]
    public var from: NodeSet
    /// Target nodes, best first. Always inside the group's cpuset and tierd's own.
    public var to: [Int]
    /// At most this many bytes; a task whose pages on `from` fit whole is moved whole.
    public var bytes: UInt64
    public var mempolicy: MempolicyMode
    public var reason: String
    /// Its place in the tick's schedule, and so how it runs.
    public var step: ScheduleStep = .whole(keepFree: 0)
    /// Move each task's pages from the CPU it last ran on (controller.move_on_task_cpu).
    public var onTaskCPU = false
    /// How a demotion is carried out (promotions always move tasks).
    public var mechanism: DemotionMechanism = .taskMoves

    /// Bytes a promotion must leave free on its target nodes. Free memory is re-read right before
    /// the move and the promotion shrinks to fit (`MoveRules.promotionRoom`): the room planned may
    /// be gone by then (the job being promoted may still be allocating into it), and a move into a
    /// full node costs the kernel's reclaim attempts before it fails. Zero: no re-check (demotions).
    public var keepFreeOnTargets: UInt64 {
        switch step {
        case .promoteIntoFreeRoom(let keep), .promoteIntoRoomMade(let keep), .promoteWrittenPages(let keep), .whole(let keep): keep
        case .makeRoom, .watermarkDemotion: 0
        }
    }
    /// A demotion that makes room for this tick's promotions.
    public var makesRoom: Bool { step == .makeRoom }
    /// A promotion into the room this tick's demotions make, paced by them.
    public var usesRoomMade: Bool { if case .promoteIntoRoomMade = step { true } else { false } }
    /// Stops between batches once the next tick is due.
    public var yieldsToNextTick: Bool { step == .watermarkDemotion }
    /// Which of the tasks' pages on `from` may move.
    public var pages: PageSelection { if case .promoteWrittenPages = step { .recentlyWritten } else { .all } }

    public init(group: CgroupPath, workload: String, direction: Direction, pids: [Int32], from: NodeSet,
                to: [Int], bytes: UInt64, mempolicy: MempolicyMode, reason: String) {
        self.group = group; self.workload = workload; self.direction = direction; self.pids = pids
        self.from = from; self.to = to; self.bytes = bytes; self.mempolicy = mempolicy; self.reason = reason
    }

    public var description: String {
        let how = mechanism != .taskMoves ? "coldest pages, memory.reclaim"
            : pages == .recentlyWritten ? "pages written since the last look, \(pids.count) tasks" : "\(pids.count) tasks"
        return "\(direction.rawValue) \(group) [\(workload)] \(formatBytes(bytes)) nodes \(from) -> \(NodeSet(to)) (\(how)): \(reason)"
    }
}

/// Why a group was left alone this tick. Every skip reaches the log, metrics and `tierctl explain`.
public enum SkipReason: Sendable, Equatable, CustomStringConvertible {
    case noSlowTier
    case promotionDisabled(slowBytes: UInt64)
    case noTasks(bytes: UInt64)
    /// The intersection that decides the target nodes is empty; `detail` names the sets.
    case noTargetNodes(detail: String)
    case confinedToSlowNodes(cpuset: NodeSet)
    case pressureGuard(kind: PressureGuard.Kind, observed: Double, threshold: Double)
    case atDramFloor(fastBytes: UInt64, floor: UInt64)
    case rateLimited(scope: String)
    case noRoomInDram(neededBytes: UInt64)
    /// The last promotion of these bytes moved nothing; retried once they or the tasks change,
    /// or at the end of its backoff, `retryIn` from now.
    case stuckOnSlowNodes(bytes: UInt64, retryIn: Duration)
    /// The last demotion moved nothing with room on the slow nodes (every task refused); the
    /// demand went to the next candidate. Retried once the tasks change, or in `retryIn`.
    case demotionMovedNothing(retryIn: Duration)
    /// The slow nodes the group may demote to have no free memory above the kernel's high
    /// watermark left (this tick's earlier demotions counted): nothing is moved into them until
    /// room appears.
    case slowNodesFull(nodes: NodeSet, freeBytes: UInt64, reserve: UInt64)
    /// Its DRAM above the floor is pages a hot promotion brought back less than `hold` ago.
    case holdingHotPages(bytes: UInt64, hold: Duration)

    /// A short stable name, used as a metrics label.
    public var code: String {
        switch self {
        case .noSlowTier: "no_slow_tier"
        case .promotionDisabled: "promotion_disabled"
        case .noTasks: "no_tasks"
        case .noTargetNodes: "no_target_nodes"
        case .confinedToSlowNodes: "confined_to_slow_nodes"
        case .pressureGuard: "pressure_guard"
        case .atDramFloor: "at_dram_floor"
        case .rateLimited: "rate_limited"
        case .noRoomInDram: "no_room_in_dram"
        case .stuckOnSlowNodes: "stuck_on_slow_nodes"
        case .demotionMovedNothing: "demotion_moved_nothing"
        case .slowNodesFull: "slow_nodes_full"
        case .holdingHotPages: "holding_hot_pages"
        }
    }

    public var description: String {
        func pct(_ x: Double) -> String { "\((x * 1000).rounded() / 10)%" }
        switch self {
        case .noSlowTier: return "no slow memory tier on this host: observing only"
        case .promotionDisabled(let b): return "\(formatBytes(b)) on slow nodes, but promotion is off for this workload"
        case .noTasks(let b): return "\(formatBytes(b)) charged but no task in the group to move it with"
        case .noTargetNodes(let d): return "no target node: \(d)"
        case .confinedToSlowNodes(let c): return "cpuset.mems.effective is \(c), no DRAM node: never promoted"
        case .pressureGuard(let k, let o, let t): return "pressure guard: \(k.rawValue) stall \(pct(o)) >= \(pct(t))"
        case .atDramFloor(let f, let floor): return "at its DRAM floor (\(formatBytes(f)) in DRAM, floor \(formatBytes(floor)))"
        case .rateLimited(let scope): return "rate limit reached (\(scope))"
        case .noRoomInDram(let n): return "needs \(formatBytes(n)) of DRAM and none can be made"
        case .stuckOnSlowNodes(let b, let wait):
            return "the last try to promote its \(formatBytes(b)) on slow nodes moved nothing: retried when that or its tasks change, or in \(Int(wait.seconds.rounded(.up))) s"
        case .demotionMovedNothing(let wait):
            return "its last demotion moved nothing (every task refused): passed over until its tasks change, or for \(Int(wait.seconds.rounded(.up))) s"
        case .slowNodesFull(let nodes, let free, let reserve):
            return "slow nodes \(nodes) have \(formatBytes(free)) free, none above the kernel's high watermark and per-CPU lists (\(formatBytes(reserve))): nothing demoted until room appears"
        case .holdingHotPages(let bytes, let hold):
            return "what it has in DRAM above its floor is \(formatBytes(bytes)) of hot pages brought back less than \(Int(hold.seconds.rounded())) s ago (controller.hot_hold)"
        }
    }
}

/// A step of the planner that finds no way for a group says why as its error.
extension SkipReason: Error {}

/// A group the planner considered and left alone, with why.
public struct PlanSkip: Sendable, Equatable, CustomStringConvertible {
    public var group: CgroupPath
    public var workload: String
    public var reason: SkipReason
    public init(group: CgroupPath, workload: String, reason: SkipReason) {
        self.group = group; self.workload = workload; self.reason = reason
    }
    public var description: String { "skip \(group) [\(workload)]: \(reason)" }
}

/// The planner's view of DRAM this tick, for the log line and `tierctl status`.
public struct PlanSummary: Sendable, Equatable {
    public var dramTotal: UInt64 = 0
    public var dramFree: UInt64 = 0
    /// Bytes per second free DRAM was falling at (`HostSnapshot.dramFallRate`).
    public var dramFallRate: UInt64 = 0
    /// Free DRAM one lookahead from now at that rate: what the watermarks were checked against.
    public var projectedDramFree: UInt64 = 0
    /// The watermarks in bytes free, each raised by the unused part of the reserve.
    public var lowWatermark: UInt64 = 0
    public var highWatermark: UInt64 = 0
    /// `controller.dram.reserve`, and the part of it opt-out workloads do not use in DRAM yet.
    public var reserve: UInt64 = 0
    public var reserveUnused: UInt64 = 0
    /// Free DRAM covers the unused reserve on top of the low watermark: a protected workload can
    /// take all of it now without DRAM falling below `low`. True without a reserve.
    public var reserveMet = true
    /// True while DRAM free is being brought back up to the high watermark.
    public var reclaiming: Bool = false
    /// Bytes of opt-out workloads found on slow nodes (promotable).
    public var promotionNeed: UInt64 = 0
    /// Bytes the planner wanted demoted this tick.
    public var demotionDemand: UInt64 = 0
    /// Work the rate limits deferred: the service ticks again sooner when this is non-zero.
    public var deferredBytes: UInt64 = 0
    /// With opted-in groups to look at for written hot pages: how long until the next look.
    public var nextHotLook: Duration?
    public init() {}
}

/// What to do this tick: demotions first (they make room), then promotions.
public struct MigrationPlan: Sendable, Equatable {
    public var actions: [MigrationAction]
    public var skips: [PlanSkip]
    public var summary: PlanSummary
    /// For each group with a promotion planned, its own bytes on slow nodes in the snapshot:
    /// what the controller notes if the promotion moves nothing.
    public var slowBytesToPromote: [CgroupPath: UInt64] = [:]
    public init(actions: [MigrationAction] = [], skips: [PlanSkip] = [], summary: PlanSummary = PlanSummary()) {
        self.actions = actions; self.skips = skips; self.summary = summary
    }
}
