import Synchronization
/// How tierd tells fast nodes from slow ones: from the kernel, or as the operator states.
public enum TierSelection: Sendable, Equatable {
    case auto
    case explicit(fast: NodeSet, slow: NodeSet)
}

/// Whether a workload's memory may be moved to the slow tier.
public enum DemoteMode: String, Sendable, Equatable {
    /// Opt-in: tierd may demote it, in priority order, down to its DRAM floor.
    case allowed
    /// Opt-out: never a source of demotion; with `promote`, its slow pages come back to DRAM.
    case never
}

/// How an opted-in workload's pages leave DRAM.
public enum DemotionMode: String, Sendable, Equatable, Codable {
    /// Its coldest pages first: the kernel's LRU picks them through the group's `memory.reclaim`
    /// while kernel demotion is on. Where that cannot be used safely it falls back to `task`, and
    /// says why (``Planner/demotionMechanism(for:rule:workload:snapshot:childGroups:state:)``).
    case cold
    /// Whole task sets, pages in address order, with migrate_pages(2) and move_pages(2).
    case task
}

/// Whether a task's own NUMA memory policy (numactl, set_mempolicy, mbind) limits tierd.
public enum MempolicyMode: String, Sendable, Equatable {
    /// A task whose policy keeps it on nodes other than the move's targets is left alone.
    case respect
    /// Move it anyway: the operator knows better than the task.
    case override
}

/// The stall level at which an opted-in workload stops being demoted.
public struct PressureGuard: Sendable, Equatable {
    /// Which PSI line the guard reads.
    public enum Kind: String, Sendable, Equatable { case some, full }
    public var kind: Kind
    /// A fraction of wall time (0.2 = 20 %), compared with avg10 and with the stall share
    /// measured from the cumulative total since the group was last read, whichever is higher.
    public var threshold: Double
    public init(kind: Kind, threshold: Double) { self.kind = kind; self.threshold = threshold }
}

/// What tierd does with the groups one workload entry matches. Compiled and validated.
public struct WorkloadRule: Sendable, Equatable {
    public var demote: DemoteMode
    /// Lower is demoted first.
    public var priority: Int
    /// Bytes the workload keeps in DRAM whatever the pressure on DRAM.
    public var dramFloor: UInt64
    public var pressureGuard: PressureGuard?
    public var mempolicy: MempolicyMode
    /// Bring pages found on slow nodes back to DRAM (opt-out workloads only).
    public var promote: Bool
    /// Bytes per second for this workload's moves; nil leaves only the global limit.
    public var rateLimit: UInt64?
    /// How its pages leave DRAM (opted-in workloads only).
    public var demotionMode: DemotionMode = .cold

    public init(demote: DemoteMode, priority: Int = 0, dramFloor: UInt64 = 0, pressureGuard: PressureGuard? = nil,
                mempolicy: MempolicyMode = .respect, promote: Bool = false, rateLimit: UInt64? = nil) {
        self.demote = demote; self.priority = priority; self.dramFloor = dramFloor
        self.pressureGuard = pressureGuard; self.mempolicy = mempolicy; self.promote = promote
        self.rateLimit = rateLimit
    }

    /// The rule for groups no workload matches, unless the file says otherwise: observe only.
    public static let observeOnly = WorkloadRule(demote: .never, promote: false)
}

/// A named workload: which cgroups it covers and its rule.
public struct WorkloadPolicy: Sendable, Equatable {
    public var name: String
    public var matches: [CgroupGlob]
    public var rule: WorkloadRule
    public init(name: String, matches: [CgroupGlob], rule: WorkloadRule) {
        self.name = name; self.matches = matches; self.rule = rule
    }
}

