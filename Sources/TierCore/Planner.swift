/// The decision: given one snapshot, the policy, the carried state and the time, what to move.
///
/// Pure: no I/O, no clock. Rules, in order:
/// 1. Opt-out workloads with `promote` whose own pages sit on slow nodes need DRAM back.
/// 2. Demotion demand is the larger of: the watermark gap (DRAM free below `low` starts
///    reclaiming until free reaches `high`; free is taken one `lookahead` ahead at the rate it
///    is falling), at most `demotion_per_tick` of it in one tick (more if the fall is faster), and
///    the room promotion needs above half of `low`.
/// 3. Opted-in groups cover the demand in priority order (lower first, then the most DRAM),
///    never below their floor, never while their pressure guard is tripped, only to slow nodes
///    inside both their cpuset and tierd's own.
/// 4. Promotions follow, limited to the room there is; rate limits cap every action.
/// Order of actions: promotions into DRAM free now, demotions that make room for the rest of
/// them, those promotions, then any demotion the watermark asks for beyond that, which yields to
/// the next tick when it runs long (`yieldsToNextTick`). Promotions and
/// demotions are two sequences the service may run side by side: a promotion marked
/// `usesRoomMade` is paced by the demotions marked `makesRoom`.
public enum Planner {
    public static func plan(snapshot: HostSnapshot, policy: Policy, state previous: ControllerState,
                            now: Instant) -> (MigrationPlan, ControllerState) {
        var state = previous
        var plan = MigrationPlan()
        let topology = snapshot.topology
        let fast = topology.fast, slow = topology.slow
        let allowed = snapshot.tierdAllowedNodes
        let settings = policy.controller

        let stallShares = measureStall(snapshot, &state, now)
        refillBuckets(&state, policy, now)
        state.lastTick = now

        let dramTotal = topology.totalBytes(fast)
        let dramFree = topology.freeBytes(fast)
        let workloads = policy.resolve(snapshot.groups.map(\.path))
        let own = snapshot.ownNumaStats()
        let unusedReserve = settings.dramReserve == 0 ? 0
            : settings.dramReserve - min(settings.dramReserve, protectedDramBytes(snapshot, workloads, own))
        let baseLow = UInt64(Double(dramTotal) * settings.dramLowFree)
        plan.summary.dramTotal = dramTotal
        plan.summary.dramFree = dramFree
        plan.summary.reserve = settings.dramReserve
        plan.summary.reserveUnused = unusedReserve
        plan.summary.lowWatermark = min(dramTotal, baseLow + unusedReserve)
        plan.summary.highWatermark = min(dramTotal, settings.highWatermark(dramTotal: dramTotal) + unusedReserve)
        plan.summary.reserveMet = unusedReserve == 0 || dramFree >= plan.summary.lowWatermark
        let low = plan.summary.lowWatermark, high = plan.summary.highWatermark

        guard !slow.isEmpty else {
            plan.skips.append(PlanSkip(group: .root, workload: Policy.defaultWorkloadName, reason: .noSlowTier))
            state.reclaiming = false
            return (plan, state)
        }

        let parents = snapshot.parentGroups()

        // 1. What opt-out workloads need back.
        var promotions: [(group: CgroupSnapshot, workload: ResolvedWorkload, from: NodeSet, to: [Int], bytes: UInt64)] = []
        for group in snapshot.groups {
            guard let workload = workloads[group.path], workload.rule.demote == .never,
                  let stat = own[group.path] else { continue }
            let slowBytes = stat.bytes(on: slow)
            guard slowBytes > 0 else { continue }
            func skip(_ reason: SkipReason) { plan.skips.append(PlanSkip(group: group.path, workload: workload.name, reason: reason)) }
            guard workload.rule.promote else { skip(.promotionDisabled(slowBytes: slowBytes)); continue }
            guard !group.pids.isEmpty else { skip(.noTasks(bytes: slowBytes)); continue }
            guard !group.cpusetMems.isDisjoint(with: fast) else { skip(.confinedToSlowNodes(cpuset: group.cpusetMems)); continue }
            if let hold = state.stuckOnSlowNodes[group.path], hold.holds(pids: group.pids, bytes: slowBytes, now: now) {
                skip(.stuckOnSlowNodes(bytes: slowBytes, retryIn: hold.retryAt - now))
                continue
            }
            let targets = fast.intersection(group.cpusetMems).intersection(allowed)
            guard !targets.isEmpty else {
                skip(.noTargetNodes(detail: "DRAM nodes \(fast) ∩ cpuset \(group.cpusetMems) ∩ tierd's own nodes \(allowed) is empty"))
                continue
            }
            let from = slow.intersection(stat.nodes).filter { stat.bytes(on: $0) > 0 }
            promotions.append((group, workload, NodeSet(from), topology.orderedByDistance(targets), slowBytes))
        }
        let promotionNeed = promotions.reduce(0) { $0 + $1.bytes }
        plan.summary.promotionNeed = promotionNeed

        // 2. How much DRAM to free. The watermarks are checked against free DRAM one lookahead
        // ahead at the rate it is falling: an allocation that would cross `low` before the next
        // look starts the demotion now, and the demotion covers what it takes meanwhile.
        // While part of the reserve is unused, it is the room a fall eats into first — most likely
        // a protected workload growing into it, which the reserve is for: the watermarks, raised
        // by that part, catch what goes beyond it, and the lookahead applies once it is used up.
        // (Anticipating the fall as well made room twice: in the lab, 92 MiB more demoted as the
        // protected job filled the last of its reserve.)
        let anticipated = settings.anticipatedFall(rate: snapshot.dramFallRate)
        let uncovered = unusedReserve > 0 ? 0 : anticipated
        let projectedFree = dramFree - min(dramFree, uncovered)
        plan.summary.dramFallRate = snapshot.dramFallRate
        plan.summary.projectedDramFree = projectedFree
        // A controller without history (its first tick, as after a restart) cannot know whether a
        // reclaim was under way: below `high` it finishes one. A tierd killed mid-demotion and
        // restarted with free DRAM between the watermarks otherwise left the work undone.
        let firstTick = previous.lastTick == nil
        if projectedFree < low || (firstTick && projectedFree < high) { state.reclaiming = true }
        else if projectedFree >= high { state.reclaiming = false }
        let watermarkDemand = state.reclaiming ? high - min(high, projectedFree) : 0
        // A protected workload's pages may use DRAM down to half the low watermark: the band
        // between them is demotion's hysteresis, and protected memory outranks it. With less
        // free already, promotion keeps what is free: it never adds to the shortage, and the
        // reserve is the watermark's demotion to restore, after the protected pages are back
        // (restoring it first made the protected job wait for up to a reserve's worth of moves).
        // The reserve is for protected pages: their promotion may use it.
        let promotionKeepsFree = min(baseLow / 2, dramFree)
        var roomNow = dramFree - promotionKeepsFree
        let promotionShortfall = promotionNeed > roomNow ? promotionNeed - roomNow : 0
        // The watermark's demotion takes at most `demotionPerTick` a tick: the loop re-plans right
        // after a busy tick, so a protected job that appears mid-reclaim waits for one batch, not
        // the whole reclaim. Room for protected pages is not cut into batches (the rate limits
        // still apply): its promotion follows the demotion within the tick, not a tick later.
        // A fall faster than that batch per lookahead raises the batch to keep pace with it.
        let demand = max(min(watermarkDemand, max(settings.demotionPerTick, anticipated)), promotionShortfall)
        plan.summary.reclaiming = state.reclaiming
        plan.summary.demotionDemand = demand

        // 4a. Promote what fits now, first: a protected job never waits behind a long demotion.
        var remaining = promotions.map(\.bytes)
        var rateLimited = Set<Int>()
        func promote(into room: inout UInt64) -> [MigrationAction] {
            var actions: [MigrationAction] = []
            for (index, promotion) in promotions.enumerated() where remaining[index] > 0 && room > 0 {
                let budget = allowance(state, promotion.workload.name)
                guard budget > 0 else { rateLimited.insert(index); continue }
                let take = min(remaining[index], room, budget)
                spend(&state, promotion.workload.name, take)
                remaining[index] -= take
                room -= take
                var action = MigrationAction(
                    group: promotion.group.path, workload: promotion.workload.name, direction: .promote, pids: promotion.group.pids,
                    from: promotion.from, to: promotion.to, bytes: take, mempolicy: promotion.workload.rule.mempolicy,
                    reason: "protected workload has \(formatBytes(promotion.bytes)) on slow nodes")
                action.keepFreeOnTargets = promotionKeepsFree
                action.onTaskCPU = settings.moveOnTaskCPU
                actions.append(action)
            }
            return actions
        }
        let early = promote(into: &roomNow)

        // 3. Demote opted-in groups to cover the demand. The part that makes room for the
        // protected pages runs before their promotion; the watermark's extra waits behind it.
        var demoted: UInt64 = 0
        var roomMaking: [MigrationAction] = [], afterPromotion: [MigrationAction] = []
        if demand > 0 {
            // No slow node is filled past the kernel's high watermark: below it kswapd reclaims
            // there, and a move into a full node fails page by page after the kernel tried to make room.
            var slowRoom: [Int: UInt64] = [:]
            for id in slow { slowRoom[id] = topology.node(id)?.roomAboveHighWatermark ?? 0 }
            var candidates: [(group: CgroupSnapshot, workload: ResolvedWorkload, fastBytes: UInt64)] = []
            for group in snapshot.groups {
                guard let workload = workloads[group.path], workload.rule.demote == .allowed,
                      let fastBytes = own[group.path]?.bytes(on: fast), fastBytes > 0 else { continue }
                candidates.append((group, workload, fastBytes))
            }
            candidates.sort {
                ($0.workload.rule.priority, UInt64.max - $0.fastBytes, $0.group.path.relative)
                    < ($1.workload.rule.priority, UInt64.max - $1.fastBytes, $1.group.path.relative)
            }
            for (group, workload, fastBytes) in candidates {
                func skip(_ reason: SkipReason) { plan.skips.append(PlanSkip(group: group.path, workload: workload.name, reason: reason)) }
                let remaining = demand - min(demand, demoted)
                if remaining == 0 { break }
                let rule = workload.rule
                guard !group.pids.isEmpty else { skip(.noTasks(bytes: fastBytes)); continue }
                if let hold = state.blockedSources[group.path], hold.holds(pids: group.pids, bytes: fastBytes, now: now) {
                    skip(.demotionMovedNothing(retryIn: hold.retryAt - now))
                    continue
                }
                if let pressureGuard = rule.pressureGuard {
                    let line = pressureGuard.kind == .some ? group.pressure.some : group.pressure.full
                    let recent = stallShares[group.path].map { pressureGuard.kind == .some ? $0.some : $0.full } ?? 0
                    let observed = max(line.avg10, recent)
                    if observed >= pressureGuard.threshold {
                        skip(.pressureGuard(kind: pressureGuard.kind, observed: observed, threshold: pressureGuard.threshold))
                        continue
                    }
                }
                let targets = slow.intersection(group.cpusetMems).intersection(allowed)
                guard !targets.isEmpty else {
                    let which = slow.intersection(group.cpusetMems).isEmpty
                        ? "slow nodes \(slow) ∩ cpuset \(group.cpusetMems) is empty"
                        : "slow nodes in cpuset \(slow.intersection(group.cpusetMems)) ∩ tierd's own nodes \(allowed) is empty"
                    skip(.noTargetNodes(detail: which))
                    continue
                }
                guard fastBytes > rule.dramFloor else { skip(.atDramFloor(fastBytes: fastBytes, floor: rule.dramFloor)); continue }
                let held = state.heldHotBytes(group.path, now: now)
                guard fastBytes > rule.dramFloor + held else { skip(.holdingHotPages(bytes: held, hold: settings.hotHold)); continue }
                let ordered = topology.orderedByDistance(targets)
                let room = ordered.reduce(0) { $0 + slowRoom[$1, default: 0] }
                guard room > 0 else {
                    skip(.slowNodesFull(nodes: targets, freeBytes: topology.freeBytes(targets), reserve: topology.reserveBytes(targets)))
                    continue
                }
                let wanted = min(fastBytes - rule.dramFloor - held, remaining, room)
                let budget = allowance(state, workload.name)
                guard budget > 0 else { skip(.rateLimited(scope: budgetScope(state, workload.name))); plan.summary.deferredBytes += wanted; continue }
                let bytes = min(wanted, budget)
                plan.summary.deferredBytes += wanted - bytes
                spend(&state, workload.name, bytes)
                demoted += bytes
                var placing = bytes
                for node in ordered where placing > 0 {
                    let taken = min(placing, slowRoom[node, default: 0])
                    slowRoom[node, default: 0] -= taken
                    placing -= taken
                }
                let stat = own[group.path] ?? NumaStat()
                let forRoom = min(bytes, promotionShortfall - min(promotionShortfall, demoted - bytes))
                let mechanism = demotionMechanism(rule: rule, workload: workload.name, group: group, snapshot: snapshot,
                                                  hasChildren: parents.contains(group.path), state: state).mechanism
                func demotion(_ bytes: UInt64, _ reason: String) -> MigrationAction {
                    var action = MigrationAction(group: group.path, workload: workload.name, direction: .demote, pids: group.pids,
                                                 from: NodeSet(fast.filter { stat.bytes(on: $0) > 0 }), to: ordered,
                                                 bytes: bytes, mempolicy: rule.mempolicy, reason: reason)
                    action.onTaskCPU = settings.moveOnTaskCPU
                    action.mechanism = mechanism
                    return action
                }
                if forRoom > 0 {
                    var action = demotion(forRoom, "making room for \(formatBytes(promotionNeed)) of protected memory on slow nodes")
                    action.makesRoom = true
                    roomMaking.append(action)
                }
                if bytes > forRoom {
                    let why = anticipated == 0 ? "DRAM free \(formatBytes(dramFree)) below target \(formatBytes(high))"
                        : "DRAM free \(formatBytes(dramFree)) falling at \(formatBytes(snapshot.dramFallRate))/s, \(formatBytes(projectedFree)) in \(settings.dramLookahead.seconds) s, below target \(formatBytes(high))"
                    var action = demotion(bytes - forRoom, why)
                    action.yieldsToNextTick = true
                    afterPromotion.append(action)
                }
            }
        }

        // 4b. Promote the rest into the room the demotions make.
        var roomMade = roomMaking.reduce(0) { $0 + $1.bytes }
        let late = promote(into: &roomMade).map { action in
            var action = action
            action.usesRoomMade = true
            return action
        }
        // 5. With nothing else to do, opted-in workloads' pages written on the slow tier come back.
        let hot = promotionNeed == 0 && demand == 0 && !state.reclaiming
            ? hotPromotions(snapshot, workloads, own, room: dramFree - min(dramFree, low), keepFree: low, &state) : []
        plan.actions = early + roomMaking + late + afterPromotion + hot
        for promotion in promotions { plan.slowBytesToPromote[promotion.group.path] = promotion.bytes }
        for (index, promotion) in promotions.enumerated() where remaining[index] > 0 {
            let reason: SkipReason = rateLimited.contains(index)
                ? .rateLimited(scope: budgetScope(state, promotion.workload.name))
                : .noRoomInDram(neededBytes: remaining[index])
            if rateLimited.contains(index) { plan.summary.deferredBytes += remaining[index] }
            plan.skips.append(PlanSkip(group: promotion.group.path, workload: promotion.workload.name, reason: reason))
        }
        return (plan, state)
    }

