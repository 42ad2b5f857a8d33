import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// Planner rules, on snapshots read by the real collector from fixture trees built on the
/// captured 6.12 guest (node0 DRAM ~1006 MiB with the CPUs; nodes 1 and 2 in a lower tier).
struct PlannerTests {
    static let mib: UInt64 = 1 << 20

    static let yaml = """
    controller:
      interval: 1s
      dram: {low: 10%, high: 20%}
      rate_limit: 4GiB/s
      demotion_per_tick: 1GiB
    workloads:
      - name: protected
        match: ["test.slice/db", "test.slice/batch/keep"]
        demote: never
      - name: batch
        match: ["test.slice/batch"]
        demote: allowed
        priority: 10
      - name: early
        match: ["test.slice/early"]
        demote: allowed
        priority: 5
      - name: floored
        match: ["test.slice/floored"]
        demote: allowed
        dram_floor: 256MiB
      - name: guarded
        match: ["test.slice/guarded"]
        demote: allowed
        pressure_guard: {some_avg10: 20%}
    """

    let tree: FixtureTree
    init() throws {
        tree = try FixtureTree()
        tree.setNode(1, freeBytes: 900 * Self.mib)
        tree.setNode(2, freeBytes: 900 * Self.mib)
    }

    func plan(_ yaml: String = PlannerTests.yaml, state: ControllerState = ControllerState(), now: Duration = .seconds(10),
              fallRate: UInt64 = 0, tracksWrittenPages: Bool = false) throws -> (MigrationPlan, ControllerState) {
        let policy = try PolicyCompiler.compile(yaml: yaml, file: "test.yaml")
        var snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: policy.tiers)
        snapshot.dramFallRate = fallRate
        snapshot.tracksWrittenPages = tracksWrittenPages
        return Planner.plan(snapshot: snapshot, policy: policy, state: state, now: Instant(now))
    }

    func dram(free: UInt64) { tree.setNode(0, freeBytes: free * Self.mib) }
    var high: UInt64 { UInt64(Double(1_030_452 * 1024) * 0.2) }

    @Test func optInIsDemotedUpToTheHighWatermark() throws {
        dram(free: 50)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 600 * Self.mib])
        let (plan, state) = try plan()
        let action = try #require(plan.actions.first)
        #expect(plan.actions.count == 1)
        #expect(action.direction == .demote && action.group == CgroupPath("test.slice/batch"))
        #expect(action.bytes == high - 50 * Self.mib)
        #expect(action.from == NodeSet([0]) && action.to == [1, 2])
        #expect(state.reclaiming)
    }

    @Test func optOutIsNeverASourceWhateverThePressure() throws {
        dram(free: 5)
        tree.addGroup("test.slice/db", pids: [600], anon: [0: 900 * Self.mib])
        tree.addGroup("test.slice/batch/keep", pids: [601], anon: [0: 50 * Self.mib])
        let (plan, _) = try plan()
        #expect(plan.summary.demotionDemand > 0)
        #expect(plan.actions.isEmpty)
    }

    @Test func lowerPriorityIsDemotedFirstAndOnlyAsNeeded() throws {
        dram(free: 90)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 300 * Self.mib])
        tree.addGroup("test.slice/early", pids: [501], anon: [0: 300 * Self.mib])
        let (plan, _) = try plan()
        #expect(plan.actions.map(\.workload) == ["early"])
    }

    @Test func dramFloorIsKept() throws {
        dram(free: 10)
        tree.addGroup("test.slice/floored", pids: [502], anon: [0: 300 * Self.mib])
        var (plan, _) = try plan()
        #expect(plan.actions.first?.bytes == 44 * Self.mib)
        tree.addGroup("test.slice/floored", pids: [502], anon: [0: 256 * Self.mib])
        (plan, _) = try self.plan()
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.contains { $0.reason == .atDramFloor(fastBytes: 256 * Self.mib, floor: 256 * Self.mib) })
    }

    @Test func pressureGuardStopsDemotionOnAvg10() throws {
        dram(free: 10)
        tree.addGroup("test.slice/guarded", pids: [503], anon: [0: 300 * Self.mib], someAvg10: 0.3)
        let (plan, _) = try plan()
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.contains { $0.reason.code == "pressure_guard" })
    }

    @Test func pressureGuardSeesStallsBetweenTicksFromTheCumulativeTotal() throws {
        dram(free: 10)
        tree.addGroup("test.slice/guarded", pids: [503], anon: [0: 300 * Self.mib], someTotal: 1_000_000)
        let (first, state) = try plan(now: .seconds(10))
        #expect(first.actions.count == 1)
        // 400 ms of stall within the next second: 40 % > 20 %, though avg10 still reads 0.
        tree.addGroup("test.slice/guarded", pids: [503], anon: [0: 300 * Self.mib], someTotal: 1_400_000)
        let (second, _) = try plan(state: state, now: .seconds(11))
        #expect(second.actions.isEmpty)
        #expect(second.skips.contains { $0.reason.code == "pressure_guard" })
    }

    @Test func targetsStayInsideTheCpuset() throws {
        dram(free: 10)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 300 * Self.mib], cpuset: "0,2")
        var (plan, _) = try plan()
        #expect(plan.actions.first?.to == [2])
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 300 * Self.mib], cpuset: "0")
        (plan, _) = try self.plan()
        #expect(plan.actions.isEmpty)
        let skip = try #require(plan.skips.first { $0.group == CgroupPath("test.slice/batch") })
        #expect(skip.reason == .noTargetNodes(detail: "slow nodes 1-2 ∩ cpuset 0 is empty"))
    }

    @Test func targetsStayInsideTierdsOwnCpuset() throws {
        dram(free: 10)
        let status = tree.read("/proc/self/status")!.replacingOccurrences(of: "Mems_allowed_list:\t0-2", with: "Mems_allowed_list:\t0")
        tree.write("/proc/self/status", status)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 300 * Self.mib])
        let (plan, _) = try plan()
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.contains { $0.reason == .noTargetNodes(detail: "slow nodes in cpuset 1-2 ∩ tierd's own nodes 0 is empty") })
    }

    @Test func protectedPagesOnSlowNodesArePromotedWhenThereIsRoom() throws {
        dram(free: 600)
        tree.addGroup("test.slice/db", pids: [600], anon: [0: 100 * Self.mib, 1: 300 * Self.mib])
        let (plan, _) = try plan()
        let action = try #require(plan.actions.first)
        #expect(action.direction == .promote && action.bytes == 300 * Self.mib)
        #expect(action.from == NodeSet([1]) && action.to == [0])
    }

    @Test func roomIsMadeForProtectedPagesByDemotingFirst() throws {
        dram(free: 150)
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 300 * Self.mib])
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        let (plan, _) = try plan()
        // What fits above half the low watermark is promoted first; demotion makes room for the rest.
        #expect(plan.actions.map(\.direction) == [.promote, .demote, .promote])
        let reserve = UInt64(Double(1_030_452 * 1024) * 0.1) / 2
        let fitsNow = 150 * Self.mib - reserve
        #expect(plan.actions[0].bytes == fitsNow)
        #expect(plan.actions[1].bytes == 300 * Self.mib - fitsNow)
        #expect(plan.actions[2].bytes == 300 * Self.mib - fitsNow)
        #expect(plan.actions.reduce(0) { $0 + ($1.direction == .promote ? $1.bytes : 0) } == 300 * Self.mib)
        // Promotions carry the reserve they must leave free, for the migrator's re-check; demotions none.
        #expect(plan.actions.map(\.step) == [.promoteIntoFreeRoom(keepFree: reserve), .makeRoom, .promoteIntoRoomMade(keepFree: reserve)])
        #expect(plan.actions.map(\.keepFreeOnTargets) == [reserve, 0, reserve])
        #expect(plan.actions.allSatisfy { $0.onTaskCPU })
    }

    @Test func theWatermarksExtraDemotionWaitsBehindThePromotion() throws {
        // 20 MiB free, below the low watermark: the watermark asks for more than the protected
        // job needs, and only the room-making part runs before its promotion.
        dram(free: 20)
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 50 * Self.mib])
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        let (plan, _) = try plan()
        #expect(plan.actions.map(\.direction) == [.demote, .promote, .demote])
        // DRAM free is below the promotion reserve: the promotion keeps the 20 MiB free, the
        // room-making demotion frees just what it needs, and the watermark's part restores the rest.
        #expect(plan.actions[0].bytes == 50 * Self.mib)
        #expect(plan.actions[1].bytes == 50 * Self.mib)
        #expect(plan.actions[1].keepFreeOnTargets == 20 * Self.mib)
        #expect(plan.actions[0].bytes + plan.actions[2].bytes == plan.summary.demotionDemand)
        #expect(plan.actions[2].reason.hasPrefix("DRAM free"))
        // Only the watermark's part may stop for the next tick: the protected job's room never does.
        #expect(plan.actions.map(\.step) == [.makeRoom, .promoteIntoRoomMade(keepFree: 20 * Self.mib), .watermarkDemotion])
        #expect(plan.actions.map(\.yieldsToNextTick) == [false, false, true])
    }

    @Test func aPromotionThatMovedNothingWaitsUntilTheSlowBytesChange() throws {
        dram(free: 600)
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 50 * Self.mib])
        var state = ControllerState()
        state.notePromotion(of: CgroupPath("test.slice/db"), pids: [600], slowBytes: 50 * Self.mib, movedBytes: 0, targetsFull: false,
                            now: Instant(.seconds(9)))
        var (plan, _) = try self.plan(state: state)
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.contains { $0.reason == .stuckOnSlowNodes(bytes: 50 * Self.mib, retryIn: .seconds(9)) })
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 51 * Self.mib])
        (plan, _) = try self.plan(state: state)
        #expect(plan.actions.map(\.direction) == [.promote])
        // Out of room is not stuck: room may come.
        state.notePromotion(of: CgroupPath("test.slice/db"), pids: [600], slowBytes: 51 * Self.mib, movedBytes: 0, targetsFull: true,
                            now: Instant(.seconds(9)))
        (plan, _) = try self.plan(state: state)
        #expect(plan.actions.map(\.direction) == [.promote])
    }

    /// Before, one fruitless promotion (a transient EBUSY) held an idle protected job, whose
    /// slow-node bytes never change, in slow memory for good. Now the hold ends after a backoff
    /// that doubles with each fruitless try, and at once when its tasks change.
    @Test func aStuckPromotionIsRetriedAfterABackoffThatDoubles() throws {
        dram(free: 600)
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 50 * Self.mib])
        let db = CgroupPath("test.slice/db")
        var state = ControllerState()
        state.notePromotion(of: db, pids: [600], slowBytes: 50 * Self.mib, movedBytes: 0, targetsFull: false, now: Instant(.seconds(10)))
        #expect(try plan(state: state, now: .seconds(19)).0.actions.isEmpty)
        #expect(try plan(state: state, now: .seconds(20)).0.actions.map(\.direction) == [.promote])
        // The retry moved nothing either: twice as long.
        state.notePromotion(of: db, pids: [600], slowBytes: 50 * Self.mib, movedBytes: 0, targetsFull: false, now: Instant(.seconds(20)))
        #expect(try plan(state: state, now: .seconds(39)).0.actions.isEmpty)
        #expect(try plan(state: state, now: .seconds(40)).0.actions.map(\.direction) == [.promote])
        // A new task in the group: tried at once.
        tree.addGroup("test.slice/db", pids: [600, 601], anon: [1: 50 * Self.mib])
        #expect(try plan(state: state, now: .seconds(21)).0.actions.map(\.direction) == [.promote])
        // The backoff stops growing at its longest.
        var hold: HeldBack?
        for _ in 0..<12 { hold = HeldBack(after: hold, pids: [600], bytes: 1, now: Instant(.zero)) }
        #expect(hold?.retryAt == Instant(HeldBack.longestRetry))
        // A promotion that moved something releases the group.
        state.notePromotion(of: db, pids: [600], slowBytes: 50 * Self.mib, movedBytes: 4096, targetsFull: false, now: Instant(.seconds(40)))
        #expect(state.stuckOnSlowNodes.isEmpty)
    }

    /// Seen on 7.3 with three nodes: a demotion from a group whose task is bound to DRAM was
    /// planned 61 times, moved nothing each time, and the other opted-in group, with room on its
    /// slow node, was never asked. A group whose demotion moved nothing is now passed over: the
    /// demand goes to the next candidate, until the group's tasks change or its backoff ends.
    @Test func aDemotionThatMovedNothingHandsTheDemandToTheNextCandidate() throws {
        dram(free: 50)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 600 * Self.mib])
        tree.addGroup("test.slice/early", pids: [700], anon: [0: 300 * Self.mib])
        let batch = CgroupPath("test.slice/batch"), early = CgroupPath("test.slice/early")
        let (first, _) = try plan()
        let firstSource = try #require(first.actions.first?.group)
        var state = ControllerState()
        state.noteDemotion(of: firstSource, pids: firstSource == batch ? [500] : [700], movedBytes: 0, targetsFull: false, now: Instant(.seconds(9)))
        let (second, _) = try plan(state: state)
        let other = firstSource == batch ? early : batch
        #expect(second.actions.map(\.group) == [other])
        #expect(second.skips.contains { $0.group == firstSource && $0.reason.code == "demotion_moved_nothing" })
        // Its bytes in DRAM change as it runs: still passed over. Its tasks change: asked again.
        tree.addGroup(firstSource.relative, pids: firstSource == batch ? [500] : [700], anon: [0: 650 * Self.mib])
        #expect(try plan(state: state).0.actions.map(\.group).first == other)
        tree.addGroup(firstSource.relative, pids: firstSource == batch ? [500, 501] : [700, 701], anon: [0: 650 * Self.mib])
        #expect(try plan(state: state).0.actions.map(\.group).contains(firstSource))
        // A full target is no refusal: room may come.
        state.noteDemotion(of: other, pids: [1], movedBytes: 0, targetsFull: true, now: Instant(.seconds(9)))
        #expect(state.blockedSources[other] == nil)
    }

    @Test func theCarriedStateForgetsGroupsThatAreGone() {
        var state = ControllerState()
        state.noteDemotion(of: CgroupPath("gone"), pids: [1], movedBytes: 0, targetsFull: false, now: Instant(.zero))
        state.notePromotion(of: CgroupPath("here"), pids: [2], slowBytes: 1, movedBytes: 0, targetsFull: false, now: Instant(.zero))
        state.notePromotion(of: CgroupPath("gone2"), pids: [3], slowBytes: 1, movedBytes: 0, targetsFull: false, now: Instant(.zero))
        state.forgetGroups(notIn: [CgroupPath("here")])
        #expect(state.blockedSources.isEmpty)
        #expect(Array(state.stuckOnSlowNodes.keys) == [CgroupPath("here")])
    }

    /// Tokens were spent when an action was planned and never reconciled: a failed move still
    /// spent them, and a move past its budget was not charged the excess.
    @Test func rateTokensSettleOnTheBytesActuallyMoved() {
        var state = ControllerState()
        state.globalBucket = ByteBucket(rate: 100, capacity: 100)
        state.workloadBuckets["batch"] = ByteBucket(rate: 50, capacity: 50)
        state.charge(40, workload: "batch")
        state.settle(planned: 40, moved: 0, workload: "batch")
        #expect(state.globalBucket?.tokens == 100 && state.workloadBuckets["batch"]?.tokens == 50)
        state.charge(40, workload: "batch")
        state.settle(planned: 40, moved: 46, workload: "batch")
        #expect(state.globalBucket?.tokens == 54 && state.workloadBuckets["batch"]?.tokens == 4)
        state.settle(planned: 200, moved: 0, workload: "batch")
        #expect(state.globalBucket?.tokens == 100 && state.workloadBuckets["batch"]?.tokens == 50)
    }

    @Test func oneTickDemotesAtMostItsBatchAndTheNextTickGoesOn() throws {
        dram(free: 20)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        let capped = PlannerTests.yaml.replacingOccurrences(of: "demotion_per_tick: 1GiB", with: "demotion_per_tick: 64MiB")
        let (first, state) = try plan(capped)
        #expect(first.actions.map(\.bytes) == [64 * Self.mib])
        #expect(first.summary.demotionDemand == 64 * Self.mib)
        dram(free: 84)
        let (second, _) = try plan(capped, state: state, now: .seconds(11))
        #expect(second.actions.map(\.bytes) == [64 * Self.mib])
    }

    @Test func aFastFallStartsDemotionAboveLowAndKeepsPaceWithIt() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        let capped = PlannerTests.yaml.replacingOccurrences(of: "demotion_per_tick: 1GiB", with: "demotion_per_tick: 64MiB")
        dram(free: 250)  // a first tick above high: not reclaiming
        var (plan, state) = try self.plan(capped)
        dram(free: 180)  // above low (~100 MiB): as it is, nothing to do
        (plan, state) = try self.plan(capped, state: state)
        #expect(plan.actions.isEmpty && !state.reclaiming)
        // Falling at 200 MiB/s: in the default 1 s lookahead free would be gone.
        (plan, state) = try self.plan(capped, state: state, fallRate: 200 * Self.mib)
        #expect(state.reclaiming)
        #expect(plan.summary.projectedDramFree == 0)
        // The band is high less the projected 0; the batch grows from 64 MiB to what the fall
        // takes in the lookahead (200 MiB): the fall sets the pace.
        #expect(plan.summary.demotionDemand == 200 * Self.mib)
        #expect(plan.actions.map(\.bytes) == [200 * Self.mib])
        #expect(plan.actions.first?.yieldsToNextTick == true)
        #expect(plan.actions.first?.reason.contains("falling at 200.0 MiB/s") == true)
        // A slow fall that stays above low within the lookahead changes nothing.
        (plan, state) = try self.plan(capped, state: ControllerState.afterOneTick, fallRate: 20 * Self.mib)
        #expect(plan.actions.isEmpty && !state.reclaiming)
    }

    @Test func aFallIsIgnoredWithoutLookahead() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        let noLookahead = PlannerTests.yaml.replacingOccurrences(of: "dram: {low: 10%, high: 20%}", with: "dram: {low: 10%, high: 20%, lookahead: 0s}")
        dram(free: 180)
        let (plan, state) = try self.plan(noLookahead, state: ControllerState.afterOneTick, fallRate: 500 * Self.mib)
        #expect(plan.actions.isEmpty && !state.reclaiming)
        #expect(plan.summary.projectedDramFree == 180 * Self.mib)
    }

    @Test func aGroupConfinedToSlowNodesIsNeverPromoted() throws {
        dram(free: 600)
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 300 * Self.mib], cpuset: "1")
        let (plan, _) = try plan()
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.contains { $0.reason == .confinedToSlowNodes(cpuset: NodeSet([1])) })
    }

    /// Killed mid-demotion and restarted with free DRAM between the watermarks, tierd finishes the
    /// reclaim; with a tick behind it and not reclaiming, the same free DRAM is left alone.
    @Test func aFirstTickBelowHighFinishesAReclaim() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        dram(free: 150)
        let (fresh, state) = try plan()
        #expect(state.reclaiming)
        #expect(fresh.actions.map(\.direction) == [.demote])
        let (steady, next) = try plan(state: ControllerState.afterOneTick)
        #expect(steady.actions.isEmpty && !next.reclaiming)
        dram(free: 250)
        let (above, aboveState) = try plan()
        #expect(above.actions.isEmpty && !aboveState.reclaiming)
    }

    @Test func watermarksHaveHysteresis() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        dram(free: 150)  // between low (~100 MiB) and high (~201 MiB), not reclaiming yet
        var (plan, state) = try plan(state: ControllerState.afterOneTick)
        #expect(plan.actions.isEmpty && !state.reclaiming)
        dram(free: 80)   // below low: start
        (plan, state) = try self.plan(state: state, now: .seconds(11))
        #expect(plan.actions.count == 1 && state.reclaiming)
        dram(free: 150)  // still below high: keep going
        (plan, state) = try self.plan(state: state, now: .seconds(12))
        #expect(plan.actions.count == 1 && state.reclaiming)
        dram(free: 250)  // above high: stop
        (plan, state) = try self.plan(state: state, now: .seconds(13))
        #expect(plan.actions.isEmpty && !state.reclaiming)
    }

    @Test func rateLimitsCapEachTickAndRefillOverTime() throws {
        let limited = Self.yaml.replacingOccurrences(of: "rate_limit: 4GiB/s", with: "rate_limit: 64MiB/s")
        dram(free: 10)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        var (plan, state) = try plan(limited, now: .seconds(10))
        #expect(plan.actions.first?.bytes == 64 * Self.mib)
        #expect(plan.summary.deferredBytes > 0)
        (plan, state) = try self.plan(limited, state: state, now: .milliseconds(10_500))
        #expect(plan.actions.first?.bytes == 32 * Self.mib)
        (plan, state) = try self.plan(limited, state: state, now: .milliseconds(10_500))
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.contains { $0.reason == .rateLimited(scope: "global rate_limit") })
    }

    @Test func perWorkloadRateLimit() throws {
        let limited = Self.yaml.replacingOccurrences(of: "    priority: 10\n", with: "    priority: 10\n    rate_limit: 16MiB/s\n")
        dram(free: 10)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        let (plan, _) = try plan(limited)
        #expect(plan.actions.first?.bytes == 16 * Self.mib)
    }

    @Test func noSlowTierMeansObserveOnly() throws {
        tree.remove("/sys/devices/virtual/memory_tiering")
        tree.write("/sys/devices/system/node/has_cpu", "0-2\n")
        dram(free: 10)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 700 * Self.mib])
        let (plan, _) = try plan()
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.map(\.reason) == [.noSlowTier])
    }

    @Test func aGroupWithoutTasksCannotBeMoved() throws {
        dram(free: 10)
        tree.addGroup("test.slice/batch", pids: [], anon: [0: 700 * Self.mib])
        let (plan, _) = try plan()
        #expect(plan.actions.isEmpty)
        #expect(plan.skips.contains { $0.reason == .noTasks(bytes: 700 * Self.mib) })
    }

    @Test func aParentIsPlannedOnItsOwnBytesNotItsChildren() throws {
        dram(free: 10)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 450 * Self.mib])
        tree.addGroup("test.slice/batch/keep", pids: [601], anon: [0: 400 * Self.mib])
        let (plan, _) = try plan()
        let action = try #require(plan.actions.first)
        #expect(action.group == CgroupPath("test.slice/batch"))
        #expect(plan.actions.allSatisfy { $0.group != CgroupPath("test.slice/batch/keep") })
        #expect(action.bytes <= 50 * Self.mib)
    }

    /// What each slow node keeps free (its high watermark and per-CPU lists), from the captured /proc/zoneinfo.
    func slowHighWatermarks() throws -> (UInt64, UInt64) {
        let topology = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).topology(selection: .auto)
        let (one, two) = (try #require(topology.node(1)), try #require(topology.node(2)))
        #expect(one.highWatermark != nil && one.perCPUListsHigh > 0 && one.reserve == one.highWatermark! + one.perCPUListsHigh)
        return (one.reserve, two.reserve)
    }

    /// Tried in the lab before: tierd filled a 256 MiB slow node to 11 MiB free and re-planned the
    /// same move into it every tick. A node at its high watermark takes nothing, and says why.
    @Test func slowNodesAtTheirHighWatermarkAreNotDemotedInto() throws {
        let (high1, high2) = try slowHighWatermarks()
        #expect(high1 > 0 && high2 > 0)
        tree.setNode(1, freeBytes: high1)
        tree.setNode(2, freeBytes: high2 - 4096)
        dram(free: 50)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 600 * Self.mib])
        let (plan, _) = try plan()
        #expect(plan.summary.demotionDemand > 0)
        #expect(plan.actions.isEmpty)
        let skip = try #require(plan.skips.first { $0.group == CgroupPath("test.slice/batch") })
        #expect(skip.reason.code == "slow_nodes_full")
        #expect(skip.reason.description.contains("high watermark"))
    }

    /// Room above the watermark is shared out across the tick's demotions, nearest node first.
    @Test func demotionsFillSlowNodesOnlyUpToTheirHighWatermark() throws {
        let (high1, high2) = try slowHighWatermarks()
        tree.setNode(1, freeBytes: high1 + 10 * Self.mib)
        tree.setNode(2, freeBytes: high2 + 6 * Self.mib)
        dram(free: 50)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 8 * Self.mib])
        tree.addGroup("test.slice/early", pids: [501], anon: [0: 600 * Self.mib])
        let (plan, _) = try plan()
        // `early` (priority 5) goes first and takes all the room; `batch` finds none left.
        let demoted = plan.actions.filter { $0.direction == .demote }
        #expect(demoted.map(\.group) == [CgroupPath("test.slice/early")])
        #expect(demoted.first?.bytes == 16 * Self.mib && demoted.first?.to == [1, 2])
        #expect(plan.skips.contains { $0.group == CgroupPath("test.slice/batch") && $0.reason.code == "slow_nodes_full" })
    }
    // MARK: controller.dram.reserve

    static func reserved(_ yaml: String = PlannerTests.yaml) -> String {
        yaml.replacingOccurrences(of: "dram: {low: 10%, high: 20%}", with: "dram: {low: 10%, high: 20%, reserve: 400MiB}")
    }
    var baseLow: UInt64 { UInt64(Double(1_030_452 * 1024) * 0.1) }

    @Test func aReserveRaisesTheWatermarksByWhatProtectedWorkloadsDoNotUse() throws {
        dram(free: 500)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 600 * Self.mib])
        let (empty, _) = try plan(Self.reserved())
        #expect(empty.summary.reserveUnused == 400 * Self.mib && !empty.summary.reserveMet)
        #expect(empty.summary.lowWatermark == baseLow + 400 * Self.mib && empty.summary.highWatermark == high + 400 * Self.mib)
        #expect(empty.actions.map(\.bytes) == [high + 400 * Self.mib - 500 * Self.mib])
        // A protected job using 300 MiB of DRAM leaves 100 MiB of the reserve to keep free: met.
        tree.addGroup("test.slice/db", pids: [600], anon: [0: 300 * Self.mib])
        let (used, _) = try plan(Self.reserved())
        #expect(used.summary.reserveUnused == 100 * Self.mib && used.summary.reserveMet)
        #expect(used.summary.lowWatermark == baseLow + 100 * Self.mib && used.actions.isEmpty)
        // Without a reserve nothing changes and the reserve counts as met.
        let (none, _) = try plan()
        #expect(none.summary.reserve == 0 && none.summary.reserveMet && none.summary.lowWatermark == baseLow)
    }

    /// A protected job growing into the reserve makes free DRAM fall as fast as the unused reserve
    /// shrinks: while part of it is unused the lookahead anticipates no fall (the raised watermarks
    /// catch one that goes beyond it); once it is used up, the lookahead applies again.
    @Test func aFallWhileTheReserveHasRoomIsLeftToTheWatermarks() throws {
        dram(free: 600)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 400 * Self.mib])
        tree.addGroup("test.slice/db", pids: [600], anon: [0: 100 * Self.mib])
        var state = ControllerState()
        state.lastTick = Instant(.seconds(9))
        let (covered, _) = try plan(Self.reserved(), state: state, fallRate: 600 * Self.mib)
        #expect(covered.summary.reserveUnused == 300 * Self.mib)
        #expect(covered.summary.projectedDramFree == 600 * Self.mib && covered.actions.isEmpty && !covered.summary.reclaiming)
        tree.addGroup("test.slice/db", pids: [600], anon: [0: 400 * Self.mib])
        let (usedUp, _) = try plan(Self.reserved(), state: state, fallRate: 600 * Self.mib)
        #expect(usedUp.summary.reserveUnused == 0)
        #expect(usedUp.summary.projectedDramFree == 0 && usedUp.summary.reclaiming)
        #expect(usedUp.actions.first?.direction == .demote)
    }

    /// The reserve is kept for protected pages: promoting them may use it, down to half the
    /// watermark without the reserve.
    @Test func aProtectedPromotionMayUseTheReserve() throws {
        dram(free: 450)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 300 * Self.mib])
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 380 * Self.mib])
        let (plan, _) = try plan(Self.reserved())
        let promotion = try #require(plan.actions.first)
        #expect(promotion.direction == .promote && promotion.bytes == 380 * Self.mib && !promotion.usesRoomMade)
        #expect(promotion.keepFreeOnTargets == baseLow / 2)
    }
}

