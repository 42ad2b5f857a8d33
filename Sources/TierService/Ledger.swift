import TierCore
import TierLinux

/// tierd's own accounting. The kernel's pgdemote/pgpromote counters do not see moves made
/// with migrate_pages(2), so every byte tierd moves is counted here, per group and direction.
public struct MoveLedger: Sendable, Equatable {
    /// Bytes moved, keyed by group and direction, for the groups still there
    /// (``forgetGroups(notIn:)``): pods come and go, and the map must not grow with them.
    public var bytesMoved: [CgroupPath: [MigrationAction.Direction: UInt64]] = [:]
    /// Bytes moved per workload and direction, gone groups included.
    public var movedByWorkload: [String: [MigrationAction.Direction: UInt64]] = [:]
    /// Bytes moved per direction over the daemon's life.
    public var movedTotal: [MigrationAction.Direction: UInt64] = [:]
    /// Bytes demoted per mode (`cold`, `task`) over the daemon's life.
    public var demotedByMode: [DemotionMode: UInt64] = [:]
    /// Bytes promoted back to DRAM for opted-in workloads (their newly hot pages).
    public var promotedForOptedIn: UInt64 = 0
    /// Bytes `cold` demotions' reclaim took and did not demote while the group went to swap (or
    /// swap could not be seen). Must stay zero.
    public var lostTotal: UInt64 = 0
    /// Bytes of opted-in workloads' written pages brought back to DRAM (`controller.hot_pages`).
    public var promotedHotTotal: UInt64 = 0
    /// The slow tier's page cache `cold` demotions' reclaim dropped (it has nowhere to demote to).
    public var slowTierDroppedTotal: UInt64 = 0
    /// Task results by code ("moved", "exited", "mempolicy", ...).
    public var taskResults: [String: UInt64] = [:]
    /// Planner skips by reason code.
    public var skips: [String: UInt64] = [:]
    public var actionsDropped: UInt64 = 0
    public var groupsVanished: UInt64 = 0
    public var ticks: UInt64 = 0
    public var collectFailures: UInt64 = 0

    public init() {}

    public mutating func record(_ plan: MigrationPlan, _ outcomes: [ActionOutcome], vanished: Int) {
        ticks += 1
        groupsVanished += UInt64(vanished)
        for skip in plan.skips { skips[skip.reason.code, default: 0] += 1 }
        recordMoves(outcomes)
    }

    /// Moves outside a tick (manual ones) count as the daemon's own do.
    public mutating func recordMoves(_ outcomes: [ActionOutcome]) {
        for outcome in outcomes {
            if outcome.dropped != nil { actionsDropped += 1 }
            let moved = outcome.movedBytes
            if moved > 0 {
                let action = outcome.action
                bytesMoved[action.group, default: [:]][action.direction, default: 0] += moved
                movedByWorkload[action.workload, default: [:]][action.direction, default: 0] += moved
                movedTotal[action.direction, default: 0] += moved
                if action.direction == .demote { demotedByMode[action.mechanism.mode, default: 0] += moved }
                if action.pages == .recentlyWritten { promotedHotTotal += moved }
            }
            lostTotal += outcome.lostBytes
            slowTierDroppedTotal += outcome.slowTierDroppedBytes
            for task in outcome.tasks { taskResults[task.result.code, default: 0] += 1 }
        }
    }

    public func total(_ direction: MigrationAction.Direction) -> UInt64 { movedTotal[direction] ?? 0 }

    /// Drops the per-group figures of groups no longer on the host; the totals keep their bytes.
    public mutating func forgetGroups(notIn present: Set<CgroupPath>) {
        bytesMoved = bytesMoved.filter { present.contains($0.key) }
    }
}
