/// The decision: given one snapshot, the policy, the carried state and the time, what to move.
///
/// Pure: no I/O, no clock. `plan` reads as its steps, each a function of its own:
/// 1. Needs (`protectedNeeds`): opt-out workloads with `promote` whose own pages sit on slow
///    nodes need DRAM back.
/// 2. Demand (`demotionDemand`): the larger of the watermark gap (DRAM free below `low` starts
///    reclaiming until free reaches `high`; free is taken one `lookahead` ahead at the rate it
///    is falling), at most `demotion_per_tick` of it in one tick (more if the fall is faster), and
///    the room promotion needs above half of `low`.
/// 3. Candidates and allocation (`demotionCandidates`, `allocateDemotions`): opted-in groups
///    cover the demand in priority order (lower first, then the most DRAM), never below their
///    floor or into what hot promotions hold, never while their pressure guard is tripped, only
///    to slow nodes inside both their cpuset and tierd's own. Protected promotions
///    (`ProtectedPromoter`) take the room there is and the room made; with nothing else to do,
///    opted-in workloads' written slow pages come back (`hotPromotions`). Rate limits cap every
///    action.
/// 4. Schedule: each action's `ScheduleStep` — promotions into DRAM free now, demotions that
///    make room for the rest of them, those promotions, then any demotion the watermark asks for
///    beyond that, which yields to the next tick when it runs long, then the hot pages.
///    Promotions and demotions are two sequences the service may run side by side: a
///    `promoteIntoRoomMade` is paced by the `makeRoom` demotions.
public enum Planner {
    public static func plan(snapshot: HostSnapshot, policy: Policy, state previous: ControllerState,
                            now: Instant) -> (MigrationPlan, ControllerState) {
        var state = previous
        var plan = MigrationPlan()
        let stallShares = measureStall(snapshot, &state, now)
        refillBuckets(&state, policy, now)
        state.lastTick = now
        let context = PlanningContext(snapshot: snapshot, policy: policy, now: now)
        plan.summary = dramPicture(context)
        guard !context.topology.slow.isEmpty else {
            plan.skips.append(PlanSkip(group: .root, workload: Policy.defaultWorkloadName, reason: .noSlowTier))
            state.reclaiming = false
            return (plan, state)
        }
        // 1. Needs: what protected workloads have on slow nodes.
        let needs = protectedNeeds(context, state, &plan.skips)
        plan.summary.promotionNeed = needs.reduce(0) { $0 + $1.bytes }
        // 2. Demand: how much DRAM to free.
        let demand = demotionDemand(context, promotionNeed: plan.summary.promotionNeed, firstTick: previous.lastTick == nil,
                                    summary: &plan.summary, state: &state)
        // 3. Allocation: protected pages into DRAM free now, demotions from the candidates, then
        // protected pages into the room those make, then the hot pages opted-in jobs wrote.
        var promoter = ProtectedPromoter(needs: needs, keepFree: demand.promotionKeepsFree, onTaskCPU: context.settings.moveOnTaskCPU)
        var roomNow = demand.roomNow
        let early = promoter.promote(into: &roomNow, &state)
        let demotions = allocateDemotions(demotionCandidates(context), demand: demand, context, stallShares: stallShares,
                                          keptForPromotion: promoter.keptForPromotion(state), state: &state, plan: &plan)
        var roomMade = demotions.roomMaking.reduce(0) { $0 + $1.bytes }
        let late = promoter.promote(into: &roomMade, &state).map { action in
            var action = action
            action.step = .promoteIntoRoomMade(keepFree: action.keepFreeOnTargets)
            return action
        }
        let hot = plan.summary.promotionNeed == 0 && demand.bytes == 0 && !state.reclaiming
            ? hotPromotions(context, room: plan.summary.dramFree - min(plan.summary.dramFree, plan.summary.lowWatermark),
                            keepFree: plan.summary.lowWatermark, &state, &plan.summary) : []
        // 4. Schedule: promotions into DRAM free now, the demotions that make room for the rest
        // of them, those promotions, any demotion the watermark asks for beyond that, the hot pages.
        plan.actions = early + demotions.roomMaking + late + demotions.afterPromotion + hot
        for need in needs { plan.slowBytesToPromote[need.group.path] = need.bytes }
        promoter.reportUnmet(state, &plan)
        return (plan, state)
    }

