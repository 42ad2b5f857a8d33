import Testing
import TierCore
import TierTestSupport

/// The planner's safety invariants over generated hosts: random node sets and tiers, random
/// cgroup trees with random cpusets, tasks, pressures and bytes per node, random policies, and a
/// few ticks of carried state. Seeded: a failure prints the seed and case that replay it
/// (`TIERD_PROPERTY_SEED=… TIERD_PROPERTY_CASES=…`).
struct PlannerPropertyTests {
    static let run = PropertyRun(defaultSeed: 0x7E1E_D001, defaultCases: 3000)

    @Test func everyGeneratedPlanKeepsTheInvariants() {
        var failures: [String] = []
        var actionsSeen = 0, demotionsSeen = 0, promotionsSeen = 0
        for index in 0..<Self.run.cases {
            var random = Self.run.generator(forCase: index)
            let host = GeneratedHost(&random)
            var checker = PlanInvariants(host: host)
            var state = ControllerState()
            var now = Instant(.seconds(100))
            for tick in 0..<Int.random(in: 1...4, using: &random) {
                let before = state
                let (plan, after) = Planner.plan(snapshot: host.snapshot, policy: host.policy, state: state, now: now)
                let moved = plan.actions.map { simulatedMove(of: $0, &random) }
                for violation in checker.check(plan, moved: moved, stateBefore: before, now: now) {
                    failures.append("seed \(Self.run.seed) case \(index) tick \(tick): \(violation)")
                }
                actionsSeen += plan.actions.count
                demotionsSeen += plan.actions.filter { $0.direction == .demote }.count
                promotionsSeen += plan.actions.filter { $0.direction == .promote }.count
                state = after
                learn(&state, plan: plan, moved: moved, now: now, &random)
                now = Instant(now.sinceBoot + .milliseconds(Int.random(in: 0...5000, using: &random)))
            }
        }
        let violations = failures.count
        #expect(violations == 0, "first: \(failures.prefix(5).joined(separator: "\n"))")
        // The generator must reach the cases the invariants are about, or the test proves nothing.
        #expect(demotionsSeen > Self.run.cases / 4 && promotionsSeen > Self.run.cases / 20,
                "only \(demotionsSeen) demotions and \(promotionsSeen) promotions in \(actionsSeen) actions")
    }

    /// What `GroupCarrying` rests on: after a quiet tick, with free DRAM at or above high, a plan
    /// made with the opted-in groups' old readings that does not ask for a full read (no demotion
    /// demand) is the plan the host as it is now gives. Every group changes between the two reads
    /// (tasks, bytes, pressure; opt-out groups may gain slow-node bytes and so need room); a group
    /// carried with its numa_stat read keeps its new numa_stat, as the collector does.
    @Test func aPlanFromCarriedReadingsIsThePlanFromTheHostNow() {
        var failures: [String] = []
        var exercised = 0
        for index in 0..<Self.run.cases {
            var random = Self.run.generator(forCase: index)
            let host = GeneratedHost(&random)
            let first = Instant(.seconds(100)), second = Instant(.seconds(110))
            // The collector never lists the root group (tierd does not act on it); the generator does.
            var last = host.snapshot
            last.groups.removeAll { $0.path.isRoot }
            let (previous, state) = Planner.plan(snapshot: last, policy: host.policy, state: ControllerState(), now: first)
            guard GroupCarrying.mayCarry(previous: previous, sinceFullRead: second - first, topology: last.topology,
                                         dramFallRate: 0, settings: host.policy.controller) else { continue }
            let carried = GroupCarrying.carried(from: last, policy: host.policy)
            var now = last
            for position in now.groups.indices where carried[now.groups[position].path] != nil || random.chance(0.3) {
                var group = now.groups[position]
                group.pids = (0..<Int.random(in: 0...3, using: &random)).map { _ in Int32.random(in: 2...99_999, using: &random) }
                for node in 0..<now.topology.nodes.count {
                    group.numaStat.set(anon: UInt64.random(in: 0...(512 << 20), using: &random) / 4096 * 4096, node: node)
                }
                group.pressure = .zero
                group.pressure.some.avg10 = Double.random(in: 0...100, using: &random)
                now.groups[position] = group
            }
            var fromCarried = now
            fromCarried.carried = Set(carried.keys)
            for position in fromCarried.groups.indices {
                guard let kept = carried[fromCarried.groups[position].path] else { continue }
                let numaStat = fromCarried.groups[position].numaStat
                fromCarried.groups[position] = kept.entry
                if kept.readsNumaStat { fromCarried.groups[position].numaStat = numaStat }
            }
            let planCarried = Planner.plan(snapshot: fromCarried, policy: host.policy, state: state, now: second).0
            guard !GroupCarrying.needsFullRead(planCarried, movers: nil) else { continue }
            exercised += 1
            let planNow = Planner.plan(snapshot: now, policy: host.policy, state: state, now: second).0
            if planCarried.actions != planNow.actions || planCarried.skips != planNow.skips || planCarried.summary != planNow.summary {
                failures.append("seed \(Self.run.seed) case \(index): \(planCarried.actions.count) vs \(planNow.actions.count) actions, \(planCarried.skips.count) vs \(planNow.skips.count) skips")
            }
        }
        #expect(failures.isEmpty, "first: \(failures.prefix(5).joined(separator: "\n"))")
        #expect(exercised > Self.run.cases / 20, "only \(exercised) cases could carry")
    }

    /// What the kernel let through: all of it, nothing (a refusal), or a part.
    func simulatedMove(of action: MigrationAction, _ random: inout SeededGenerator) -> UInt64 {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: 0
        case 1: UInt64.random(in: 0...action.bytes, using: &random)
        default: action.bytes
        }
    }

    /// Carries what the moves taught into the next tick, as the controller does: tokens settled
    /// on bytes moved, groups that moved nothing held back.
    func learn(_ state: inout ControllerState, plan: MigrationPlan, moved: [UInt64], now: Instant, _ random: inout SeededGenerator) {
        for (action, bytes) in zip(plan.actions, moved) {
            state.settle(planned: action.bytes, moved: bytes, workload: action.workload)
            let targetsFull = random.chance(0.2)
            switch action.direction {
            case .demote: state.noteDemotion(of: action.group, pids: action.pids, movedBytes: bytes, targetsFull: targetsFull, now: now)
            case .promote:
                state.notePromotion(of: action.group, pids: action.pids, slowBytes: plan.slowBytesToPromote[action.group] ?? 0,
                                    movedBytes: bytes, targetsFull: targetsFull, now: now)
            }
        }
    }

    /// The checker itself must catch each kind of wrong plan, or a pass above means nothing.
    @Test(arguments: PlanMutation.allCases)
    func theCheckerRejectsAPlanBrokenOnPurpose(_ mutation: PlanMutation) throws {
        for index in 0..<Self.run.cases {
            var random = Self.run.generator(forCase: index)
            let host = GeneratedHost(&random)
            let now = Instant(.seconds(100))
            let (plan, _) = Planner.plan(snapshot: host.snapshot, policy: host.policy, state: ControllerState(), now: now)
            guard let broken = mutation.apply(to: plan, host: host) else { continue }
            var checker = PlanInvariants(host: host)
            #expect(checker.check(plan, moved: plan.actions.map(\.bytes), stateBefore: ControllerState(), now: now).isEmpty)
            var fresh = PlanInvariants(host: host)
            #expect(!fresh.check(broken, moved: broken.actions.map(\.bytes), stateBefore: ControllerState(), now: now).isEmpty,
                    "\(mutation) went unnoticed")
            return
        }
        Issue.record("no generated plan could be broken by \(mutation)")
    }
}

