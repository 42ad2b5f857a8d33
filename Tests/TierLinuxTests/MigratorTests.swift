#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// The migrator's checks and calls, on fixture trees; the calls themselves are recorded here
/// and made for real by the lab's end-to-end scenarios.
struct MigratorTests {
    let tree: FixtureTree
    let syscalls = RecordingSyscalls()
    let collector: SnapshotCollector

    init() throws {
        tree = try FixtureTree()
        tree.addGroup("test.slice/batch", pids: [700, 701], anon: [0: 64 << 20])
        collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root))
        let (tree, syscalls) = (tree, syscalls)
        syscalls.afterMigrate = { [unowned syscalls] pid, from, to in tree.relocate(pid, from: from, to: to.first!, leaving: syscalls.notMoved[pid] ?? 0) }
    }

    func migrator(dryRun: Bool = false, selfPid: Int32 = 1) -> TaskMigrator {
        TaskMigrator(collector: collector, syscalls: syscalls, dryRun: dryRun, selfPid: selfPid)
    }

    func demote(_ pids: [Int32], bytes: UInt64 = 1 << 30, mempolicy: MempolicyMode = .respect, to: [Int] = [1, 2]) -> MigrationAction {
        MigrationAction(group: CgroupPath("test.slice/batch"), workload: "batch", direction: .demote, pids: pids,
                        from: NodeSet([0]), to: to, bytes: bytes, mempolicy: mempolicy, reason: "test")
    }

    func promote(_ pids: [Int32], bytes: UInt64 = 1 << 30) -> MigrationAction {
        MigrationAction(group: CgroupPath("test.slice/batch"), workload: "batch", direction: .promote, pids: pids,
                        from: NodeSet([1]), to: [0], bytes: bytes, mempolicy: .respect, reason: "test")
    }

    @Test func aPromotionThatFitsTheBudgetMovesWholeWithMigratePages() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100, 0: 5])
        let outcome = migrator().execute(promote([700]))
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([1]), to: NodeSet([0]), sharedPages: .include)])
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 100 * 4096)])
        #expect(outcome.movedBytes == 100 * 4096)
    }

    /// What moves bring into DRAM and take out of it is counted as they go, whole or page by page.
    @Test func movesCountTheBytesTheyBringIntoAndTakeOutOfDram() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [1: 100, 0: 50])
        syscalls.pageNode = { pid, _ in pid == 701 ? 1 : 0 }
        var counted = migrator()
        let own = OwnMoves()
        counted.ownMoves = own
        let whole = counted.execute(promote([700]))
        #expect(whole.wholeMoves == 1 && own.promoted == 100 * 4096)
        let part = counted.execute(promote([701], bytes: 40 * 4096))
        #expect(part.wholeMoves == 0 && part.movedBytes > 0)
        #expect(own.promoted == 100 * 4096 + part.movedBytes)
        let down = counted.execute(demote([701]))
        #expect(down.movedBytes > 0 && own.demoted == down.movedBytes)
        #expect(own.promoted == 100 * 4096 + part.movedBytes)
    }

    /// The moving code stepped and counted by 4 KiB: on a kernel with 16 KiB base pages it would
    /// hand move_pages(2) four addresses per page and count each as 4 KiB moved.
    @Test func aPartialMoveStepsAndCountsByTheKernelsBasePage() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 64])   // 256 KiB: 16 pages of 16 KiB
        var sixteen = migrator()
        sixteen.pageSize = 16384
        let outcome = sixteen.execute(demote([700], bytes: 8 * 16384, to: [1]))
        #expect(syscalls.calls.first == .query(pid: 700, pages: 16))
        #expect(syscalls.calls.contains(.move(pid: 700, pages: 8, to: 1)))
        #expect(syscalls.movedAddresses.allSatisfy { $0 % 16384 == 0 } && syscalls.movedAddresses.count == 8)
        #expect(outcome.movedBytes == 8 * 16384)
        #expect(TaskMigrator.systemPageSize == UInt64(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// `controller.hot_pages: written`: only the pages the task wrote since the last look move,
    /// and the look clears the bits; the first look at a task only clears them.
    @Test func aHotPromotionMovesOnlyThePagesWrittenSinceTheLastLook() throws {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        let start: UInt64 = 0x7f00_0000_0000
        let written: Set<UInt64> = [start + 3 * 4096, start + 50 * 4096]
        try tree.setPagemap(700, pages: (0..<100).map { start + $0 * 4096 }, written: written)
        syscalls.pageNode = { _, _ in 1 }
        var action = promote([700])
        action.step = .promoteWrittenPages(keepFree: 0)
        let hot = migrator()
        let first = hot.execute(action)
        #expect(first.movedBytes == 0 && syscalls.calls.isEmpty, "every page is soft-dirty until the bits were first cleared")
        #expect(tree.read(KernelPaths.process(700) + "/clear_refs") == ClearRefs.softDirty)
        tree.write(KernelPaths.process(700) + "/clear_refs", "")
        let second = hot.execute(action)
        #expect(second.movedBytes == 2 * 4096)
        #expect(syscalls.calls == [.query(pid: 700, pages: 2), .move(pid: 700, pages: 2, to: 0)])
        #expect(syscalls.movedAddresses == written)
        #expect(tree.read(KernelPaths.process(700) + "/clear_refs") == ClearRefs.softDirty)
    }

    /// `clear_refs` is writable by the task's owner only: without CAP_DAC_OVERRIDE the kernel
    /// refuses tierd another user's. Said once (a failed task), then the task is passed over.
    @Test func aTaskWhoseBitsCannotBeClearedIsReportedOnceThenPassedOver() throws {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        try tree.setPagemap(700, pages: [0x7f00_0000_0000], written: [0x7f00_0000_0000])
        tree.remove(KernelPaths.process(700) + "/clear_refs")
        try FileManager.default.createDirectory(atPath: tree.root + KernelPaths.process(700) + "/clear_refs", withIntermediateDirectories: false)
        var action = promote([700])
        action.step = .promoteWrittenPages(keepFree: 0)
        let hot = migrator()
        let first = hot.execute(action)
        #expect(first.tasks.map(\.result.code) == ["failed"])
        #expect(first.tasks.first.map { "\($0.result)".contains("CAP_DAC_OVERRIDE") } == true)
        #expect(hot.execute(action).tasks.map(\.result) == [.nothingToMove])
        #expect(syscalls.calls.isEmpty)
    }

    @Test func aDryRunNeitherClearsNorGuessesWrittenPages() throws {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        try tree.setPagemap(700, pages: [0x7f00_0000_0000], written: [0x7f00_0000_0000])
        var action = promote([700])
        action.step = .promoteWrittenPages(keepFree: 0)
        let outcome = migrator(dryRun: true).execute(action)
        #expect(outcome.tasks.map(\.result) == [.nothingToMove])
        #expect(tree.read(KernelPaths.process(700) + "/clear_refs") == "")
    }

    @Test func pagesLeftBehindAreReportedAsPartial() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        syscalls.notMoved[700] = 30
        let outcome = migrator().execute(promote([700]))
        #expect(outcome.tasks.map(\.result) == [.partial(movedBytes: 70 * 4096, notMovedPages: 30)])
    }

    @Test func aWholeDemotionLeavesSharedPagesBehind() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        let outcome = migrator().execute(demote([700]))
        #expect(outcome.movedBytes == 100 * 4096)
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .leave)])
    }

    @Test func librariesADemotionLeavesDoNotCountAgainstItsWholeMove() {
        // The budget is the group's own bytes; the task also maps 20 pages of a library beside
        // two other processes, which a demotion leaves where they are.
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 1000])
        tree.addSharedMapping(700, pages: 20, node: 0, mappedBy: 3)
        let outcome = migrator().execute(demote([700], bytes: 1000 * 4096, to: [1]))
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .leave)])
        #expect(outcome.wholeMoves == 1)
    }

    @Test func aLargeSharedMappingStillCountsAgainstAWholeDemotion() {
        // A forked worker's heap: shared with its parent until written, so mapmax is 2 while
        // most of its pages may be the worker's alone, and would move with it.
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.addSharedMapping(700, pages: 1000, node: 0, mappedBy: 2)
        let outcome = migrator().execute(demote([700], bytes: 100 * 4096, to: [1]))
        #expect(!syscalls.calls.contains { if case .migrate = $0 { true } else { false } })
        #expect(outcome.wholeMoves == 0)
        #expect(outcome.movedBytes <= 100 * 4096)
    }

    @Test func aPromotionCountsSharedPagesItWouldBringAlong() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        tree.addSharedMapping(700, pages: 10, node: 1, mappedBy: 3)
        let outcome = migrator().execute(promote([700], bytes: 100 * 4096))
        #expect(!syscalls.calls.contains { if case .migrate = $0 { true } else { false } })
        #expect(outcome.wholeMoves == 0)
    }

    @Test func aTasksOwnFileMappingsCountAgainstAWholeDemotion() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.addSharedMapping(700, pages: 10, node: 0, mappedBy: 1)
        let outcome = migrator().execute(demote([700], bytes: 100 * 4096, to: [1]))
        #expect(!syscalls.calls.contains { if case .migrate = $0 { true } else { false } })
        #expect(outcome.wholeMoves == 0)
    }

    @Test func movedBytesAreWhatLeftTheSourceNodesNotWhatWasAsked() {
        // Shared pages are not failures to the kernel: only numa_maps read back shows they stayed.
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.afterMigrate = { [tree] pid, _, _ in tree.addTask(pid, group: "test.slice/batch", pagesPerNode: [0: 10, 1: 90]) }
        let outcome = migrator().execute(demote([700], to: [1]))
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 90 * 4096)])
    }

    @Test func aWholeDemotionTheKernelRefusesGoesPageByPage() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.migrateFailures[700] = EPERM
        let outcome = migrator().execute(demote([700]))
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 100 * 4096)])
        #expect(syscalls.calls.contains(.move(pid: 700, pages: 100, to: 1)))
        #expect(outcome.wholeMoves == 0)
    }

    @Test func pagesTheNearestTargetHadNoRoomForGoToTheNext() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.notMoved[700] = 30
        syscalls.pageNode = { _, address in address < 0x7f00_0000_0000 + 30 * 4096 ? 0 : 1 }
        let outcome = migrator().execute(demote([700], to: [1, 2]))
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 100 * 4096)])
        #expect(syscalls.calls.first == .migrate(pid: 700, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .leave))
        #expect(syscalls.calls.contains(.move(pid: 700, pages: 30, to: 1)))
    }

    @Test func aTaskLargerThanTheBudgetMovesInChunksWithMovePages() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 1000])
        let outcome = migrator().execute(demote([700], bytes: 100 * 4096))
        #expect(outcome.movedBytes == 100 * 4096)
        #expect(syscalls.calls.contains(.move(pid: 700, pages: 100, to: 1)))
        // A demotion never takes a page the task shares: it may be a protected workload's too.
        #expect(syscalls.moveSharing == [.leave])
        #expect(!syscalls.calls.contains { if case .migrate = $0 { true } else { false } })
    }

    @Test func theBudgetIsSharedAcrossTheTaskSet() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [0: 100])
        let outcome = migrator().execute(demote([700, 701], bytes: 100 * 4096))
        #expect(outcome.tasks.count == 1)
        #expect(outcome.movedBytes == 100 * 4096)
        #expect(!syscalls.calls.contains { call in if case .move(701, _, _) = call { true } else { false } })
    }

    @Test func aMoveStopsWhenEveryTargetIsOutOfRoom() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 20_000])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.fullNodes = [1, 2]
        let outcome = migrator().execute(demote([700, 701], bytes: 15_000 * 4096))
        #expect(outcome.tasks.map(\.result) == [.targetsFull(movedBytes: 0)])
        // One chunk tried on each target, then no more chunks and no more tasks.
        #expect(syscalls.calls == [.query(pid: 700, pages: 8192), .move(pid: 700, pages: 8192, to: 1), .move(pid: 700, pages: 8192, to: 2)])
    }

    @Test func aWholePromotionWithoutRoomIsTargetsFullNotAFailure() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [1: 100])
        syscalls.migrateFailures[700] = ENOMEM
        let outcome = migrator().execute(promote([700, 701]))
        #expect(outcome.tasks.map(\.result) == [.targetsFull(movedBytes: 0)])
    }

    @Test func aPromotionWhoseRoomWasTakenIsDroppedWithoutASystemCall() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        tree.setNode(0, freeBytes: 30 << 20)
        var action = promote([700])
        action.step = .promoteIntoFreeRoom(keepFree: 32 << 20)
        let outcome = migrator().execute(action)
        #expect(outcome.dropped?.contains("the room planned was taken") == true)
        #expect(outcome.tasks.isEmpty)
        #expect(syscalls.calls.isEmpty)
    }

    @Test func aPromotionShrinksToTheRoomItsTargetsStillHave() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        tree.setNode(0, freeBytes: (32 << 20) + 40 * 4096)
        syscalls.pageNode = { _, _ in 1 }
        var action = promote([700])
        action.step = .promoteIntoFreeRoom(keepFree: 32 << 20)
        let outcome = migrator().execute(action)
        // 40 pages fit: not a whole move of 100, a partial one of 40.
        #expect(outcome.movedBytes == 40 * 4096)
        #expect(syscalls.calls.contains(.move(pid: 700, pages: 40, to: 0)))
        #expect(!syscalls.calls.contains { if case .migrate = $0 { true } else { false } })
    }

    @Test func aPromotionWithRoomToSpareIsNotShrunk() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        tree.setNode(0, freeBytes: 512 << 20)
        var action = promote([700])
        action.step = .promoteIntoFreeRoom(keepFree: 32 << 20)
        #expect(migrator().execute(action).tasks.map(\.result) == [.moved(bytes: 100 * 4096)])
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([1]), to: NodeSet([0]), sharedPages: .include)])
    }

    /// Real sched_setaffinity on the test's thread: each move runs on the CPU its task last ran
    /// on, and the thread's affinity is restored after.
    @Test func eachTaskIsMovedFromTheCPUItLastRanOn() throws {
        try #require(ProcessInfo.processInfo.activeProcessorCount >= 2, "needs two CPUs")
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [0: 100])
        try tree.setLastCPU(700, 1)
        try tree.setLastCPU(701, 0)
        let affinityBefore = try #require(ThreadPlacement.affinity)
        var action = demote([700, 701])
        action.onTaskCPU = true
        let outcome = migrator().execute(action)
        #expect(syscalls.callCPUs == [1, 0])
        #expect(outcome.movedOnTaskCPU == 2)
        #expect(ThreadPlacement.affinity == affinityBefore)
    }

    @Test func theMovingThreadsCPUTimeIsAccountedApartFromItsWallTime() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        // The call spends 0.2 s: of CPU in one action (however long a busy machine takes to give
        // it), asleep in the other.
        syscalls.beforeCall = { _ in
            let until = ProcessCPU.thisThread().seconds + 0.2
            while ProcessCPU.thisThread().seconds < until {}
        }
        let busy = migrator().execute(demote([700]))
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.beforeCall = { _ in usleep(200_000) }
        let asleep = migrator().execute(demote([700]))
        #expect(busy.cpuSeconds >= 0.2)
        #expect(busy.cpuSeconds <= busy.duration.seconds + 0.02)
        #expect(asleep.duration.seconds >= 0.2)
        #expect(asleep.cpuSeconds < 0.1)
    }

    @Test func aTaskWhoseCPUCannotBeReadIsMovedWhereTierdRuns() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        // A stat cut short after the start time (field 22): no "processor" field.
        tree.write("/proc/700/stat", "700 (tierload) S" + String(repeating: " 0", count: 18) + " 100700\n")
        var action = demote([700])
        action.onTaskCPU = true
        let outcome = migrator().execute(action)
        #expect(outcome.movedBytes == 100 * 4096, "\(outcome.tasks.map(\.result))")
        #expect(outcome.movedOnTaskCPU == 0)
    }

    /// A 1,000-page promotion paced by a demotion already done, with `pages` of room above a
    /// 32 MiB reserve on node 0.
    func pacedPromotionAfterTheDemotion(roomPages pages: UInt64) -> ActionOutcome {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 1000])
        syscalls.pageNode = { _, _ in 1 }
        syscalls.afterMove = { [tree] _, pages, node in tree.accountMove(bytes: UInt64(pages) * 4096, from: 1, to: node) }
        tree.setNode(0, freeBytes: (32 << 20) + pages * 4096)
        let pacer = RoomPacer()
        pacer.finish()
        var action = promote([700], bytes: 1000 * 4096)
        action.step = .promoteIntoRoomMade(keepFree: 32 << 20)
        return migrator().execute(action, pacer: pacer)
    }

    @Test func aPacedPromotionMovesOnlyWhatFitsAboveTheReserveThenStops() {
        let outcome = pacedPromotionAfterTheDemotion(roomPages: 600)
        #expect(outcome.tasks.map(\.result) == [.targetsFull(movedBytes: 600 * 4096)])
        #expect(syscalls.calls.filter { if case .move = $0 { true } else { false } } == [.move(pid: 700, pages: 600, to: 0)])
    }

    @Test func aPacedPromotionDoesNotCrawlThroughCrumbsOfRoom() {
        let outcome = pacedPromotionAfterTheDemotion(roomPages: 40)
        // 40 pages of room, less than a 2 MiB batch, and the demotion is done: the next tick goes on.
        #expect(outcome.tasks.map(\.result) == [.targetsFull(movedBytes: 0)])
        #expect(!syscalls.calls.contains { if case .move = $0 { true } else { false } })
    }

    /// Room appears only as the other lane's demotion moves: the promotion waits for it.
    @Test func aPacedPromotionWaitsForTheRoomTheDemotionMakes() async {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        syscalls.pageNode = { _, _ in 1 }
        syscalls.afterMove = { [tree] _, pages, node in tree.accountMove(bytes: UInt64(pages) * 4096, from: 1, to: node) }
        tree.setNode(0, freeBytes: 32 << 20)
        let pacer = RoomPacer()
        var action = promote([700], bytes: 100 * 4096)
        action.step = .promoteIntoRoomMade(keepFree: 32 << 20)
        let (migrator, paced) = (migrator(), action)
        let outcome = await withCheckedContinuation { (done: CheckedContinuation<ActionOutcome, Never>) in
            Thread.detachNewThread { done.resume(returning: migrator.execute(paced, pacer: pacer)) }
            Thread.detachNewThread { [tree] in
                for _ in 0..<3 {
                    Thread.sleep(forTimeInterval: 0.02)
                    tree.accountMove(bytes: 40 * 4096, from: 0, to: 1)
                    pacer.roomMade(40 * 4096)
                }
                pacer.finish()
            }
        }
        // The 100 pages wait until room for all of them is there (a batch smaller than 2 MiB goes
        // whole), then come back in one move.
        #expect(outcome.movedBytes == 100 * 4096)
        #expect(syscalls.calls.filter { if case .move = $0 { true } else { false } } == [.move(pid: 700, pages: 100, to: 0)])
    }

    @Test func aPacedDemotionReportsTheRoomItMakesBatchByBatch() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 5000])
        let pacer = RoomPacer()
        var action = demote([700], to: [1])
        action.step = .makeRoom
        let outcome = migrator().execute(action, pacer: pacer)
        // Whole-task size, but paced: in batches of 2,048 pages, not one migrate_pages call.
        #expect(outcome.movedBytes == 5000 * 4096)
        #expect(pacer.state.made == 5000 * 4096)
        #expect(syscalls.calls.filter { if case .move = $0 { true } else { false } }
                == [.move(pid: 700, pages: 2048, to: 1), .move(pid: 700, pages: 2048, to: 1), .move(pid: 700, pages: 904, to: 1)])
    }

    /// A 5,000-page demotion with the next tick due `dueIn` from now (nil: no next tick, as in a
    /// one-shot run); `yields` marks it as the watermark's.
    func demotion(yields: Bool, dueIn: Duration?) -> ActionOutcome {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 5000])
        var action = demote([700], to: [1])
        action.step = yields ? .watermarkDemotion : .whole(keepFree: 0)
        return migrator().execute(action, pacer: nil, nextTickDue: dueIn.map { ContinuousClock.now + $0 })
    }

    var moveCalls: [RecordingSyscalls.Call] { syscalls.calls.filter { if case .move = $0 { true } else { false } } }

    @Test func aWatermarkDemotionStopsAfterABatchOnceTheNextTickIsDue() {
        let outcome = demotion(yields: true, dueIn: .zero)
        #expect(outcome.movedBytes == 2048 * 4096)
        #expect(outcome.stoppedForNextTick)
        #expect(moveCalls == [.move(pid: 700, pages: 2048, to: 1)])
    }

    @Test func aWatermarkDemotionWithTimeLeftMovesAllInBatches() {
        let outcome = demotion(yields: true, dueIn: .seconds(60))
        #expect(outcome.movedBytes == 5000 * 4096)
        #expect(!outcome.stoppedForNextTick)
        #expect(moveCalls == [.move(pid: 700, pages: 2048, to: 1), .move(pid: 700, pages: 2048, to: 1), .move(pid: 700, pages: 904, to: 1)])
    }

    @Test func withoutANextTickAWatermarkDemotionMovesWhole() {
        let outcome = demotion(yields: true, dueIn: nil)
        #expect(outcome.movedBytes == 5000 * 4096)
        #expect(syscalls.calls.contains(.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .leave)))
        #expect(moveCalls.isEmpty)
    }

    @Test func aDemotionThatDoesNotYieldIgnoresTheNextTick() {
        let outcome = demotion(yields: false, dueIn: .zero)
        #expect(outcome.movedBytes == 5000 * 4096)
        #expect(!outcome.stoppedForNextTick)
    }

    /// Two 2,048-page demotions of one 5,000-page task: the second queries from where the first
    /// stopped instead of asking again about the pages already moved.
    @Test func aPartialMoveResumesWhereTheLastOneStopped() throws {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 5000])
        let start = try #require(KernelText.mapRanges(try String(contentsOfFile: tree.root + "/proc/700/maps", encoding: .utf8)).first).lowerBound
        syscalls.pageNode = { [unowned syscalls] _, address in syscalls.movedAddresses.contains(address) ? 1 : 0 }
        let migrator = migrator()
        let first = migrator.execute(demote([700], bytes: 2048 * 4096))
        #expect(first.movedBytes == 2048 * 4096)
        let second = migrator.execute(demote([700], bytes: 2048 * 4096))
        #expect(second.movedBytes == 2048 * 4096)
        #expect(syscalls.queryStarts == [start, start + 2048 * 4096])
    }

    /// move_pages(2) reports 100 pages moved, but a huge page came along whole: numa_maps shows
    /// 612 pages gone from node 0, and that is what the outcome counts.
    @Test func aPartialMoveCountsWhatLeftTheSourceNodesWhenMoreThanReported() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 5000])
        syscalls.afterMove = { [tree] pid, _, node in tree.relocate(pid, from: NodeSet([0]), to: node, leaving: 5000 - 612) }
        let outcome = migrator().execute(demote([700], bytes: 100 * 4096, to: [1]))
        #expect(moveCalls == [.move(pid: 700, pages: 100, to: 1)])
        #expect(outcome.movedBytes == 612 * 4096)
    }

    /// 3,000 pages in DRAM in one mapping, 200 on the slow node in another: a partial promotion
    /// queries only the mapping numa_maps shows slow pages in.
    @Test func aPartialMoveSkipsMappingsWithNoPagesOnTheSourceNodes() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 3000, 1: 200])
        let slowMapping: UInt64 = 0x7f00_0000_0000 + (3000 + 256) * 4096
        syscalls.pageNode = { _, address in address >= slowMapping ? 1 : 0 }
        let outcome = migrator().execute(promote([700], bytes: 100 * 4096))
        #expect(outcome.movedBytes == 100 * 4096)
        #expect(syscalls.queryStarts == [slowMapping])
        #expect(syscalls.calls.contains(.query(pid: 700, pages: 200)))
    }

    /// A promotion of 150 of the 200 pages on the slow node, move_pages(2) refusing 30 as shared
    /// (EACCES) and 10 as busy (EBUSY): the scan goes on to the budget, and the outcome says how
    /// many stayed for which reason.
    @Test func pagesAPartialMoveLeavesAreCountedByTheirError() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 3000, 1: 200])
        let slowMapping: UInt64 = 0x7f00_0000_0000 + (3000 + 256) * 4096
        syscalls.pageNode = { _, address in address >= slowMapping ? 1 : 0 }
        syscalls.moveStatus = { _, address in
            let page = (address - slowMapping) / 4096
            return page < 30 ? -EACCES : page < 40 ? -EBUSY : nil
        }
        let outcome = migrator().execute(promote([700], bytes: 150 * 4096))
        #expect(outcome.stayedByError == [EACCES: 30, EBUSY: 10])
        // A promotion asks for shared pages too (MPOL_MF_MOVE_ALL), as a whole one does.
        #expect(!syscalls.moveSharing.isEmpty && syscalls.moveSharing.allSatisfy { $0 == .include })
        #expect(outcome.tasks.map(\.result) == [.partial(movedBytes: 150 * 4096, notMovedPages: 40)])
        #expect(SyscallError(EACCES).name == "EACCES" && SyscallError(9999).name == "errno 9999")
    }

    @Test func theScanOrderStartsAtTheCursorAndWrapsAround() {
        let ranges: [Range<UInt64>] = [0x1000..<0x5000, 0x8000..<0xa000]
        #expect(MoveCursors.scanOrder(ranges, from: nil) == ranges)
        #expect(MoveCursors.scanOrder(ranges, from: 0x3000) == [0x3000..<0x5000, 0x8000..<0xa000, 0x1000..<0x3000])
        #expect(MoveCursors.scanOrder(ranges, from: 0x6000) == [0x8000..<0xa000, 0x1000..<0x5000])
        #expect(MoveCursors.scanOrder(ranges, from: 0xa000) == ranges)
        // Every page once, whatever the cursor.
        for cursor in stride(from: UInt64(0), through: 0xb000, by: 0x1000) {
            #expect(MoveCursors.scanOrder(ranges, from: cursor).reduce(0) { $0 + $1.count } == 0x6000)
        }
    }

    @Test func cursorsAreDroppedWhenTooManyTasksPileUp() {
        let cursors = MoveCursors(capacity: 2)
        func task(_ pid: Int32) -> TaskIdentity { TaskIdentity(pid: pid, startTime: 50) }
        cursors.record(task: task(1), direction: .demote, stoppedAt: 0x1000)
        cursors.record(task: task(2), direction: .demote, stoppedAt: 0x2000)
        #expect(cursors.resumeAddress(task: task(1), direction: .demote) == 0x1000)
        #expect(cursors.resumeAddress(task: task(1), direction: .promote) == nil)
        // Another task given the same pid starts afresh.
        #expect(cursors.resumeAddress(task: TaskIdentity(pid: 1, startTime: 51), direction: .demote) == nil)
        cursors.record(task: task(3), direction: .demote, stoppedAt: 0x3000)
        #expect(cursors.resumeAddress(task: task(1), direction: .demote) == nil)
        #expect(cursors.resumeAddress(task: task(3), direction: .demote) == 0x3000)
        cursors.record(task: task(3), direction: .demote, stoppedAt: nil)
        #expect(cursors.resumeAddress(task: task(3), direction: .demote) == nil)
    }

    @Test func aTaskThatExitedBeforeItsMoveIsSkipped() {
        let outcome = migrator().execute(demote([700]))
        #expect(outcome.tasks.map(\.result) == [.exited])
        #expect(syscalls.calls.isEmpty)
    }

    @Test func aTaskThatExitsMidMoveIsCountedNotFatal() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.failures[700] = ESRCH
        let outcome = migrator().execute(demote([700, 701]))
        #expect(outcome.tasks.map(\.result) == [.exited, .moved(bytes: 100 * 4096)])
    }

    @Test func aPidNowInAnotherGroupIsNeverMoved() {
        tree.addTask(700, group: "other.slice/victim", pagesPerNode: [0: 100])
        let outcome = migrator().execute(demote([700]))
        #expect(outcome.tasks.map(\.result) == [.leftGroup(now: CgroupPath("other.slice/victim"))])
        #expect(syscalls.calls.isEmpty)
    }

    @Test func aPidThatChangesGroupBetweenInspectionAndTheCallIsNotMoved() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        // The numa_maps read is the slow part; simulate the pid being reused right after it.
        let reused = TaskMigratorRace(tree: tree, pid: 700)
        let outcome = reused.run(migrator(), demote([700]))
        #expect(outcome.tasks.map(\.result) == [.leftGroup(now: CgroupPath("other.slice/new"))])
        #expect(syscalls.calls.isEmpty)
    }

    @Test func aBoundTaskIsLeftAloneUnderRespectAndMovedUnderOverride() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100], policy: "bind:0")
        var outcome = migrator().execute(demote([700]))
        #expect(outcome.tasks.map(\.result) == [.mempolicy(Mempolicy(mode: .bind, nodes: NodeSet([0])))])
        #expect(syscalls.calls.isEmpty)
        outcome = migrator().execute(demote([700], mempolicy: .override))
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 100 * 4096)])
    }

    @Test func aPolicyThatIncludesATargetDoesNotBlock() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100], policy: "interleave:0-1")
        let outcome = migrator().execute(demote([700]))
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 100 * 4096)])
    }

    @Test func targetsAreRecheckedAgainstTheCpusetAtExecution() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.write("/sys/fs/cgroup/test.slice/batch/cpuset.mems.effective", "0,2\n")
        var outcome = migrator().execute(demote([700]))
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([2]), sharedPages: .leave)])
        #expect(outcome.movedBytes == 100 * 4096)
        let callsBefore = syscalls.calls.count
        tree.write("/sys/fs/cgroup/test.slice/batch/cpuset.mems.effective", "0\n")
        outcome = migrator().execute(demote([700]))
        #expect(outcome.dropped == "cpuset.mems.effective of /test.slice/batch and tierd's own cpuset now allow 0: no target left")
        #expect(syscalls.calls.count == callsBefore)
    }

    /// A pid whose task exits part-way through a move of many chunks and is given to a task of
    /// another group: before identity was checked per call, every chunk after the reuse moved
    /// the new task's pages.
    @Test func aPidReusedByAnotherGroupsTaskMidMoveMovesNothingOfTheNewTask() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 40_000])
        var moves = 0
        syscalls.beforeCall = { [tree] pid in
            guard pid == 700 else { return }
            moves += 1
            // After the first query and move, the pid names a task of another group.
            if moves == 2 { tree.addTask(700, group: "other.slice/victim", pagesPerNode: [0: 40_000], startTime: 900_000) }
        }
        syscalls.pageNode = { _, _ in 0 }
        let outcome = migrator().execute(demote([700], bytes: 30_000 * 4096, to: [1]))
        let moveCalls = syscalls.calls.filter { if case .move = $0 { true } else { false } }
        #expect(moveCalls == [.move(pid: 700, pages: 8192, to: 1)])
        #expect(outcome.tasks.map(\.result) == [.partial(movedBytes: 8192 * 4096, notMovedPages: 0)])
    }

    /// Every task of an action is pinned before the first one moves: a pid whose task exits during
    /// another task's move and is reused in the same group by its turn is not the task planned on.
    @Test func aPidReusedInTheGroupBeforeItsTurnIsNotMoved() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.beforeCall = { [tree] pid in
            if pid == 700 { tree.addTask(701, group: "test.slice/batch", pagesPerNode: [0: 100], startTime: 900_000) }
        }
        let outcome = migrator().execute(demote([700, 701]))
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .leave)])
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 100 * 4096), .exited])
    }

    /// The same with the pid reused inside the same group: the cgroup check alone passes, the
    /// start time does not.
    @Test func aPidReusedInTheSameGroupMidMoveIsNotMovedEither() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 40_000])
        var calls = 0
        syscalls.beforeCall = { [tree] pid in
            calls += 1
            if calls == 2 { tree.addTask(pid, group: "test.slice/batch", pagesPerNode: [0: 40_000], startTime: 900_000) }
        }
        let outcome = migrator().execute(demote([700], bytes: 30_000 * 4096, to: [1]))
        #expect(syscalls.calls.filter { if case .move = $0 { true } else { false } }.count == 1)
        #expect(outcome.movedBytes == 8192 * 4096)
    }

    /// A whole move is the one call: a pid reused between the task's inspection and it is not moved.
    @Test func aPidReusedBeforeAWholeMoveIsNotMoved() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [1: 100])
        // Right after the migrator pins the task (its first read of the stat).
        let reused = TaskMigratorRace(tree: tree, pid: 700, trigger: "stat", rewrite: { tree in
            tree.setStat(700, startTime: 900_000)
        })
        let outcome = reused.run(migrator(), promote([700]))
        #expect(outcome.tasks.map(\.result) == [.exited])
        #expect(syscalls.calls.isEmpty)
    }

    /// The cpuset shrinks part-way through a task's move: no chunk goes to the node it dropped.
    @Test func aCpusetChangedMidMoveStopsTheMoveBeforeTheNodeItDropped() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 40_000])
        var calls = 0
        syscalls.beforeCall = { [tree] _ in
            calls += 1
            if calls == 2 { tree.write("/sys/fs/cgroup/test.slice/batch/cpuset.mems.effective", "0,2\n") }
        }
        let outcome = migrator().execute(demote([700], bytes: 30_000 * 4096, to: [1]))
        #expect(syscalls.calls.filter { if case .move = $0 { true } else { false } } == [.move(pid: 700, pages: 8192, to: 1)])
        #expect(outcome.tasks.map(\.result) == [.cpusetChanged(now: NodeSet([0, 2]), movedBytes: 8192 * 4096)])
        #expect(outcome.movedBytes == 8192 * 4096)
    }

    /// The cpuset changes between two tasks of one action: the second goes only where it allows
    /// now (before, the targets read for the first task served the whole task set).
    @Test func eachTaskGoesOnlyWhereTheCpusetAllowsWhenItsTurnComes() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.addTask(701, group: "test.slice/batch", pagesPerNode: [0: 100])
        syscalls.afterMigrate = { [tree] pid, from, to in
            tree.relocate(pid, from: from, to: to.first!)
            if pid == 700 { tree.write("/sys/fs/cgroup/test.slice/batch/cpuset.mems.effective", "0,2\n") }
        }
        let outcome = migrator().execute(demote([700, 701]))
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .leave),
                                   .migrate(pid: 701, from: NodeSet([0]), to: NodeSet([2]), sharedPages: .leave)])
        #expect(outcome.movedBytes == 200 * 4096)
    }

    /// tierd's own cpuset bounds the targets at execution too: with CAP_SYS_NICE in effect a
    /// promotion's migrate_pages(2) does not check the task's, and silently ANDs with tierd's.
    @Test func targetsOutsideTierdsOwnCpusetAreNeverUsed() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        tree.write("/proc/self/status", "Name:\ttierd\nMems_allowed_list:\t0,2\n")
        let outcome = migrator().execute(demote([700]))
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([2]), sharedPages: .leave)])
        #expect(outcome.movedBytes == 100 * 4096)
        tree.write("/proc/self/status", "Name:\ttierd\nMems_allowed_list:\t0\n")
        let none = migrator().execute(demote([700]))
        #expect(none.dropped == "cpuset.mems.effective of /test.slice/batch and tierd's own cpuset now allow 0: no target left")
    }

    @Test func aGroupRemovedBeforeItsMoveIsDropped() {
        tree.removeGroup("test.slice/batch")
        let outcome = migrator().execute(demote([700]))
        #expect(outcome.dropped == "cgroup /test.slice/batch vanished before the move")
        #expect(syscalls.calls.isEmpty)
    }

    @Test func tierdNeverMovesItself() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        let outcome = migrator(selfPid: 700).execute(demote([700]))
        #expect(outcome.tasks.map(\.result) == [.isTierd])
    }

    @Test func dryRunMovesNothing() {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 100])
        let outcome = migrator(dryRun: true).execute(demote([700]))
        #expect(outcome.tasks.map(\.result) == [.wouldMove(bytes: 100 * 4096)])
        #expect(syscalls.calls.isEmpty)
    }
}