    /// What one tick plans from: the snapshot, the policy's settings and each group's workload and
    /// own bytes per node, read once.
    struct PlanningContext {
        let snapshot: HostSnapshot
        let settings: ControllerSettings
        let workloads: [CgroupPath: ResolvedWorkload]
        let own: [CgroupPath: NumaStat]
        let parents: Set<CgroupPath>
        let now: Instant
        var topology: Topology { snapshot.topology }

        init(snapshot: HostSnapshot, policy: Policy, now: Instant) {
            self.snapshot = snapshot
            settings = policy.controller
            workloads = policy.resolve(snapshot.groups.map(\.path))
            own = snapshot.ownNumaStats()
            parents = snapshot.parentGroups()
            self.now = now
        }
    }

    /// DRAM now: its size and free bytes, the reserve's unused part and the watermarks it raises.
    static func dramPicture(_ context: PlanningContext) -> PlanSummary {
        let settings = context.settings, topology = context.topology
        var summary = PlanSummary()
        summary.dramTotal = topology.totalBytes(topology.fast)
        summary.dramFree = topology.freeBytes(topology.fast)
        summary.reserve = settings.dramReserve
        summary.reserveUnused = settings.dramReserve == 0 ? 0
            : settings.dramReserve - min(settings.dramReserve, protectedDramBytes(context.snapshot, context.workloads, context.own))
        summary.lowWatermark = min(summary.dramTotal, baseLowWatermark(context) + summary.reserveUnused)
        summary.highWatermark = min(summary.dramTotal, settings.highWatermark(dramTotal: summary.dramTotal) + summary.reserveUnused)
        summary.reserveMet = summary.reserveUnused == 0 || summary.dramFree >= summary.lowWatermark
        return summary
    }

    static func baseLowWatermark(_ context: PlanningContext) -> UInt64 {
        UInt64(Double(context.topology.totalBytes(context.topology.fast)) * context.settings.dramLowFree)
    }

    /// A protected group's pages on slow nodes, and where they may go.
    struct PromotionNeed {
        let group: CgroupSnapshot
        /// The tasks to move: the group's, or the bound ones a repair takes alone.
        let pids: [Int32]
        let workload: ResolvedWorkload
        let from: NodeSet
        let to: [Int]
        let bytes: UInt64
        let reason: String
    }

    /// Rule 1: opt-out workloads with `promote` whose own pages sit on slow nodes need DRAM back;
    /// the others are skipped with the reason.
    static func protectedNeeds(_ context: PlanningContext, _ state: ControllerState, _ skips: inout [PlanSkip]) -> [PromotionNeed] {
        let topology = context.topology, fast = topology.fast, slow = topology.slow, allowed = context.snapshot.tierdAllowedNodes
        var needs: [PromotionNeed] = []
        for group in context.snapshot.groups {
            guard let workload = context.workloads[group.path], workload.rule.demote == .never,
                  let stat = context.own[group.path] else { continue }
            let slowBytes = stat.bytes(on: slow)
            guard slowBytes > 0 else { continue }
            func skip(_ reason: SkipReason) { skips.append(PlanSkip(group: group.path, workload: workload.name, reason: reason)) }
            guard workload.rule.promote else { skip(.promotionDisabled(slowBytes: slowBytes)); continue }
            guard !group.pids.isEmpty else { skip(.noTasks(bytes: slowBytes)); continue }
            guard !group.cpusetMems.isDisjoint(with: fast) else { skip(.confinedToSlowNodes(cpuset: group.cpusetMems)); continue }
            if let hold = state.stuckOnSlowNodes[group.path], hold.holds(pids: group.pids, bytes: slowBytes, now: context.now) {
                skip(.stuckOnSlowNodes(bytes: slowBytes, retryIn: hold.retryAt - context.now))
                continue
            }
            let targets = fast.intersection(group.cpusetMems).intersection(allowed)
            guard !targets.isEmpty else {
                skip(.noTargetNodes(detail: "DRAM nodes \(fast) ∩ cpuset \(group.cpusetMems) ∩ tierd's own nodes \(allowed) is empty"))
                continue
            }
            let from = slow.intersection(stat.nodes).filter { stat.bytes(on: $0) > 0 }
            needs.append(PromotionNeed(group: group, pids: group.pids, workload: workload, from: NodeSet(from), to: topology.orderedByDistance(targets),
                                       bytes: slowBytes, reason: "protected workload has \(formatBytes(slowBytes)) on slow nodes"))
        }
        let repairs = repairNeeds(context, state, &skips)
        return needs + repairs + boundTaskRepairs(context, state, skipping: Set(repairs.map(\.group.path)), &skips)
    }