/// Ways to break a correct plan, one invariant each.
enum PlanMutation: String, CaseIterable, CustomStringConvertible {
    case demoteAnOptOutGroup, targetOutsideTheCpuset, targetOutsideTierdsNodes, overTheBudget, aForeignTask, promoteFromDram

    var description: String { rawValue }

    func apply(to plan: MigrationPlan, host: GeneratedHost) -> MigrationPlan? {
        var plan = plan
        let own = host.snapshot.ownNumaStats()
        let workloads = host.policy.resolve(host.snapshot.groups.map(\.path))
        switch self {
        case .demoteAnOptOutGroup:
            guard let template = plan.actions.first(where: { $0.direction == .demote }),
                  let group = host.snapshot.groups.first(where: {
                      workloads[$0.path]?.rule.demote == .never && !$0.pids.isEmpty && (own[$0.path]?.bytes(on: host.snapshot.topology.fast) ?? 0) > 0
                  }) else { return nil }
            var action = template
            action.group = group.path; action.workload = workloads[group.path]!.name; action.pids = group.pids; action.bytes = 4096
            plan.actions.append(action)
        case .targetOutsideTheCpuset:
            guard let index = plan.actions.firstIndex(where: { action in
                action.direction == .demote
                    && host.snapshot.topology.slow.subtracting(host.group(action.group).cpusetMems).contains { host.snapshot.tierdAllowedNodes.contains($0) }
            }) else { return nil }
            let group = host.group(plan.actions[index].group)
            let outside = host.snapshot.topology.slow.subtracting(group.cpusetMems).intersection(host.snapshot.tierdAllowedNodes)
            plan.actions[index].to.append(outside.sorted[0])
        case .targetOutsideTierdsNodes:
            guard let index = plan.actions.firstIndex(where: { action in
                action.direction == .demote
                    && host.snapshot.topology.slow.intersection(host.group(action.group).cpusetMems).contains { !host.snapshot.tierdAllowedNodes.contains($0) }
            }) else { return nil }
            let group = host.group(plan.actions[index].group)
            let outside = host.snapshot.topology.slow.intersection(group.cpusetMems).subtracting(host.snapshot.tierdAllowedNodes)
            plan.actions[index].to.append(outside.sorted[0])
        case .overTheBudget:
            guard let index = plan.actions.firstIndex(where: { _ in true }) else { return nil }
            plan.actions[index].bytes += host.policy.controller.rateLimit * 10 + (1 << 40)
        case .aForeignTask:
            guard let index = plan.actions.firstIndex(where: { _ in true }) else { return nil }
            plan.actions[index].pids.append(999_999)
        case .promoteFromDram:
            guard let index = plan.actions.firstIndex(where: { $0.direction == .promote }) else { return nil }
            plan.actions[index].from = plan.actions[index].from.union(host.snapshot.topology.fast)
        }
        return plan
    }
}

