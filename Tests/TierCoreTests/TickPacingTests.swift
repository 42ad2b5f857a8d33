import Testing
import TierCore

/// When the loop ticks again: at once after moves, later after a quiet tick, at the interval otherwise.
struct TickPacingTests {
    static let mib: UInt64 = 1 << 20
    let settings = ControllerSettings(interval: .seconds(2))

    /// DRAM 1 GiB, 400 MiB free against a 200 MiB high watermark, nothing planned.
    func quietPlan() -> MigrationPlan {
        var plan = MigrationPlan()
        plan.summary.dramTotal = 1024 * Self.mib
        plan.summary.dramFree = 400 * Self.mib
        plan.summary.projectedDramFree = 400 * Self.mib
        plan.summary.lowWatermark = 100 * Self.mib
        plan.summary.highWatermark = 200 * Self.mib
        return plan
    }

    @Test func aQuietTickIsFollowedAfterTheIdleInterval() {
        #expect(TickPacing.pause(after: quietPlan(), moved: false, heldBack: false, settings: settings) == .seconds(10))
    }

    /// Anything to do, or close to it, keeps the interval; a move or a held-back group brings the next tick at once.
    @Test func workOrItsApproachKeepsTheInterval() {
        var below = quietPlan(); below.summary.projectedDramFree = 150 * Self.mib
        var promoting = quietPlan(); promoting.summary.promotionNeed = Self.mib
        var reclaiming = quietPlan(); reclaiming.summary.reclaiming = true
        var demanding = quietPlan(); demanding.summary.demotionDemand = Self.mib
        var acting = quietPlan()
        acting.actions = [MigrationAction(group: CgroupPath("a"), workload: "a", direction: .promote, pids: [1], from: NodeSet([1]), to: [0],
                                          bytes: Self.mib, mempolicy: .respect, reason: "r")]
        let unreadHost = MigrationPlan()
        for plan in [below, promoting, reclaiming, demanding, acting, unreadHost] {
            #expect(TickPacing.pause(after: plan, moved: false, heldBack: false, settings: settings) == .seconds(2))
        }
        #expect(TickPacing.pause(after: quietPlan(), moved: true, heldBack: false, settings: settings) == .milliseconds(100))
        #expect(TickPacing.pause(after: quietPlan(), moved: false, heldBack: true, settings: settings) == .milliseconds(100))
        var deferred = quietPlan(); deferred.summary.deferredBytes = Self.mib
        #expect(TickPacing.pause(after: deferred, moved: false, heldBack: false, settings: settings) == .milliseconds(100))
    }

    /// Looks for written hot pages leave a tick quiet (groups may be carried), but a quiet tick
    /// waits only until the next look is due, and at least the interval.
    @Test func aTickThatOnlyLooksForHotPagesIsQuietUntilTheNextLook() {
        var looking = quietPlan()
        var look = MigrationAction(group: CgroupPath("a"), workload: "a", direction: .promote, pids: [1], from: NodeSet([1]), to: [0],
                                   bytes: Self.mib, mempolicy: .respect, reason: "r")
        look.step = .promoteWrittenPages(keepFree: 0)
        looking.actions = [look]
        looking.summary.nextHotLook = .seconds(5)
        #expect(TickPacing.isQuiet(looking, settings: settings))
        #expect(TickPacing.pause(after: looking, moved: false, heldBack: false, settings: settings) == .seconds(5))
        var between = quietPlan()
        between.summary.nextHotLook = .milliseconds(700)
        #expect(TickPacing.pause(after: between, moved: false, heldBack: false, settings: settings) == .seconds(2))
        between.summary.nextHotLook = .seconds(60)
        #expect(TickPacing.pause(after: between, moved: false, heldBack: false, settings: settings) == .seconds(10))
        look.step = .whole(keepFree: 0)
        looking.actions = [look]
        #expect(!TickPacing.isQuiet(looking, settings: settings))
    }

    /// Without the free-DRAM watch nothing would notice a filling host between ticks; an idle
    /// interval below the interval never shortens it.
    @Test func noWatchNoIdlePacingAndNeverFasterThanTheInterval() {
        var unwatched = settings; unwatched.dramWatch = .zero
        #expect(TickPacing.pause(after: quietPlan(), moved: false, heldBack: false, settings: unwatched) == .seconds(2))
        var slow = ControllerSettings(interval: .seconds(30))
        slow.idleInterval = .seconds(10)
        #expect(TickPacing.pause(after: quietPlan(), moved: false, heldBack: false, settings: slow) == .seconds(30))
    }
}