    /// Rule 1, repairs of single tasks: in a group whose tasks do not all bind themselves to DRAM
    /// (no shield covers one task), the pages the kernel's reclaim put on a slow node outside a
    /// bound task's own nodes come back, that task's alone, under `mempolicy: respect`. One need
    /// per group, for all its bound tasks with such pages; none for a group repaired whole.
    static func boundTaskRepairs(_ context: PlanningContext, _ state: ControllerState, skipping repaired: Set<CgroupPath>,
                                 _ skips: inout [PlanSkip]) -> [PromotionNeed] {
        guard KernelShield.kernelDemotes(context.snapshot.kernelMovers) else { return [] }
        let topology = context.topology
        var needs: [PromotionNeed] = []
        for group in context.snapshot.groups where !group.boundTasks.isEmpty && !repaired.contains(group.path) {
            guard let workload = context.workloads[group.path], workload.rule.mempolicy == .respect else { continue }
            var pids: [Int32] = [], from = NodeSet.empty, bindings = NodeSet.empty, bytes: UInt64 = 0
            for task in group.boundTasks {
                let usable = group.cpusetMems.intersection(task.nodes)
                let misplaced = topology.slow.filter { !usable.contains($0) && (task.bytesPerNode[$0] ?? 0) > 0 }
                guard !misplaced.isEmpty else { continue }
                pids.append(task.pid)
                from = from.union(NodeSet(misplaced))
                bindings = bindings.union(task.nodes)
                bytes += misplaced.reduce(0) { $0 + (task.bytesPerNode[$1] ?? 0) }
            }
            guard bytes > 0 else { continue }
            let whose = pids.count == 1 ? "pid \(pids[0])" : "pids " + pids.map(String.init).joined(separator: ",")
            let need = repair(group, workload, pids: pids, from: from, bytes: bytes, usable: group.cpusetMems.intersection(bindings),
                              reason: "repair: \(formatBytes(bytes)) of \(whose) on slow node \(from) outside the nodes its mempolicy binds it to (\(bindings))",
                              noTarget: "bound tasks \(pids) have \(formatBytes(bytes)) outside their nodes \(bindings), and no DRAM node of theirs is in cpuset \(group.cpusetMems) and tierd's own",
                              context, state, &skips)
            if let need { needs.append(need) }
        }
        return needs
    }