    /// Promotions of the pages opted-in groups wrote on the slow tier since tierd last looked
    /// (`controller.hot_pages: written`): into `room` (DRAM above the low watermark), at most
    /// `controller.hot_promotion_rate`, the most important workloads (highest priority) first.
    /// Each asks for all the room its budget allows: the migrator moves only written pages, and
    /// what it does not move goes back to the rate limits.
    static func hotPromotions(_ snapshot: HostSnapshot, _ workloads: [CgroupPath: ResolvedWorkload], _ own: [CgroupPath: NumaStat],
                              room: UInt64, keepFree: UInt64, _ state: inout ControllerState) -> [MigrationAction] {
        guard snapshot.tracksWrittenPages, room > 0, state.hotBucket != nil else { return [] }
        let topology = snapshot.topology
        var room = room
        var candidates: [(group: CgroupSnapshot, workload: ResolvedWorkload, slowBytes: UInt64)] = []
        for group in snapshot.groups {
            guard let workload = workloads[group.path], workload.rule.demote == .allowed, !group.pids.isEmpty,
                  let slowBytes = own[group.path]?.bytes(on: topology.slow), slowBytes > 0 else { continue }
            candidates.append((group, workload, slowBytes))
        }
        candidates.sort { ($1.workload.rule.priority, $0.group.path.relative) < ($0.workload.rule.priority, $1.group.path.relative) }
        var actions: [MigrationAction] = []
        for (group, workload, slowBytes) in candidates where room > 0 {
            let targets = topology.fast.intersection(group.cpusetMems).intersection(snapshot.tierdAllowedNodes)
            let stat = own[group.path] ?? NumaStat()
            let from = NodeSet(topology.slow.filter { stat.bytes(on: $0) > 0 })
            let budget = min(room, slowBytes, allowance(state, workload.name), state.hotBucket?.tokens ?? 0)
            guard !targets.isEmpty, budget > 0 else { continue }
            spend(&state, workload.name, budget)
            state.hotBucket?.take(budget)
            room -= budget
            var action = MigrationAction(group: group.path, workload: workload.name, direction: .promote, pids: group.pids,
                                         from: from, to: topology.orderedByDistance(targets), bytes: budget,
                                         mempolicy: workload.rule.mempolicy,
                                         reason: "pages written on slow nodes (\(formatBytes(slowBytes)) there) come back while DRAM has room")
            action.pages = .recentlyWritten
            action.keepFreeOnTargets = keepFree
            actions.append(action)
        }
        return actions
    }

