/// How long the control loop waits for its next tick when nothing wakes it sooner.
///
/// A tick that moved memory, was held back by a rate limit or held a fruitless group back is
/// followed at once: the host has changed meanwhile. A quiet tick — nothing planned, free DRAM
/// at or above `high` one lookahead ahead, no opt-out memory on slow nodes — is followed after
/// `idleInterval`: on a host with thousands of groups and nothing to move, reading every group's
/// files is most of what tierd costs, and while the free-DRAM watch samples between ticks a host
/// that starts to fill wakes a tick within one watch period anyway (as PSI triggers, a reload or
/// a manual move do). A tick whose only actions are looks for written hot pages is quiet too (it
/// may carry groups), but a quiet tick waits no longer than the next look is due
/// (`hot_look_interval`), and never less than the interval. Pure: the service hands it the tick's plan.
public enum TickPacing {
    public static func pause(after plan: MigrationPlan, moved: Bool, heldBack: Bool, settings: ControllerSettings) -> Duration {
        if moved || heldBack || plan.summary.deferredBytes > 0 { return min(settings.interval, .milliseconds(100)) }
        guard isQuiet(plan, settings: settings) else { return settings.interval }
        let idle = max(settings.interval, settings.idleInterval)
        return plan.summary.nextHotLook.map { min(idle, max(settings.interval, $0)) } ?? idle
    }

    /// Nothing to do and nothing close to it, with the free-DRAM watch on to notice a change.
    public static func isQuiet(_ plan: MigrationPlan, settings: ControllerSettings) -> Bool {
        let summary = plan.summary
        return settings.dramWatch > .zero && plan.actions.allSatisfy { $0.pages == .recentlyWritten } && !summary.reclaiming
            && summary.promotionNeed == 0 && summary.demotionDemand == 0
            && summary.dramTotal > 0 && summary.projectedDramFree >= summary.highWatermark
    }
}

/// Which groups an idle tick may leave unread, keeping what the last read found.
///
/// On an idle host most of a tick is reading every group's four files. After a quiet tick, while
/// free DRAM stays at or above `high` one lookahead ahead and the kernel's reclaim does not demote
/// (no `memory.low` shield to size), an opted-in group's tasks and pressure are looked at only by
/// a demotion, and its bytes only by a demotion, by its parent's own bytes and by the status.
/// Such a tick reads the DRAM nodes, lists the whole tree (new groups are read, removed ones drop
/// out), reads afresh every group that is not opted in, and of an opted-in group whose parent or
/// a child is not opted in only the numa_stat (a group's own bytes are its numa_stat less its
/// children's); every `fullReadInterval` all groups are read again. A plan made from such a
/// snapshot that asks for any demotion (`needsFullRead`) is made again from a full read (the
/// controller's part), as is one on a host whose kernel has started to demote. Pure.
public enum GroupCarrying {
    /// How old the opted-in groups' entries may grow while the host stays idle.
    public static let fullReadInterval: Duration = .seconds(60)

    /// Whether this tick may carry opted-in groups: the previous tick was quiet, its read was full
    /// or carried within `fullReadInterval` of the last full one, and free DRAM now, less what the
    /// watch's fall rate takes in one lookahead, is at or above `high`.
    public static func mayCarry(previous: MigrationPlan?, sinceFullRead: Duration?, topology: Topology,
                                dramFallRate: UInt64, settings: ControllerSettings) -> Bool {
        guard let previous, let sinceFullRead, sinceFullRead < fullReadInterval,
              TickPacing.isQuiet(previous, settings: settings) else { return false }
        let total = topology.totalBytes(topology.fast), free = topology.freeBytes(topology.fast)
        guard total > 0 else { return false }
        return free - min(free, settings.anticipatedFall(rate: dramFallRate)) >= previous.summary.highWatermark
    }

    /// Whether a plan made with carried groups must be made again from every group read now: it
    /// asks for demotion (opted-in groups' tasks, bytes and pressure decide where from), or the
    /// kernel's reclaim demotes (the `memory.low` shield is sized from every shielded group).
    public static func needsFullRead(_ plan: MigrationPlan, movers: KernelMovers?) -> Bool {
        plan.summary.demotionDemand > 0 || plan.actions.contains { $0.direction == .demote } || KernelShield.kernelDemotes(movers)
    }

    /// A group this tick lists without reading its files, or reads only the numa_stat of.
    public struct Carried: Sendable, Equatable {
        /// The last snapshot's entry.
        public var entry: CgroupSnapshot
        /// Whether its numa_stat is read afresh: a neighbour that is not opted in (its parent, whose
        /// own bytes are its numa_stat less its children's, or a child, less which its own are) is
        /// read afresh, and the two must be of one moment.
        public var readsNumaStat: Bool
        public init(entry: CgroupSnapshot, readsNumaStat: Bool) { self.entry = entry; self.readsNumaStat = readsNumaStat }
    }

    /// The last snapshot's opted-in groups, which this tick may leave unread: wholly where the
    /// parent is the root or opted in and every child opted in too, all but the numa_stat otherwise.
    public static func carried(from last: HostSnapshot, policy: Policy) -> [CgroupPath: Carried] {
        let workloads = policy.resolve(last.groups.map(\.path))
        func optedIn(_ path: CgroupPath) -> Bool { workloads[path]?.rule.demote == .allowed }
        var readBesideParent = Set<CgroupPath>()
        for group in last.groups where !optedIn(group.path) {
            if let parent = group.path.parent { readBesideParent.insert(parent) }
        }
        var carried: [CgroupPath: Carried] = [:]
        for group in last.groups where optedIn(group.path) {
            let parentRead = group.path.parent.map { !$0.isRoot && !optedIn($0) } ?? false
            carried[group.path] = Carried(entry: group, readsNumaStat: parentRead || readBesideParent.contains(group.path))
        }
        return carried
    }
}