    /// What both repairs share: a group held back after a fruitless try, or with no DRAM node in
    /// `usable` and tierd's own to go to, is skipped with the reason; otherwise its need.
    static func repair(_ group: CgroupSnapshot, _ workload: ResolvedWorkload, pids: [Int32], from: NodeSet, bytes: UInt64, usable: NodeSet,
                       reason: String, noTarget: @autoclosure () -> String, _ context: PlanningContext, _ state: ControllerState,
                       _ skips: inout [PlanSkip]) -> PromotionNeed? {
        func skip(_ reason: SkipReason) { skips.append(PlanSkip(group: group.path, workload: workload.name, reason: reason)) }
        if let hold = state.stuckOnSlowNodes[group.path], hold.holds(pids: pids, bytes: bytes, now: context.now) {
            skip(.stuckOnSlowNodes(bytes: bytes, retryIn: hold.retryAt - context.now))
            return nil
        }
        let targets = context.topology.fast.intersection(usable).intersection(context.snapshot.tierdAllowedNodes)
        guard !targets.isEmpty else { skip(.noTargetNodes(detail: noTarget())); return nil }
        return PromotionNeed(group: group, pids: pids, workload: workload, from: from, to: context.topology.orderedByDistance(targets),
                             bytes: bytes, reason: reason)
    }

    /// Rule 1, repairs: a managed group's pages on slow nodes it may not use — outside its
    /// `cpuset.mems.effective`, or (under `mempolicy: respect`) outside the nodes all its tasks
    /// bind themselves to — come back to the DRAM it may use. tierd never puts them there, nor
    /// does the kernel otherwise (cgroup v2 moves a group's memory into its cpuset when the cpuset
    /// changes or a task joins): its reclaim does while it demotes, which before 6.16 ignores the
    /// cpuset and the mempolicy. So repairs are planned while it demotes, when every group is
    /// read afresh (`GroupCarrying`). Opt-out workloads with `promote` are left to their own need,
    /// which takes all their slow pages.
    static func repairNeeds(_ context: PlanningContext, _ state: ControllerState, _ skips: inout [PlanSkip]) -> [PromotionNeed] {
        guard KernelShield.kernelDemotes(context.snapshot.kernelMovers) else { return [] }
        let slow = context.topology.slow
        var needs: [PromotionNeed] = []
        for group in context.snapshot.groups {
            guard let workload = context.workloads[group.path], workload.matchedAt != nil || workload.rule.demote == .allowed,
                  !(workload.rule.demote == .never && workload.rule.promote), let stat = context.own[group.path] else { continue }
            var usable = group.cpusetMems, limit = "cpuset.mems.effective \(group.cpusetMems)"
            if workload.rule.mempolicy == .respect, let bound = group.tasksBoundTo {
                usable = usable.intersection(bound)
                limit = "the nodes its tasks' mempolicies bind them to (\(bound)) within \(limit)"
            }
            let misplaced = NodeSet(slow.filter { !usable.contains($0) && stat.bytes(on: $0) > 0 })
            let bytes = stat.bytes(on: misplaced)
            guard bytes > 0, !group.pids.isEmpty else { continue }
            let need = repair(group, workload, pids: group.pids, from: misplaced, bytes: bytes, usable: usable,
                              reason: "repair: \(formatBytes(bytes)) on slow node \(misplaced) outside \(limit)",
                              noTarget: "\(formatBytes(bytes)) sit outside \(limit), which holds no DRAM node tierd may use",
                              context, state, &skips)
            if let need { needs.append(need) }
        }
        return needs
    }

    /// How much DRAM a tick frees, and the room promotions have without it.
    struct Demand {
        /// Bytes to demote this tick.
        let bytes: UInt64
        /// The part of `bytes` that makes room for protected pages.
        let promotionShortfall: UInt64
        /// What the fall in free DRAM takes in one lookahead.
        let anticipated: UInt64
        /// Free DRAM one lookahead ahead, as the watermarks were checked against.
        let projectedFree: UInt64
        /// What protected promotions leave free, and the room they have above it now.
        let promotionKeepsFree: UInt64
        let roomNow: UInt64
    }