/// `controller.hot_pages: written`: opted-in workloads' pages written on the slow tier come back.
struct HotPromotionPlannerTests {
    static let mib: UInt64 = 1 << 20
    let tree: FixtureTree
    let base = PlannerTests.yaml.replacingOccurrences(of: "  demotion_per_tick: 1GiB\n", with: "  demotion_per_tick: 1GiB\n  hot_promotion_rate: 64MiB/s\n")
    init() throws {
        tree = try FixtureTree()
        tree.setNode(1, freeBytes: 900 * Self.mib)
        tree.setNode(2, freeBytes: 900 * Self.mib)
    }
    var low: UInt64 { UInt64(Double(1_030_452 * 1024) * 0.1) }

    func plan(_ yaml: String? = nil, state: ControllerState = .afterOneTick, tracks: Bool = true) throws -> (MigrationPlan, ControllerState) {
        let policy = try PolicyCompiler.compile(yaml: yaml ?? base, file: "test.yaml")
        var snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: policy.tiers)
        snapshot.tracksWrittenPages = tracks
        return Planner.plan(snapshot: snapshot, policy: policy, state: state, now: Instant(.seconds(10)))
    }

    func hot(_ plan: MigrationPlan) -> [MigrationAction] { plan.actions.filter { $0.pages == .recentlyWritten } }

    @Test func writtenSlowPagesComeBackIntoDramAboveTheLowWatermarkAtTheHotRate() throws {
        tree.setNode(0, freeBytes: 600 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 200 * Self.mib, 1: 300 * Self.mib])
        let (plan, state) = try plan()
        let action = try #require(hot(plan).first)
        #expect(plan.actions.count == 1)
        #expect(action.direction == .promote && action.group == CgroupPath("test.slice/batch"))
        #expect(action.from == NodeSet([1]) && action.to == [0])
        #expect(action.bytes == 64 * Self.mib, "one interval of hot_promotion_rate")
        #expect(action.keepFreeOnTargets == low)
        #expect(state.hotBucket?.tokens == 0)
    }

    @Test func theRoomAboveTheLowWatermarkBoundsThemAndTheMostImportantWorkloadGoesFirst() throws {
        tree.setNode(0, freeBytes: low + 40 * Self.mib)
        tree.addGroup("test.slice/early", pids: [700], anon: [1: 100 * Self.mib])
        tree.addGroup("test.slice/batch", pids: [500], anon: [1: 100 * Self.mib])
        let (plan, _) = try plan(base.replacingOccurrences(of: "dram: {low: 10%, high: 20%}", with: "dram: {low: 10%, high: 11%}"))
        #expect(hot(plan).map(\.group) == [CgroupPath("test.slice/batch")], "priority 10 before priority 5, and no room left for the second")
        #expect(hot(plan).first?.bytes == plan.summary.dramFree - plan.summary.lowWatermark)
        #expect(plan.summary.dramFree - plan.summary.lowWatermark < 41 * Self.mib)
    }

    @Test func nothingComesBackWhileDramMustBeFreedOrProtectedPagesWait() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 600 * Self.mib, 1: 100 * Self.mib])
        tree.setNode(0, freeBytes: 50 * Self.mib)
        #expect(hot(try plan().0).isEmpty)
        tree.setNode(0, freeBytes: 600 * Self.mib)
        tree.addGroup("test.slice/db", pids: [600], anon: [1: 10 * Self.mib])
        let (plan, _) = try plan()
        #expect(hot(plan).isEmpty && plan.actions.contains { $0.group == CgroupPath("test.slice/db") && $0.direction == .promote })
    }

    @Test func nothingComesBackWithoutSoftDirtyBitsOrWhenTheConfigSaysOff() throws {
        tree.setNode(0, freeBytes: 600 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [500], anon: [1: 300 * Self.mib])
        #expect(hot(try plan(tracks: false).0).isEmpty)
        let off = PlannerTests.yaml.replacingOccurrences(of: "  demotion_per_tick: 1GiB\n", with: "  demotion_per_tick: 1GiB\n  hot_pages: off\n")
        #expect(hot(try plan(off).0).isEmpty)
    }

    @Test func bytesBroughtBackAreKeptOutOfDemotionForTheHoldTime() throws {
        tree.setNode(0, freeBytes: 50 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 600 * Self.mib])
        var state = ControllerState.afterOneTick
        state.noteHotPromotion(of: CgroupPath("test.slice/batch"), movedBytes: 550 * Self.mib, until: Instant(.seconds(40)), now: Instant(.seconds(9)))
        let (partly, _) = try plan(state: state)
        let demotion = try #require(partly.actions.first { $0.direction == .demote })
        #expect(demotion.bytes == 50 * Self.mib, "600 MiB in DRAM, 550 of them held")
        state.noteHotPromotion(of: CgroupPath("test.slice/batch"), movedBytes: 50 * Self.mib, until: Instant(.seconds(40)), now: Instant(.seconds(9)))
        let (held, _) = try plan(state: state)
        #expect(held.actions.isEmpty)
        #expect(held.skips.contains { $0.reason.code == "holding_hot_pages" })
        var expired = ControllerState.afterOneTick
        expired.noteHotPromotion(of: CgroupPath("test.slice/batch"), movedBytes: 600 * Self.mib, until: Instant(.seconds(10)), now: Instant(.seconds(9)))
        let (after, _) = try plan(state: expired)
        #expect(after.actions.first?.direction == .demote, "a hold ends at its instant")
    }

    /// A look reads every looked-at task's page map: they come every `hot_look_interval`, and the
    /// plan says when the next is due.
    @Test func looksComeEveryLookIntervalAndThePlanSaysWhenTheNextIsDue() throws {
        tree.setNode(0, freeBytes: 600 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [500], anon: [1: 300 * Self.mib])
        let (first, state) = try plan()
        #expect(hot(first).count == 1 && first.summary.nextHotLook == .seconds(5))
        #expect(state.lastHotLook == Instant(.seconds(10)))
        let policy = try PolicyCompiler.compile(yaml: base, file: "test.yaml")
        var snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: policy.tiers)
        snapshot.tracksWrittenPages = true
        let (soon, _) = Planner.plan(snapshot: snapshot, policy: policy, state: state, now: Instant(.seconds(12)))
        #expect(hot(soon).isEmpty && soon.summary.nextHotLook == .seconds(3))
        let (due, _) = Planner.plan(snapshot: snapshot, policy: policy, state: state, now: Instant(.seconds(15)))
        #expect(hot(due).count == 1)
    }

    @Test func aHotPromotionSettlesItsOwnBucketOnWhatItMoved() {
        var state = ControllerState()
        state.hotBucket = ByteBucket(rate: 64 * Self.mib, capacity: 64 * Self.mib)
        state.hotBucket?.take(64 * Self.mib)
        state.settleHot(planned: 64 * Self.mib, moved: 4 * Self.mib)
        #expect(state.hotBucket?.tokens == 60 * Self.mib)
    }
}

extension ControllerState {
    /// A controller that has ticked once, a second ago, and is not reclaiming.
    static var afterOneTick: ControllerState {
        var state = ControllerState()
        state.lastTick = Instant(.seconds(9))
        return state
    }

}