/// Rewrites a task's /proc/PID/cgroup after the migrator's first check, the way a pid reused
/// by another cgroup's new task would look by the time of the call.
struct TaskMigratorRace {
    let tree: FixtureTree
    let pid: Int32
    var trigger = "numa_maps"
    var rewrite: @Sendable (FixtureTree) -> Void = { tree in tree.write("/proc/700/cgroup", "0::/other.slice/new\n") }
    func run(_ migrator: TaskMigrator, _ action: MigrationAction) -> ActionOutcome {
        let files = SwitchingFiles(inner: RootedHostFiles(root: tree.root), pid: pid, tree: tree, trigger: trigger, rewrite: rewrite)
        let collector = try! SnapshotCollector(files: files)
        let racing = TaskMigrator(collector: collector, syscalls: migrator.syscalls, dryRun: false, selfPid: 1)
        return racing.execute(action)
    }
}

/// Passes reads through, and moves the pid to another group once its numa_maps has been read.
final class SwitchingFiles: HostFiles, @unchecked Sendable {
    let inner: RootedHostFiles
    let pid: Int32
    let tree: FixtureTree
    let trigger: String
    let rewrite: @Sendable (FixtureTree) -> Void
    private var fired = false
    init(inner: RootedHostFiles, pid: Int32, tree: FixtureTree, trigger: String, rewrite: @escaping @Sendable (FixtureTree) -> Void) {
        self.inner = inner; self.pid = pid; self.tree = tree; self.trigger = trigger; self.rewrite = rewrite
    }
    var root: String { inner.root }
    /// Rewrites once, after the first read of the trigger file.
    func read(_ path: String) throws(HostFileError) -> String {
        let text = try inner.read(path)
        if !fired && path == "/proc/\(pid)/\(trigger)" { fired = true; rewrite(tree) }
        return text
    }
    func write(_ path: String, _ text: String) throws(HostFileError) { try inner.write(path, text) }
    func subdirectories(_ path: String) throws(HostFileError) -> [String] { try inner.subdirectories(path) }
    func exists(_ path: String) -> Bool { inner.exists(path) }
}
