/// A point on a monotonic clock, as the service read it. The core never reads a clock itself:
/// tests pass whatever instants they need.
public struct Instant: Sendable, Equatable, Comparable {
    public var sinceBoot: Duration
    public init(_ sinceBoot: Duration) { self.sinceBoot = sinceBoot }
    public static func < (a: Instant, b: Instant) -> Bool { a.sinceBoot < b.sinceBoot }
    public static func - (a: Instant, b: Instant) -> Duration { a.sinceBoot - b.sinceBoot }
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
}

/// What the planner carries from one tick to the next, and nothing else: copied forward
/// explicitly, so a plan depends only on (snapshot, policy, state, now).
public struct ControllerState: Sendable, Equatable {
    /// Watermark hysteresis: set below the low watermark, cleared at the high one.
    public var reclaiming = false
    public var globalBucket: ByteBucket?
    public var workloadBuckets: [String: ByteBucket] = [:]
    /// Cumulative PSI totals (µs) seen at `lastTick`, for stall shares between ticks.
    public var pressureTotals: [CgroupPath: (some: UInt64, full: UInt64)] = [:]
    public var lastTick: Instant?
    /// Groups whose last promotion moved nothing although DRAM had room (pages pinned, shared
    /// in a way the kernel will not move, or otherwise stuck), with their slow-node bytes then.
    /// They are not tried again until that figure changes: a retry every tick would rescan the
    /// whole task to move nothing.
    public var stuckOnSlowNodes: [CgroupPath: UInt64] = [:]

    public init() {}

    /// What the executed plan taught: a promotion that moved nothing, with room to spare, marks
    /// its group stuck at `slowBytes` (its own bytes on slow nodes in the snapshot planned on).
    public mutating func notePromotion(of group: CgroupPath, slowBytes: UInt64, movedBytes: UInt64, targetsFull: Bool) {
        if movedBytes == 0 && !targetsFull { stuckOnSlowNodes[group] = slowBytes } else { stuckOnSlowNodes[group] = nil }
    }

    /// Charges bytes moved outside the plan (a manual move) to the rate limits, so that tierd's own
    /// moves make up for them.
    public mutating func charge(_ bytes: UInt64, workload: String) {
        globalBucket?.take(bytes)
        workloadBuckets[workload]?.take(bytes)
    }

    public static func == (a: ControllerState, b: ControllerState) -> Bool {
        a.reclaiming == b.reclaiming && a.globalBucket == b.globalBucket && a.workloadBuckets == b.workloadBuckets
            && a.lastTick == b.lastTick && a.stuckOnSlowNodes == b.stuckOnSlowNodes && a.pressureTotals.count == b.pressureTotals.count
            && a.pressureTotals.allSatisfy { k, v in b.pressureTotals[k].map { $0 == v } ?? false }
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