    /// What opt-out workloads the policy names use of DRAM: what `controller.dram.reserve` is
    /// kept for, and already covers.
    static func protectedDramBytes(_ snapshot: HostSnapshot, _ workloads: [CgroupPath: ResolvedWorkload],
                                   _ own: [CgroupPath: NumaStat]) -> UInt64 {
        let fast = snapshot.topology.fast
        return snapshot.groups.reduce(0) { total, group in
            guard let workload = workloads[group.path], workload.rule.demote == .never, workload.matchedAt != nil,
                  let stat = own[group.path] else { return total }
            return total + stat.bytes(on: fast)
        }
    }

    /// How a demotion of `group` is carried out now: `cold` (the kernel's reclaim of its coldest
    /// pages) where the rule asks for it and the kernel can do it without breaking tierd's rules;
    /// otherwise `task`, with the reason. The kernel's reclaim demotes only while demotion is on
    /// and into its own lower memory tier, takes a group's children with it, and before 6.16
    /// demotes to any slow node whatever the cpuset; a workload that once lost pages to it
    /// (discarded or swapped) and a group whose task's mempolicy refused it stay with `task`.
    public static func demotionMechanism(rule: WorkloadRule, workload: String, group: CgroupSnapshot, snapshot: HostSnapshot,
                                         hasChildren: Bool, state: ControllerState) -> MechanismChoice {
        guard rule.demotionMode == .cold else { return MechanismChoice(.taskMoves) }
        func task(_ why: String) -> MechanismChoice { MechanismChoice(.taskMoves, fallback: why) }
        if let why = state.coldDisabled[workload] { return task(why) }
        if let refused = state.coldRefused[group.path], refused.pids == group.pids.sorted() { return task(refused.reason) }
        guard let movers = snapshot.kernelMovers, let enabled = movers.demotionEnabled else {
            return task("the kernel's demotion switch cannot be read")
        }
        guard enabled else {
            return task("kernel demotion is off (demotion_enabled=false): memory.reclaim would discard or swap, not demote")
        }
        let topology = snapshot.topology
        guard topology.source == .memoryTiers else {
            return task("the slow nodes come from \(topology.source.rawValue), not from the kernel's memory tiers: the kernel may have nowhere to demote")
        }
        guard !hasChildren else { return task("the group has child groups: memory.reclaim would take their memory too") }
        let allowed = group.cpusetMems.intersection(snapshot.tierdAllowedNodes)
        let release = movers.release.flatMap(KernelRelease.init)
        guard let release, release >= .countsDemotionsPerGroup else {
            return task("kernel \(release.map { "\($0)" } ?? "of unknown release") counts no demotion per cgroup (memory.stat's pgdemote_*, 6.12 on): a cold demotion could not be verified")
        }
        let kernelTargets = movers.demotionRespectsCpusets ? topology.slow.intersection(group.cpusetMems) : topology.slow
        guard kernelTargets.isSubset(of: allowed) else {
            return task(movers.demotionRespectsCpusets
                ? "the kernel would demote to \(kernelTargets), outside tierd's own nodes \(snapshot.tierdAllowedNodes)"
                : "kernel \(release) demotes to any slow node (\(topology.slow)) whatever the cpuset (\(group.cpusetMems)); from 6.16 it keeps to it")
        }
        return MechanismChoice(.kernelReclaim(argument: anonFirstArgument))
    }