    /// Rule 2: the larger of the watermark gap (at most `demotion_per_tick`, more if the fall is
    /// faster) and the room protected pages need above half of `low`.
    ///
    /// The watermarks are checked against free DRAM one lookahead ahead at the rate it is falling:
    /// an allocation that would cross `low` before the next look starts the demotion now, and the
    /// demotion covers what it takes meanwhile. While part of the reserve is unused, it is the room
    /// a fall eats into first — most likely a protected workload growing into it, which the
    /// reserve is for: the watermarks, raised by that part, catch what goes beyond it, and the
    /// lookahead applies once it is used up. (Anticipating the fall as well made room twice: in the
    /// lab, 92 MiB more demoted as the protected job filled the last of its reserve.)
    static func demotionDemand(_ context: PlanningContext, promotionNeed: UInt64, firstTick: Bool,
                               summary: inout PlanSummary, state: inout ControllerState) -> Demand {
        let settings = context.settings, dramFree = summary.dramFree
        let low = summary.lowWatermark, high = summary.highWatermark
        let anticipated = settings.anticipatedFall(rate: context.snapshot.dramFallRate)
        let uncovered = summary.reserveUnused > 0 ? 0 : anticipated
        let projectedFree = dramFree - min(dramFree, uncovered)
        summary.dramFallRate = context.snapshot.dramFallRate
        summary.projectedDramFree = projectedFree
        // A controller without history (its first tick, as after a restart) cannot know whether a
        // reclaim was under way: below `high` it finishes one. A tierd killed mid-demotion and
        // restarted with free DRAM between the watermarks otherwise left the work undone.
        if projectedFree < low || (firstTick && projectedFree < high) { state.reclaiming = true }
        else if projectedFree >= high { state.reclaiming = false }
        let watermarkDemand = state.reclaiming ? high - min(high, projectedFree) : 0
        // A protected workload's pages may use DRAM down to half the low watermark: the band
        // between them is demotion's hysteresis, and protected memory outranks it. With less
        // free already, promotion keeps what is free: it never adds to the shortage, and the
        // reserve is the watermark's demotion to restore, after the protected pages are back
        // (restoring it first made the protected job wait for up to a reserve's worth of moves).
        // The reserve is for protected pages: their promotion may use it.
        let promotionKeepsFree = min(baseLowWatermark(context) / 2, dramFree)
        let roomNow = dramFree - promotionKeepsFree
        let promotionShortfall = promotionNeed > roomNow ? promotionNeed - roomNow : 0
        // The watermark's demotion takes at most `demotionPerTick` a tick: the loop re-plans right
        // after a busy tick, so a protected job that appears mid-reclaim waits for one batch, not
        // the whole reclaim. Room for protected pages is not cut into batches (the rate limits
        // still apply): its promotion follows the demotion within the tick, not a tick later.
        // A fall faster than that batch per lookahead raises the batch to keep pace with it.
        let bytes = max(min(watermarkDemand, max(settings.demotionPerTick, anticipated)), promotionShortfall)
        summary.reclaiming = state.reclaiming
        summary.demotionDemand = bytes
        return Demand(bytes: bytes, promotionShortfall: promotionShortfall, anticipated: anticipated, projectedFree: projectedFree,
                      promotionKeepsFree: promotionKeepsFree, roomNow: roomNow)
    }

    /// Protected pages into the room given, each need in turn, within the rate limits; what is
    /// left of each need after the tick is reported as a skip.
    struct ProtectedPromoter {
        let needs: [PromotionNeed]
        let keepFree: UInt64
        let onTaskCPU: Bool
        var remaining: [UInt64]
        var rateLimited = Set<Int>()

        init(needs: [PromotionNeed], keepFree: UInt64, onTaskCPU: Bool) {
            self.needs = needs; self.keepFree = keepFree; self.onTaskCPU = onTaskCPU
            remaining = needs.map(\.bytes)
        }

