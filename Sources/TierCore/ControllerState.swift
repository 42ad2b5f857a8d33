/// A point on a monotonic clock, as the service read it. The core never reads a clock itself:
/// tests pass whatever instants they need.
public struct Instant: Sendable, Equatable, Comparable {
    public var sinceBoot: Duration
    public init(_ sinceBoot: Duration) { self.sinceBoot = sinceBoot }
    public static func < (a: Instant, b: Instant) -> Bool { a.sinceBoot < b.sinceBoot }
    public static func - (a: Instant, b: Instant) -> Duration { a.sinceBoot - b.sinceBoot }
    public static func + (a: Instant, b: Duration) -> Instant { Instant(a.sinceBoot + b) }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, attos) = components
        return Double(s) + Double(attos) / 1e18
    }
}

/// A token bucket of bytes: refills at `rate` per second up to `capacity`.
public struct ByteBucket: Sendable, Equatable {
    public var rate: UInt64
    public var capacity: UInt64
    public var tokens: UInt64
    public var refilledAt: Instant?

    public init(rate: UInt64, capacity: UInt64) {
        self.rate = rate; self.capacity = capacity; tokens = capacity
    }

    public mutating func refill(at now: Instant) {
        if let last = refilledAt, now > last {
            let added = Double(rate) * (now - last).seconds
            tokens = UInt64(min(Double(capacity), Double(tokens) + added))
        }
        refilledAt = now
    }

    public mutating func take(_ bytes: UInt64) { tokens -= min(tokens, bytes) }

    /// Returns unspent bytes, never past `capacity`.
    public mutating func give(_ bytes: UInt64) { tokens = min(capacity, tokens + min(bytes, capacity)) }
}

/// Bytes a hot promotion brought back to DRAM, kept out of demotion until `until`.
public struct HotHold: Sendable, Equatable {
    public var bytes: UInt64
    public var until: Instant
    public init(bytes: UInt64, until: Instant) { self.bytes = bytes; self.until = until }
}

/// A group held back from one direction of moves after a try that moved nothing: it is planned
/// that way again once its tasks change, its bytes change (where they are compared), or its
/// backoff ends. The backoff doubles with each fruitless try, from ``firstRetry`` to ``longestRetry``.
public struct HeldBack: Sendable, Equatable {
    public static let firstRetry: Duration = .seconds(10)
    public static let longestRetry: Duration = .seconds(300)

    /// The group's tasks at the try, sorted.
    public var pids: [Int32]
    /// Its bytes on the source nodes at the try, or nil when they are not compared.
    public var bytes: UInt64?
    public var retryAt: Instant
    /// Fruitless tries in a row.
    public var attempts: Int

    public init(after previous: HeldBack?, pids: [Int32], bytes: UInt64?, now: Instant) {
        attempts = (previous?.attempts ?? 0) + 1
        let doublings = min(attempts - 1, 16)
        let delay = min(Self.firstRetry * (1 << doublings), Self.longestRetry)
        self.pids = pids.sorted(); self.bytes = bytes; retryAt = Instant(now.sinceBoot + delay)
    }

    /// Whether the group is still held back, as it is in this snapshot at `now`.
    public func holds(pids: [Int32], bytes: UInt64, now: Instant) -> Bool {
        now < retryAt && self.pids == pids.sorted() && (self.bytes.map { $0 == bytes } ?? true)
    }
}

/// What the planner carries from one tick to the next, and nothing else: copied forward
/// explicitly, so a plan depends only on (snapshot, policy, state, now).
public struct ControllerState: Sendable, Equatable {
    /// Watermark hysteresis: set below the low watermark, cleared at the high one.
    public var reclaiming = false
    public var globalBucket: ByteBucket?
    public var workloadBuckets: [String: ByteBucket] = [:]
    /// Cumulative PSI totals (µs) each group had when last read, for stall shares between reads.
    public var pressureTotals: [CgroupPath: (some: UInt64, full: UInt64, at: Instant)] = [:]
    public var lastTick: Instant?
    /// Groups whose last promotion moved nothing although DRAM had room (pages pinned, shared
    /// in a way the kernel will not move, a transient EBUSY): a retry every tick would rescan the
    /// whole task to move nothing, and never retrying would leave an idle protected job in slow
    /// memory for good.
    public var stuckOnSlowNodes: [CgroupPath: HeldBack] = [:]
    /// Opted-in groups whose last demotion moved nothing although the slow nodes had room: every
    /// task refused (its mempolicy binds it to DRAM, say). Passed over, so that the demand goes to
    /// the next candidate instead of to the same refusal tick after tick.
    public var blockedSources: [CgroupPath: HeldBack] = [:]
    /// Workloads whose `cold` demotion once stole pages it did not demote (discarded page cache,
    /// swapped memory): they demote by `task` from then on, until a reload. The value says why.
    public var coldDisabled: [String: String] = [:]
    /// Groups whose `cold` demotion a task's mempolicy refused (the kernel's reclaim would demote
    /// its pages whatever the policy): demoted by `task` until their tasks change.
    public var coldRefused: [CgroupPath: (pids: [Int32], reason: String)] = [:]