    /// What asks `memory.reclaim` for anonymous memory first: `swappiness=200`, the
    /// multi-generational LRU's anon-first value, on every kernel cold mode runs on. 7.3 also
    /// takes `swappiness=max` (anon only, 6.15 on); in the lab neither argument kept the batch job's
    /// hot set in DRAM on every 7.3 run (docs/DESIGN.md), and 200 is what 6.12 always held it with.
    /// Neither keeps a request off the slow tier's page cache: a node with nowhere to demote to and
    /// no swap has only page cache to give.
    public static let anonFirstArgument = "swappiness=200"

    /// The share of time each group stalled since it was last read, from cumulative PSI totals.
    /// A group this tick did not read (carried) keeps its totals and gets no share.
    static func measureStall(_ snapshot: HostSnapshot, _ state: inout ControllerState,
                             _ now: Instant) -> [CgroupPath: (some: Double, full: Double)] {
        var shares: [CgroupPath: (some: Double, full: Double)] = [:]
        var totals: [CgroupPath: (some: UInt64, full: UInt64, at: Instant)] = [:]
        shares.reserveCapacity(snapshot.groups.count)
        totals.reserveCapacity(snapshot.groups.count)
        for group in snapshot.groups {
            let last = state.pressureTotals[group.path]
            if snapshot.carried.contains(group.path) {
                totals[group.path] = last
                continue
            }
            let current = (some: group.pressure.some.totalMicroseconds, full: group.pressure.full.totalMicroseconds)
            totals[group.path] = (current.some, current.full, now)
            if let last, now > last.at {
                let elapsedMicroseconds = (now - last.at).seconds * 1e6
                let some = Double(current.some >= last.some ? current.some - last.some : 0) / elapsedMicroseconds
                let full = Double(current.full >= last.full ? current.full - last.full : 0) / elapsedMicroseconds
                shares[group.path] = (min(some, 1), min(full, 1))
            }
        }
        state.pressureTotals = totals
        return shares
    }