        mutating func promote(into room: inout UInt64, _ state: inout ControllerState) -> [MigrationAction] {
            var actions: [MigrationAction] = []
            for (index, need) in needs.enumerated() where remaining[index] > 0 && room > 0 {
                let budget = allowance(state, need.workload.name)
                guard budget > 0 else { rateLimited.insert(index); continue }
                let take = min(remaining[index], room, budget)
                spend(&state, need.workload.name, take)
                remaining[index] -= take
                room -= take
                var action = MigrationAction(
                    group: need.group.path, workload: need.workload.name, direction: .promote, pids: need.pids,
                    from: need.from, to: need.to, bytes: take, mempolicy: need.workload.rule.mempolicy,
                    reason: need.reason)
                action.step = .promoteIntoFreeRoom(keepFree: keepFree)
                action.onTaskCPU = onTaskCPU
                actions.append(action)
            }
            return actions
        }

        /// What a workload's own rate limit keeps for its unmet promotions (its repairs) from its
        /// own demotions, which make their room: half the bucket at most, so that neither starves
        /// the other tick after tick.
        func keptForPromotion(_ state: ControllerState) -> [String: UInt64] {
            var kept: [String: UInt64] = [:]
            for (index, need) in needs.enumerated() where remaining[index] > 0 {
                guard let bucket = state.workloadBuckets[need.workload.name] else { continue }
                kept[need.workload.name] = min(kept[need.workload.name, default: 0] + remaining[index], bucket.tokens / 2)
            }
            return kept
        }

        func reportUnmet(_ state: ControllerState, _ plan: inout MigrationPlan) {
            for (index, need) in needs.enumerated() where remaining[index] > 0 {
                let limited = rateLimited.contains(index)
                let reason: SkipReason = limited ? .rateLimited(scope: budgetScope(state, need.workload.name))
                    : .noRoomInDram(neededBytes: remaining[index])
                if limited { plan.summary.deferredBytes += remaining[index] }
                plan.skips.append(PlanSkip(group: need.group.path, workload: need.workload.name, reason: reason))
            }
        }
    }

    /// An opted-in group with bytes in DRAM, a possible source of demotion.
    typealias DemotionCandidate = (group: CgroupSnapshot, workload: ResolvedWorkload, fastBytes: UInt64)

    /// Rule 3's order: lower priority first, then the most DRAM.
    static func demotionCandidates(_ context: PlanningContext) -> [DemotionCandidate] {
        let fast = context.topology.fast
        var candidates: [DemotionCandidate] = []
        for group in context.snapshot.groups {
            guard let workload = context.workloads[group.path], workload.rule.demote == .allowed,
                  let fastBytes = context.own[group.path]?.bytes(on: fast), fastBytes > 0 else { continue }
            candidates.append((group, workload, fastBytes))
        }
        candidates.sort {
            ($0.workload.rule.priority, UInt64.max - $0.fastBytes, $0.group.path.relative)
                < ($1.workload.rule.priority, UInt64.max - $1.fastBytes, $1.group.path.relative)
        }
        return candidates
    }

    /// The demotions of one tick: the part that makes room for protected pages, run before their
    /// promotion, and the watermark's extra, which waits behind it.
    struct DemotionAllocation {
        var roomMaking: [MigrationAction] = []
        var afterPromotion: [MigrationAction] = []
    }