/// Controller-wide settings.
public struct ControllerSettings: Sendable, Equatable {
    /// The fallback tick; PSI triggers wake the loop sooner.
    public var interval: Duration
    /// The tick after a quiet one (see `TickPacing`); never shorter than `interval`.
    public var idleInterval: Duration = .seconds(10)
    /// Start demoting when DRAM free falls below this share of DRAM...
    public var dramLowFree: Double
    /// ...and keep going until free reaches this share (hysteresis).
    public var dramHighFree: Double
    /// How often the service samples free DRAM between ticks, waking a tick when it is about to
    /// fall below `low`; zero turns the watch off.
    public var dramWatch: Duration = .milliseconds(100)
    /// How far ahead a fall in free DRAM is projected: the watermarks are checked against free
    /// less what the fall takes in this time, so demotion starts before an allocation spills.
    public var dramLookahead: Duration = .seconds(1)
    /// DRAM kept for opt-out (protected) workloads on top of the watermarks: the part of it they
    /// do not use yet is made free ahead of time, so that they can start and grow into it without
    /// spilling to the slow tier or waiting for a demotion (`controller.dram.reserve`).
    public var dramReserve: UInt64 = 0
    /// Bytes per second for all moves together.
    public var rateLimit: UInt64
    /// The PSI trigger armed on each managed group: stall time within a window.
    public var psiStall: Duration
    public var psiWindow: Duration
    /// The nice value of the thread that moves pages while it moves them. Moving is CPU work
    /// done for the workloads that wait on it, and on a saturated host it competes with them.
    public var moverNice: Int32
    /// The most one tick demotes; the rest follows in the next ticks, re-planned on fresh state.
    public var demotionPerTick: UInt64
    /// Move a task's pages from the CPU it last ran on: a migration's TLB shootdowns then stay
    /// on that CPU instead of interrupting it, at the price of the task waiting for the move
    /// rather than running beside it.
    public var moveOnTaskCPU = true
    /// Run a tick's promotions and demotions side by side on two threads (see `MoveLanes`);
    /// off, one thread runs them in plan order and at most one CPU moves at a time.
    public var parallelMoves = true
    /// What tierd does with the kernel's NUMA balancing while it runs.
    public var numaBalancing: NumaBalancingChoice = .leave
    /// The file that shields groups tierd would not demote from the kernel's reclaim while it demotes.
    public var kernelShield: ShieldProtection = .low
    /// The most hot pages brought back to DRAM move, in bytes per second: tierd's own (`hotPages`)
    /// and, with `numaBalancing` `tiering`, the kernel's (which takes whole MiB per second).
    public var hotPromotionRate: UInt64 = 64 << 20
    /// How tierd finds opted-in workloads' hot pages on the slow tier to bring them back itself,
    /// at `hotPromotionRate`, into DRAM above the low watermark.
    public var hotPages: HotPageFinder = .written
    /// How long the bytes a hot promotion brought back are kept out of the group's demotions.
    public var hotHold: Duration = .seconds(30)
    /// How often tierd looks for written hot pages: each look reads every looked-at task's page
    /// map and clears its bits, a cost that grows with what opted-in workloads have on the slow tier.
    public var hotLookInterval: Duration = .seconds(5)
    /// What tierd does with the multi-generational LRU's batched clearing of accessed bits while it runs.
    public var lruGenBatchClearing: BatchClearingChoice = .leave

    public init(interval: Duration = .seconds(2), dramLowFree: Double = 0.10, dramHighFree: Double = 0.20,
                rateLimit: UInt64 = 512 << 20, psiStall: Duration = .milliseconds(150), psiWindow: Duration = .seconds(1),
                moverNice: Int32 = ControllerSettings.defaultMoverNice, demotionPerTick: UInt64 = 64 << 20) {
        self.interval = interval; self.dramLowFree = dramLowFree; self.dramHighFree = dramHighFree
        self.rateLimit = rateLimit; self.psiStall = psiStall; self.psiWindow = psiWindow; self.moverNice = moverNice
        self.demotionPerTick = demotionPerTick
    }

    /// Free DRAM the watermark's demotion restores on `dramTotal` bytes of DRAM.
    public func highWatermark(dramTotal: UInt64) -> UInt64 { UInt64(Double(dramTotal) * dramHighFree) }

    /// What a fall of `rate` bytes per second takes from free DRAM in one `dramLookahead`.
    public func anticipatedFall(rate: UInt64) -> UInt64 {
        UInt64(min(Double(UInt64.max / 2), Double(rate) * dramLookahead.seconds))
    }

    /// Above the workloads (nice 0) so moves keep their pace on a busy host; the rate limit
    /// bounds what that costs them.
    public static let defaultMoverNice: Int32 = -10
}

/// The whole compiled policy: what the planner reads. Built only by `PolicyCompiler`.
public struct Policy: Sendable, Equatable {
    public var tiers: TierSelection
    public var controller: ControllerSettings
    public var workloads: [WorkloadPolicy]
    public var defaultRule: WorkloadRule
    /// The last resolution: no part of the policy's value (copies share it, and it compares equal).
    private let memo = ResolutionMemo()

    public init(tiers: TierSelection = .auto, controller: ControllerSettings = ControllerSettings(),
                workloads: [WorkloadPolicy] = [], defaultRule: WorkloadRule = .observeOnly) {
        self.tiers = tiers; self.controller = controller; self.workloads = workloads; self.defaultRule = defaultRule
    }

    /// The name used for groups that no workload matches.
    public static let defaultWorkloadName = "default"