/// A random host and policy. Node ids, tiers, sizes and free memory, tierd's own cpuset, a cgroup
/// tree whose cpusets narrow down the tree as the kernel's effective masks do, and workloads
/// matching parts of it by exact path and by glob.
struct GeneratedHost {
    let snapshot: HostSnapshot
    let policy: Policy

    func group(_ path: CgroupPath) -> CgroupSnapshot { snapshot.groups.first { $0.path == path }! }

    init(_ random: inout SeededGenerator) {
        let mib: UInt64 = 1 << 20
        let nodeCount = Int.random(in: 1...5, using: &random)
        var fastIDs = Set(random.subset(of: Array(0..<nodeCount), keep: 0.4))
        if fastIDs.isEmpty { fastIDs.insert(Int.random(in: 0..<nodeCount, using: &random)) }
        var nodes: [MemoryNode] = []
        for id in 0..<nodeCount {
            let fast = fastIDs.contains(id)
            let total = UInt64.random(in: 64...(fast ? 4096 : 8192), using: &random) * mib
            let free = random.chance(0.15) ? 0 : UInt64.random(in: 0...total, using: &random)
            var distances: [Int: Int] = [:]
            for other in 0..<nodeCount { distances[other] = other == id ? 10 : Int.random(in: 12...40, using: &random) }
            let high = random.chance(0.2) ? nil : UInt64.random(in: 0...(total / 8), using: &random) / 4096 * 4096
            let perCPU = UInt64.random(in: 0...(total / 64), using: &random) / 4096 * 4096
            nodes.append(MemoryNode(id: id, hasCPU: fast, totalBytes: total, freeBytes: free, distances: distances,
                                    highWatermark: high, perCPUListsHigh: perCPU))
        }
        let topology = Topology.classify(nodes, selection: .auto)
        let all = Array(0..<nodeCount)
        var allowed = NodeSet(random.chance(0.7) ? all : random.subset(of: all, keep: 0.6))
        if allowed.isEmpty { allowed = NodeSet(all) }

        // The tree: each new group hangs under the root or an earlier group.
        var paths: [CgroupPath] = []
        var cpusets: [CgroupPath: NodeSet] = [.root: NodeSet(all)]
        for index in 0..<Int.random(in: 1...24, using: &random) {
            let parent = paths.isEmpty || random.chance(0.3) ? CgroupPath.root : paths.randomElement(using: &random)!
            let path = parent.appending("g\(index)")
            paths.append(path)
            let narrowed = NodeSet(random.subset(of: cpusets[parent]!.sorted, keep: 0.7))
            cpusets[path] = random.chance(0.5) || narrowed.isEmpty ? cpusets[parent]! : narrowed
        }
        var ownBytes: [CgroupPath: [Int: UInt64]] = [:]
        for path in paths {
            var bytes: [Int: UInt64] = [:]
            for node in cpusets[path]!.sorted where random.chance(0.6) {
                bytes[node] = UInt64.random(in: 0...1024, using: &random) * mib + UInt64.random(in: 0..<mib, using: &random) / 4096 * 4096
            }
            ownBytes[path] = bytes
        }
        var nextPid: Int32 = 1000
        var groups: [CgroupSnapshot] = [CgroupSnapshot(path: .root, pids: [], numaStat: NumaStat(), cpusetMems: NodeSet(all))]
        for path in paths {
            var total = ownBytes[path]!
            for other in paths where other != path && other.relative.hasPrefix(path.relative + "/") {
                for (node, bytes) in ownBytes[other]! { total[node, default: 0] += bytes }
            }
            let pids: [Int32] = (0..<Int.random(in: 0...3, using: &random)).map { _ in nextPid += 1; return nextPid }
            func line() -> Pressure.Line {
                Pressure.Line(avg10: random.chance(0.5) ? 0 : Double.random(in: 0...100, using: &random),
                              avg60: 0, totalMicroseconds: UInt64.random(in: 0...10_000_000, using: &random))
            }
            groups.append(CgroupSnapshot(path: path, pids: pids, numaStat: NumaStat(anon: total),
                                         pressure: Pressure(some: line(), full: line()), cpusetMems: cpusets[path]!))
        }
        var snapshot = HostSnapshot(topology: topology, groups: groups, tierdAllowedNodes: allowed)
        snapshot.dramFallRate = random.chance(0.3) ? UInt64.random(in: 0...512, using: &random) * mib : 0

        var workloads: [WorkloadPolicy] = []
        for index in 0..<Int.random(in: 0...5, using: &random) {
            let anchor = paths.randomElement(using: &random)!
            let glob = random.chance(0.5) ? anchor.relative : (random.chance(0.5) ? anchor.relative + "/**" : "*")
            let optIn = random.chance(0.6)
            let rule = WorkloadRule(
                demote: optIn ? .allowed : .never,
                priority: Int.random(in: -5...20, using: &random),
                dramFloor: random.chance(0.3) ? UInt64.random(in: 0...512, using: &random) * mib : 0,
                pressureGuard: random.chance(0.3) ? PressureGuard(kind: random.chance(0.5) ? .some : .full,
                                                                   threshold: Double.random(in: 1...80, using: &random)) : nil,
                mempolicy: random.chance(0.5) ? .respect : .override,
                promote: !optIn && random.chance(0.8),
                rateLimit: random.chance(0.3) ? UInt64.random(in: 1...1024, using: &random) * mib : nil)
            workloads.append(WorkloadPolicy(name: "w\(index)", matches: [CgroupGlob(glob)], rule: rule))
        }
        let low = Double.random(in: 0.01...0.3, using: &random)
        let settings = ControllerSettings(
            interval: .milliseconds(Int.random(in: 200...5000, using: &random)),
            dramLowFree: low, dramHighFree: min(0.9, low + Double.random(in: 0.01...0.4, using: &random)),
            rateLimit: UInt64.random(in: 1...8192, using: &random) * mib,
            demotionPerTick: UInt64.random(in: 1...2048, using: &random) * mib)
        let defaultRule = random.chance(0.3) ? WorkloadRule(demote: .allowed) : .observeOnly
        self.snapshot = snapshot
        policy = Policy(controller: settings, workloads: workloads, defaultRule: defaultRule)
    }
}