    /// Rule 3: candidates cover the demand in order, never below their floor or into what hot
    /// promotions hold, never while their pressure guard is tripped, only to slow nodes inside both
    /// their cpuset and tierd's own, and no slow node past the kernel's high watermark (below it
    /// kswapd reclaims there, and a move into a full node fails page by page after the kernel
    /// tried to make room).
    static func allocateDemotions(_ candidates: [DemotionCandidate], demand: Demand, _ context: PlanningContext,
                                  stallShares: [CgroupPath: (some: Double, full: Double)], keptForPromotion: [String: UInt64],
                                  state: inout ControllerState, plan: inout MigrationPlan) -> DemotionAllocation {
        var allocation = DemotionAllocation()
        guard demand.bytes > 0 else { return allocation }
        let topology = context.topology, settings = context.settings
        var slowRoom: [Int: UInt64] = [:]
        for id in topology.slow { slowRoom[id] = topology.node(id)?.roomAboveHighWatermark ?? 0 }
        var demoted: UInt64 = 0
        for (group, workload, fastBytes) in candidates {
            func skip(_ reason: SkipReason) { plan.skips.append(PlanSkip(group: group.path, workload: workload.name, reason: reason)) }
            let remaining = demand.bytes - min(demand.bytes, demoted)
            if remaining == 0 { break }
            let rule = workload.rule
            let ordered: [Int]
            switch demotionTargets(group, workload, fastBytes, context, stallShares: stallShares, state: state) {
            case .failure(let reason): skip(reason); continue
            case .success(let targets): ordered = targets
            }
            let held = state.heldHotBytes(group.path, now: context.now)
            guard fastBytes > rule.dramFloor + held else { skip(.holdingHotPages(bytes: held, hold: settings.hotHold)); continue }
            let room = ordered.reduce(0) { $0 + slowRoom[$1, default: 0] }
            guard room > 0 else {
                let targets = NodeSet(ordered)
                skip(.slowNodesFull(nodes: targets, freeBytes: topology.freeBytes(targets), reserve: topology.reserveBytes(targets)))
                continue
            }
            let wanted = min(fastBytes - rule.dramFloor - held, remaining, room)
            let budget = allowance(state, workload.name, leaving: keptForPromotion[workload.name] ?? 0)
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
            let stat = context.own[group.path] ?? NumaStat()
            let forRoom = min(bytes, demand.promotionShortfall - min(demand.promotionShortfall, demoted - bytes))
            let mechanism = demotionMechanism(rule: rule, workload: workload.name, group: group, snapshot: context.snapshot,
                                              hasChildren: context.parents.contains(group.path), state: state).mechanism
            func demotion(_ bytes: UInt64, _ reason: String) -> MigrationAction {
                var action = MigrationAction(group: group.path, workload: workload.name, direction: .demote, pids: group.pids,
                                             from: NodeSet(topology.fast.filter { stat.bytes(on: $0) > 0 }), to: ordered,
                                             bytes: bytes, mempolicy: rule.mempolicy, reason: reason)
                action.onTaskCPU = settings.moveOnTaskCPU
                action.mechanism = mechanism
                return action
            }
            if forRoom > 0 {
                var action = demotion(forRoom, "making room for \(formatBytes(plan.summary.promotionNeed)) of protected memory on slow nodes")
                action.step = .makeRoom
                allocation.roomMaking.append(action)
            }
            if bytes > forRoom {
                let dramFree = plan.summary.dramFree, high = plan.summary.highWatermark
                let why = demand.anticipated == 0 ? "DRAM free \(formatBytes(dramFree)) below target \(formatBytes(high))"
                    : "DRAM free \(formatBytes(dramFree)) falling at \(formatBytes(context.snapshot.dramFallRate))/s, \(formatBytes(demand.projectedFree)) in \(settings.dramLookahead.seconds) s, below target \(formatBytes(high))"
                var action = demotion(bytes - forRoom, why)
                action.step = .watermarkDemotion
                allocation.afterPromotion.append(action)
            }
        }
        return allocation
    }

