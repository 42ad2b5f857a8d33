import Testing
import TierCore

/// The decisions a move takes when it runs, from what it reads then: pure, no syscall.
struct MoveRulesTests {
    static let mib: UInt64 = 1 << 20

    @Test func aPromotionShrinksToTheRoomLeftAboveWhatMustStayFree() {
        #expect(MoveRules.promotionRoom(planned: 80 * Self.mib, free: 300 * Self.mib, keepFree: 50 * Self.mib) == .budget(80 * Self.mib))
        #expect(MoveRules.promotionRoom(planned: 80 * Self.mib, free: 100 * Self.mib, keepFree: 50 * Self.mib) == .budget(50 * Self.mib))
        let taken = MoveRules.promotionRoom(planned: 80 * Self.mib, free: 40 * Self.mib, keepFree: 50 * Self.mib)
        #expect(taken == .taken(free: 40 * Self.mib, keepFree: 50 * Self.mib))
        #expect(taken.description == "the target nodes have 40.0 MiB free, within the 50.0 MiB to keep free: the room planned was taken")
        #expect(MoveRules.promotionRoom(planned: 1, free: 50 * Self.mib, keepFree: 50 * Self.mib) == .taken(free: 50 * Self.mib, keepFree: 50 * Self.mib))
    }

    func mapping(pages: UInt64, node: Int, sharedBy processes: Int) -> NumaMapsEntry {
        let line = "7f0000000000 default file=/usr/lib/libshared.so mapped=\(pages) mapmax=\(processes) N\(node)=\(pages) kernelpagesize_kB=4"
        return KernelText.numaMapsLine(Substring(line))!
    }

    @Test func sharedLibrariesAreLetOffAWholeDemotionUpToASixteenthOfTheBudget() {
        let budget = 512 * Self.mib
        let libraries = mapping(pages: 2_560, node: 0, sharedBy: 40)          // 10 MiB mapped by 40 processes
        let heap = mapping(pages: 131_072, node: 0, sharedBy: 1)             // 512 MiB its own
        let source = 522 * Self.mib
        #expect(MoveRules.wholeMoveFits([libraries, heap], sourceBytes: source, from: NodeSet([0]), leavesSharedPages: true, budget: budget))
        // A promotion takes shared pages along, and unread mappings let nothing off.
        #expect(!MoveRules.wholeMoveFits([libraries, heap], sourceBytes: source, from: NodeSet([0]), leavesSharedPages: false, budget: budget))
        #expect(!MoveRules.wholeMoveFits(nil, sourceBytes: source, from: NodeSet([0]), leavesSharedPages: true, budget: budget))
        // A forked worker's heap shared with its parent is most of the task: not let off.
        let forkedHeap = mapping(pages: 65_536, node: 0, sharedBy: 2)        // 256 MiB
        #expect(!MoveRules.wholeMoveFits([forkedHeap, heap], sourceBytes: 768 * Self.mib, from: NodeSet([0]), leavesSharedPages: true, budget: budget))
        // Shared pages on another node do not count, and whatever fits the budget fits.
        #expect(!MoveRules.wholeMoveFits([mapping(pages: 2_560, node: 1, sharedBy: 40), heap], sourceBytes: source, from: NodeSet([0]),
                                         leavesSharedPages: true, budget: budget))
        #expect(MoveRules.wholeMoveFits(nil, sourceBytes: budget, from: NodeSet([0]), leavesSharedPages: false, budget: budget))
    }

    @Test func onlyAWatermarkDemotionYieldsAndOnlyOnceItMovedSomething() {
        #expect(MoveRules.yieldsNow(.watermarkDemotion, nextTickDue: true, movedBytes: 4096))
        #expect(!MoveRules.yieldsNow(.watermarkDemotion, nextTickDue: true, movedBytes: 0))
        #expect(!MoveRules.yieldsNow(.watermarkDemotion, nextTickDue: false, movedBytes: 4096))
        for step in [ScheduleStep.makeRoom, .promoteIntoFreeRoom(keepFree: 0), .promoteIntoRoomMade(keepFree: 0),
                     .promoteWrittenPages(keepFree: 0), .whole(keepFree: 0)] {
            #expect(!MoveRules.yieldsNow(step, nextTickDue: true, movedBytes: 4096))
        }
    }

    /// One step per action says how it runs: the flags the migrator and the service read follow from it.
    @Test func theStepSaysHowAnActionRuns() {
        var action = MigrationAction(group: CgroupPath("a"), workload: "a", direction: .promote, pids: [1], from: NodeSet([1]), to: [0],
                                     bytes: Self.mib, mempolicy: .respect, reason: "test")
        action.step = .promoteIntoRoomMade(keepFree: 7)
        #expect(action.usesRoomMade && !action.makesRoom && !action.yieldsToNextTick && action.keepFreeOnTargets == 7 && action.pages == .all)
        action.step = .promoteWrittenPages(keepFree: 9)
        #expect(action.pages == .recentlyWritten && action.keepFreeOnTargets == 9 && !action.usesRoomMade)
        action.step = .makeRoom
        #expect(action.makesRoom && action.keepFreeOnTargets == 0 && !action.yieldsToNextTick)
        action.step = .watermarkDemotion
        #expect(action.yieldsToNextTick && !action.makesRoom)
    }
}