    /// Buckets hold at most one interval's worth (and at least one second's) of bytes.
    static func refillBuckets(_ state: inout ControllerState, _ policy: Policy, _ now: Instant) {
        let window = max(policy.controller.interval.seconds, 1)
        func sized(_ existing: ByteBucket?, _ rate: UInt64) -> ByteBucket {
            let capacity = UInt64(Double(rate) * window)
            var bucket = existing ?? ByteBucket(rate: rate, capacity: capacity)
            if bucket.rate != rate || bucket.capacity != capacity {
                bucket.rate = rate; bucket.capacity = capacity; bucket.tokens = min(bucket.tokens, capacity)
            }
            bucket.refill(at: now)
            return bucket
        }
        state.globalBucket = sized(state.globalBucket, policy.controller.rateLimit)
        var buckets: [String: ByteBucket] = [:]
        for workload in policy.workloads {
            if let rate = workload.rule.rateLimit { buckets[workload.name] = sized(state.workloadBuckets[workload.name], rate) }
        }
        state.workloadBuckets = buckets
        state.hotBucket = policy.controller.hotPages == .written ? sized(state.hotBucket, policy.controller.hotPromotionRate) : nil
    }

    static func allowance(_ state: ControllerState, _ workload: String) -> UInt64 {
        min(state.globalBucket?.tokens ?? 0, state.workloadBuckets[workload]?.tokens ?? .max)
    }

    static func budgetScope(_ state: ControllerState, _ workload: String) -> String {
        (state.globalBucket?.tokens ?? 0) == 0 ? "global rate_limit" : "workload \(workload) rate_limit"
    }

    static func spend(_ state: inout ControllerState, _ workload: String, _ bytes: UInt64) {
        state.globalBucket?.take(bytes)
        state.workloadBuckets[workload]?.take(bytes)
    }
}