    /// Where a candidate may demote to, nearest first, or why it may not now: no tasks, held back
    /// after a fruitless try, its pressure guard tripped, no slow node in its cpuset and tierd's own,
    /// at its DRAM floor.
    static func demotionTargets(_ group: CgroupSnapshot, _ workload: ResolvedWorkload, _ fastBytes: UInt64, _ context: PlanningContext,
                                stallShares: [CgroupPath: (some: Double, full: Double)], state: ControllerState) -> Result<[Int], SkipReason> {
        let rule = workload.rule, slow = context.topology.slow, allowed = context.snapshot.tierdAllowedNodes
        guard !group.pids.isEmpty else { return .failure(.noTasks(bytes: fastBytes)) }
        if let hold = state.blockedSources[group.path], hold.holds(pids: group.pids, bytes: fastBytes, now: context.now) {
            return .failure(.demotionMovedNothing(retryIn: hold.retryAt - context.now))
        }
        if let pressureGuard = rule.pressureGuard {
            let line = pressureGuard.kind == .some ? group.pressure.some : group.pressure.full
            let recent = stallShares[group.path].map { pressureGuard.kind == .some ? $0.some : $0.full } ?? 0
            let observed = max(line.avg10, recent)
            if observed >= pressureGuard.threshold {
                return .failure(.pressureGuard(kind: pressureGuard.kind, observed: observed, threshold: pressureGuard.threshold))
            }
        }
        let targets = slow.intersection(group.cpusetMems).intersection(allowed)
        guard !targets.isEmpty else {
            let which = slow.intersection(group.cpusetMems).isEmpty
                ? "slow nodes \(slow) ∩ cpuset \(group.cpusetMems) is empty"
                : "slow nodes in cpuset \(slow.intersection(group.cpusetMems)) ∩ tierd's own nodes \(allowed) is empty"
            return .failure(.noTargetNodes(detail: which))
        }
        if rule.mempolicy == .respect, let bound = group.tasksBoundTo, bound.isDisjoint(with: targets) {
            return .failure(.noTargetNodes(detail: "every task's mempolicy binds it to \(bound), none of the slow nodes \(targets)"))
        }
        guard fastBytes > rule.dramFloor else { return .failure(.atDramFloor(fastBytes: fastBytes, floor: rule.dramFloor)) }
        return .success(context.topology.orderedByDistance(targets))
    }

    /// Promotions of the pages opted-in groups wrote on the slow tier since tierd last looked
    /// (`controller.hot_pages: written`): into `room` (DRAM above the low watermark), at most
    /// `controller.hot_promotion_rate`, the most important workloads (highest priority) first.
    /// Each asks for all the room its budget allows: the migrator moves only written pages, and
    /// what it does not move goes back to the rate limits.
    /// Looks come every `controller.hot_look_interval`: the plan says when the next is due.
    static func hotPromotions(_ context: PlanningContext, room: UInt64, keepFree: UInt64, _ state: inout ControllerState,
                              _ summary: inout PlanSummary) -> [MigrationAction] {
        let snapshot = context.snapshot, workloads = context.workloads, own = context.own
        guard snapshot.tracksWrittenPages, room > 0, state.hotBucket != nil else { return [] }
        let topology = snapshot.topology
        var room = room
        var candidates: [(group: CgroupSnapshot, workload: ResolvedWorkload, slowBytes: UInt64)] = []
        for group in snapshot.groups {
            guard let workload = workloads[group.path], workload.rule.demote == .allowed, !group.pids.isEmpty,
                  let slowBytes = own[group.path]?.bytes(on: topology.slow), slowBytes > 0 else { continue }
            candidates.append((group, workload, slowBytes))
        }
        guard !candidates.isEmpty else { return [] }
        let every = context.settings.hotLookInterval
        if let last = state.lastHotLook, context.now - last < every {
            summary.nextHotLook = every - (context.now - last)
            return []
        }
        state.lastHotLook = context.now
        summary.nextHotLook = every
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
            action.step = .promoteWrittenPages(keepFree: keepFree)
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

    static func allowance(_ state: ControllerState, _ workload: String, leaving kept: UInt64 = 0) -> UInt64 {
        let own = state.workloadBuckets[workload].map { $0.tokens - min($0.tokens, kept) } ?? .max
        return min(state.globalBucket?.tokens ?? 0, own)
    }

    static func budgetScope(_ state: ControllerState, _ workload: String) -> String {
        (state.globalBucket?.tokens ?? 0) == 0 ? "global rate_limit" : "workload \(workload) rate_limit"
    }

    static func spend(_ state: inout ControllerState, _ workload: String, _ bytes: UInt64) {
        state.globalBucket?.take(bytes)
        state.workloadBuckets[workload]?.take(bytes)
    }
}