    /// tierd's own promotions of opted-in workloads' hot pages (`controller.hot_promotion_rate`).
    public var hotBucket: ByteBucket?
    /// Bytes hot promotions brought back per group, each kept out of the group's demotions until
    /// its instant (`controller.hot_hold`).
    public var hotHeld: [CgroupPath: [HotHold]] = [:]
    /// When tierd last looked for written hot pages (`controller.hot_look_interval`).
    public var lastHotLook: Instant?

    public init() {}

    /// Bytes of `group` a hot promotion brought back less than a hold time ago.
    public func heldHotBytes(_ group: CgroupPath, now: Instant) -> UInt64 {
        (hotHeld[group] ?? []).reduce(0) { $0 + ($1.until > now ? $1.bytes : 0) }
    }

    /// Records what a hot promotion moved, held until `until`; expired holds are dropped.
    public mutating func noteHotPromotion(of group: CgroupPath, movedBytes: UInt64, until: Instant, now: Instant) {
        var holds = (hotHeld[group] ?? []).filter { $0.until > now }
        if movedBytes > 0 { holds.append(HotHold(bytes: movedBytes, until: until)) }
        hotHeld[group] = holds.isEmpty ? nil : holds
    }

    /// What the executed plan taught: a promotion that moved nothing, with room to spare, holds
    /// its group back (`slowBytes`: its own bytes on slow nodes in the snapshot planned on); one
    /// that moved something, or found DRAM full, releases it.
    public mutating func notePromotion(of group: CgroupPath, pids: [Int32], slowBytes: UInt64, movedBytes: UInt64, targetsFull: Bool, now: Instant) {
        stuckOnSlowNodes[group] = movedBytes == 0 && !targetsFull
            ? HeldBack(after: stuckOnSlowNodes[group], pids: pids, bytes: slowBytes, now: now) : nil
    }

    /// The same for a demotion: one that moved nothing with room on its targets holds the group
    /// back until its tasks change or the backoff ends (its bytes in DRAM change as it runs, and
    /// say nothing about its tasks' mempolicies).
    public mutating func noteDemotion(of group: CgroupPath, pids: [Int32], movedBytes: UInt64, targetsFull: Bool, now: Instant) {
        blockedSources[group] = movedBytes == 0 && !targetsFull
            ? HeldBack(after: blockedSources[group], pids: pids, bytes: nil, now: now) : nil
    }

    /// Forgets what it carried for groups no longer in the snapshot: on a host where pods come
    /// and go, the maps would otherwise grow for the daemon's life.
    public mutating func forgetGroups(notIn present: Set<CgroupPath>) {
        stuckOnSlowNodes = stuckOnSlowNodes.filter { present.contains($0.key) }
        blockedSources = blockedSources.filter { present.contains($0.key) }
        coldRefused = coldRefused.filter { present.contains($0.key) }
        hotHeld = hotHeld.filter { present.contains($0.key) }
    }

    /// Charges bytes moved outside the plan (a manual move) to the rate limits, so that tierd's own
    /// moves make up for them.
    public mutating func charge(_ bytes: UInt64, workload: String) {
        globalBucket?.take(bytes)
        workloadBuckets[workload]?.take(bytes)
    }

    /// Settles an executed action with the rate limits: the planner spent `planned` tokens;
    /// what did not move (failed, dropped, stopped early) goes back, and a move that overshot
    /// (whole pages past the byte budget) pays its excess.
    public mutating func settle(planned: UInt64, moved: UInt64, workload: String) {
        if moved > planned {
            charge(moved - planned, workload: workload)
        } else {
            globalBucket?.give(planned - moved)
            workloadBuckets[workload]?.give(planned - moved)
        }
    }

    /// Settles a hot promotion with its own bucket as `settle` does with the others.
    public mutating func settleHot(planned: UInt64, moved: UInt64) {
        if moved > planned { hotBucket?.take(moved - planned) } else { hotBucket?.give(planned - moved) }
    }

    public static func == (a: ControllerState, b: ControllerState) -> Bool {
        a.reclaiming == b.reclaiming && a.globalBucket == b.globalBucket && a.workloadBuckets == b.workloadBuckets
            && a.lastTick == b.lastTick && a.stuckOnSlowNodes == b.stuckOnSlowNodes && a.blockedSources == b.blockedSources
            && a.coldDisabled == b.coldDisabled && a.hotBucket == b.hotBucket && a.hotHeld == b.hotHeld && a.lastHotLook == b.lastHotLook
            && a.coldRefused.count == b.coldRefused.count
            && a.coldRefused.allSatisfy { k, v in b.coldRefused[k].map { $0.pids == v.pids && $0.reason == v.reason } ?? false }
            && a.pressureTotals.count == b.pressureTotals.count
            && a.pressureTotals.allSatisfy { k, v in b.pressureTotals[k].map { $0.some == v.some && $0.full == v.full && $0.at == v.at } ?? false }
    }
}

/// Decides, per task, whether the task's own NUMA policy forbids a move.
public enum MempolicyGate {
    /// Under `respect`, a task with any mapping whose explicit policy (bind, prefer, interleave…)
    /// names none of the target nodes is left alone: it asked to be elsewhere.
    /// - Returns: nil when the task may move, or the policy that keeps it in place.
    public static func blockingPolicy(_ entries: [NumaMapsEntry], targets: NodeSet, mode: MempolicyMode) -> Mempolicy? {
        guard mode == .respect else { return nil }
        return entries.first { $0.policy.isExplicit && $0.policy.nodes.isDisjoint(with: targets) }?.policy
    }
}