/// What no plan may do, checked against the host it was made for. Budgets are checked over the
/// ticks of one run: no more bytes than the buckets' capacity plus their rate over the time passed.
struct PlanInvariants {
    let host: GeneratedHost
    private var first: Instant?
    private var movedTotal: UInt64 = 0
    private var movedPerWorkload: [String: UInt64] = [:]

    init(host: GeneratedHost) { self.host = host }

    /// `moved`: what each action moved, in plan order.
    mutating func check(_ plan: MigrationPlan, moved: [UInt64], stateBefore: ControllerState, now: Instant) -> [String] {
        let snapshot = host.snapshot, policy = host.policy
        let fast = snapshot.topology.fast, slow = snapshot.topology.slow
        let workloads = policy.resolve(snapshot.groups.map(\.path))
        let own = snapshot.ownNumaStats()
        let groups = Dictionary(uniqueKeysWithValues: snapshot.groups.map { ($0.path, $0) })
        var violations: [String] = []
        func fail(_ message: String) { violations.append(message) }

        if slow.isEmpty, !plan.actions.isEmpty { fail("actions planned with no slow tier") }
        var demotedPerGroup: [CgroupPath: UInt64] = [:]
        for action in plan.actions {
            guard let group = groups[action.group], let workload = workloads[action.group] else {
                fail("\(action.group) is not a group of the snapshot"); continue
            }
            if action.workload != workload.name { fail("\(action.group) planned as \(action.workload), resolves to \(workload.name)") }
            if action.pids.isEmpty || Set(action.pids) != Set(group.pids) {
                fail("\(action.group): pids \(action.pids) are not the group's \(group.pids)")
            }
            if action.bytes == 0 { fail("\(action.group): an action of 0 bytes") }
            if action.to.isEmpty || Set(action.to).count != action.to.count { fail("\(action.group): targets \(action.to)") }
            switch action.direction {
            case .demote:
                if workload.rule.demote != .allowed { fail("\(action.group): opt-out workload \(workload.name) demoted") }
                let allowedTargets = slow.intersection(group.cpusetMems).intersection(snapshot.tierdAllowedNodes)
                if let bad = action.to.first(where: { !allowedTargets.contains($0) }) {
                    fail("\(action.group): demotion to node \(bad) outside slow ∩ cpuset ∩ tierd's nodes \(allowedTargets)")
                }
                if !action.from.isSubset(of: fast) { fail("\(action.group): demotion from \(action.from), not all DRAM") }
                if let guardRule = workload.rule.pressureGuard {
                    let line = guardRule.kind == .some ? group.pressure.some : group.pressure.full
                    if line.avg10 >= guardRule.threshold { fail("\(action.group): demoted while its pressure guard is tripped") }
                }
                if let hold = stateBefore.blockedSources[action.group], hold.holds(pids: group.pids, bytes: 0, now: now) {
                    fail("\(action.group): demoted while held back after moving nothing")
                }
                demotedPerGroup[action.group, default: 0] += action.bytes
            case .promote:
                if workload.rule.demote != .never || !workload.rule.promote {
                    fail("\(action.group): promotion for \(workload.name), which is not an opt-out workload with promote")
                }
                let allowedTargets = fast.intersection(group.cpusetMems).intersection(snapshot.tierdAllowedNodes)
                if let bad = action.to.first(where: { !allowedTargets.contains($0) }) {
                    fail("\(action.group): promotion to node \(bad) outside DRAM ∩ cpuset ∩ tierd's nodes \(allowedTargets)")
                }
                if !action.from.isSubset(of: slow) { fail("\(action.group): promotion from \(action.from), not all slow") }
                let slowBytes = own[action.group]?.bytes(on: slow) ?? 0
                if let hold = stateBefore.stuckOnSlowNodes[action.group], hold.holds(pids: group.pids, bytes: slowBytes, now: now) {
                    fail("\(action.group): promoted while held back after moving nothing")
                }
                let promoted = plan.actions.filter { $0.group == action.group && $0.direction == .promote }.reduce(0) { $0 + $1.bytes }
                if promoted > slowBytes { fail("\(action.group): promotes \(promoted) of \(slowBytes) slow bytes") }
            }
        }
        for (path, bytes) in demotedPerGroup {
            let dram = own[path]?.bytes(on: fast) ?? 0
            let floor = workloads[path]?.rule.dramFloor ?? 0
            if bytes + floor > dram { fail("\(path): demotes \(bytes) of \(dram) DRAM bytes over a floor of \(floor)") }
        }
        let demoted = demotedPerGroup.values.reduce(0, +)
        if demoted > plan.summary.demotionDemand { fail("demotes \(demoted), more than the demand \(plan.summary.demotionDemand)") }
        // No slow node is filled past the kernel's high watermark, counting the tick's demotions together.
        let room = { (nodes: [Int]) in nodes.reduce(UInt64(0)) { $0 + (snapshot.topology.node($1)?.roomAboveHighWatermark ?? 0) } }
        if demoted > room(slow.sorted) { fail("demotes \(demoted) into \(room(slow.sorted)) of room above the slow nodes' high watermarks") }
        for action in plan.actions where action.direction == .demote && action.bytes > room(action.to) {
            fail("\(action.group): demotes \(action.bytes) into \(room(action.to)) of room on nodes \(action.to)")
        }

        // Promotion never plans more than DRAM has room for: what is free above half the low
        // watermark, plus what this tick's room-making demotions free.
        let dramFree = snapshot.topology.freeBytes(fast)
        let keepFree = min(plan.summary.lowWatermark / 2, dramFree)
        let roomMade = plan.actions.filter(\.makesRoom).reduce(0) { $0 + $1.bytes }
        let promoted = plan.actions.filter { $0.direction == .promote }.reduce(0) { $0 + $1.bytes }
        if promoted > dramFree - keepFree + roomMade { fail("promotes \(promoted) into \(dramFree - keepFree) free and \(roomMade) made") }

        violations += checkBudgets(plan, moved: moved, stateBefore: stateBefore, now: now)
        return violations
    }