    /// Resolves every group's workload top-down: a group matched by a pattern takes that workload;
    /// otherwise it inherits its parent's. The deepest match thus wins, and an opt-out child under an
    /// opt-in parent stays opted out. At equal depth the entry first in the file wins.
    ///
    /// A tick resolves the same groups several times (its pacing, plan, shield and status), and
    /// from one tick to the next they rarely change: the last answer is kept and given again for
    /// the same paths under the same workloads.
    public func resolve(_ paths: [CgroupPath]) -> [CgroupPath: ResolvedWorkload] {
        memo.answer(ResolutionMemo.Question(paths: paths, workloads: workloads, defaultRule: defaultRule)) { resolveAfresh(paths) }
    }

    func resolveAfresh(_ paths: [CgroupPath]) -> [CgroupPath: ResolvedWorkload] {
        var resolved: [CgroupPath: ResolvedWorkload] = [:]
        resolved.reserveCapacity(paths.count)
        let fallback = ResolvedWorkload(name: Policy.defaultWorkloadName, rule: defaultRule, matchedAt: nil)
        let prepared = paths.map { ($0, $0.componentBytes) }.sorted { $0.1.count < $1.1.count }
        for (path, components) in prepared {
            if let hit = workloads.first(where: { $0.matches.contains { $0.matches(components: components) } }) {
                resolved[path] = ResolvedWorkload(name: hit.name, rule: hit.rule, matchedAt: path)
            } else {
                resolved[path] = path.parent.flatMap { resolved[$0] } ?? fallback
            }
        }
        return resolved
    }
}

/// The last question ``Policy/resolve(_:)`` answered and its answer. Keyed by everything the
/// answer depends on, so a copy of the policy changed since cannot be given a stale one.
final class ResolutionMemo: Sendable, Equatable {
    struct Question: Equatable {
        var paths: [CgroupPath]
        var workloads: [WorkloadPolicy]
        var defaultRule: WorkloadRule
    }
    private let last = Mutex<(question: Question, answer: [CgroupPath: ResolvedWorkload])?>(nil)

    func answer(_ question: Question, _ compute: () -> [CgroupPath: ResolvedWorkload]) -> [CgroupPath: ResolvedWorkload] {
        if let kept = last.withLock({ $0 }), kept.question == question { return kept.answer }
        let answer = compute()
        last.withLock { $0 = (question, answer) }
        return answer
    }

    static func == (a: ResolutionMemo, b: ResolutionMemo) -> Bool { true }
}

/// The workload a group falls under, and the group whose path matched (nil: the default).
public struct ResolvedWorkload: Sendable, Equatable {
    public var name: String
    public var rule: WorkloadRule
    public var matchedAt: CgroupPath?
}

/// A shell-style pattern over cgroup paths relative to the cgroup root:
/// `*` and `?` stay within one path component, `**` spans any number of components.
public struct CgroupGlob: Sendable, Equatable, CustomStringConvertible {
    public let pattern: String
    private let parts: [[UInt8]]

    public init(_ pattern: String) {
        self.pattern = pattern
        parts = pattern.split(separator: "/").map { Array($0.utf8) }
    }

    public var description: String { pattern }

    public func matches(_ path: CgroupPath) -> Bool { matches(components: path.componentBytes) }

    /// Matches pre-split path components (UTF-8), as `Policy.resolve` passes them.
    public func matches(components: [ArraySlice<UInt8>]) -> Bool {
        CgroupGlob.match(parts[...], components[...])
    }

    private static func match(_ pattern: ArraySlice<[UInt8]>, _ path: ArraySlice<ArraySlice<UInt8>>) -> Bool {
        guard let head = pattern.first else { return path.isEmpty }
        if head.count == 2 && head[0] == UInt8(ascii: "*") && head[1] == UInt8(ascii: "*") {
            let rest = pattern.dropFirst()
            var tail = path
            while true {
                if match(rest, tail) { return true }
                if tail.isEmpty { return false }
                tail = tail.dropFirst()
            }
        }
        guard let component = path.first, matchComponent(head[...], component) else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }

    private static func matchComponent(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
        var p = p, s = s
        var star: (ArraySlice<UInt8>, ArraySlice<UInt8>)?
        while true {
            if let c = p.first, c == UInt8(ascii: "*") {
                p = p.dropFirst(); star = (p, s); continue
            }
            if let c = p.first, let d = s.first, c == UInt8(ascii: "?") || c == d {
                p = p.dropFirst(); s = s.dropFirst(); continue
            }
            if p.isEmpty && s.isEmpty { return true }
            guard let (sp, ss) = star, !ss.isEmpty else { return false }
            p = sp; s = ss.dropFirst(); star = (sp, s)
        }
    }
}