    /// Within a tick, no more than the buckets hold; over a run, no more bytes moved than the
    /// buckets' capacity plus their rate over the time passed (tokens are settled on bytes moved).
    private mutating func checkBudgets(_ plan: MigrationPlan, moved: [UInt64], stateBefore: ControllerState, now: Instant) -> [String] {
        let settings = host.policy.controller
        let start = first ?? now
        first = start
        let elapsed = (now - start).seconds
        let window = max(settings.interval.seconds, 1)
        func bound(_ rate: UInt64) -> Double { Double(rate) * window + Double(rate) * elapsed + 1 }
        var violations: [String] = []
        let planned = plan.actions.reduce(0) { $0 + $1.bytes }
        if Double(planned) > Double(settings.rateLimit) * window + 1 {
            violations.append("planned \(planned) bytes in one tick, over a bucket of \(settings.rateLimit)/s × \(window) s")
        }
        movedTotal += moved.reduce(0, +)
        if Double(movedTotal) > bound(settings.rateLimit) {
            violations.append("moved \(movedTotal) bytes in \(elapsed) s over a rate_limit of \(settings.rateLimit)/s")
        }
        for (action, bytes) in zip(plan.actions, moved) { movedPerWorkload[action.workload, default: 0] += bytes }
        for workload in host.policy.workloads {
            guard let rate = workload.rule.rateLimit, let total = movedPerWorkload[workload.name] else { continue }
            if Double(total) > bound(rate) { violations.append("workload \(workload.name) moved \(total) over its rate_limit of \(rate)/s") }
        }
        return violations
    }
}
