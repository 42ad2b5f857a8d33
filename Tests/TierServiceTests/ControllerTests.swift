import Foundation
import Synchronization
import Logging
import Testing
import TierCore
import TierLinux
import TierService
import TierTestSupport

/// The control loop's body end to end on a fixture tree: collect, plan, migrate, account.
struct ControllerTests {
    static let mib: UInt64 = 1 << 20
    let tree: FixtureTree
    let syscalls = RecordingSyscalls()
    /// Policy file and journal, inside the fixture tree so that they go with it.
    let dir: String

    static let policyText = """
    controller: {interval: 1s}
    workloads:
      - name: db
        match: ["test.slice/db"]
        demote: never
      - name: batch
        match: ["test.slice/batch"]
        demote: allowed
    """

    init() throws {
        tree = try FixtureTree()
        dir = tree.root + "/tierd-test"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func controller(policyText: String = ControllerTests.policyText, audit: AuditLog? = nil) throws -> (TierController, String) {
        let path = dir + "/tierd.yaml"
        try policyText.write(toFile: path, atomically: true, encoding: .utf8)
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root))
        let migrator = TaskMigrator(collector: collector, syscalls: syscalls, dryRun: false, selfPid: 1)
        let journal = try Journal(path: dir + "/journal.jsonl")
        let controller = TierController(policy: try PolicyFileLoader.load(path: path), collector: collector,
                                        migrator: migrator, logger: Logger(label: "test"), journal: journal, audit: audit)
        return (controller, path)
    }

    /// DRAM with `dramFree` MiB free, 900 MiB free on node 1, and the batch group's one task (800)
    /// with `batch` MiB on DRAM.
    func batchOnDRAM(dramFree: UInt64, batch: UInt64) {
        tree.setNode(0, freeBytes: dramFree * Self.mib)
        tree.setNode(1, freeBytes: 900 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: batch * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: batch * 256])
    }

    /// After a quiet tick with free DRAM above high, the next leaves the opted-in group unread and
    /// keeps what the last full read found; a minute after that read, every group is read again.
    @Test func anIdleTickLeavesOptedInGroupsUnreadUntilAMinuteHasPassed() async throws {
        tree.setNode(0, freeBytes: 600 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 100 * Self.mib])
        tree.addGroup("test.slice/db", pids: [700], anon: [0: 50 * Self.mib])
        let (controller, _) = try controller()
        func batchPids(_ report: TickReport) -> [Int32]? { report.snapshot?.groups.first { $0.path == CgroupPath("test.slice/batch") }?.pids }
        let first = await controller.tick(now: Instant(.seconds(1)))
        #expect(first.snapshot?.carried == [])
        #expect(TickPacing.isQuiet(first.plan, settings: controller.policy.controller))
        tree.addGroup("test.slice/batch", pids: [800, 801], anon: [0: 120 * Self.mib])
        tree.addGroup("test.slice/db", pids: [700, 701], anon: [0: 60 * Self.mib])
        let second = await controller.tick(now: Instant(.seconds(11)))
        #expect(second.snapshot?.carried == [CgroupPath("test.slice/batch")])
        #expect(batchPids(second) == [800])
        #expect(second.snapshot?.groups.first { $0.path == CgroupPath("test.slice/db") }?.pids == [700, 701])
        // The daemon's status says whose figures are kept from an earlier read, and how old they are.
        let status = DaemonStatusBuilder.build(report: second, policy: controller.policy, policyState: .init(file: "t.yaml", generation: 1),
                                               carried: controller.carried, ledger: controller.ledger, tickSeconds: 0.1, dryRun: false)
        func readAge(_ path: String) -> Double? { status.groups.first { $0.path == path }?.readSecondsAgo }
        #expect(readAge("/test.slice/batch") == 10)
        #expect(readAge("/test.slice/db") == 0)
        #expect(StatusText.render(status).contains("10 s ago"))
        let third = await controller.tick(now: Instant(.seconds(61)))
        #expect(third.snapshot?.carried == [])
        #expect(batchPids(third) == [800, 801])
    }

    /// Not while the kernel's reclaim demotes (the memory.low shield is sized from every shielded
    /// group), and not on the tick after a manual move: then every group is read.
    @Test func noGroupIsCarriedWhileTheKernelDemotesOrAfterAManualMove() async throws {
        batchOnDRAM(dramFree: 600, batch: 100)
        let (controller, _) = try controller()
        _ = await controller.tick(now: Instant(.seconds(1)))
        #expect(await controller.tick(now: Instant(.seconds(11))).snapshot?.carried == [CgroupPath("test.slice/batch")])
        _ = await controller.runManual(id: 1, ManualRequest(direction: .demote, group: CgroupPath("test.slice/batch"), bytes: 16 * Self.mib),
                                       now: Instant(.seconds(12)))
        #expect(await controller.tick(now: Instant(.seconds(13))).snapshot?.carried == [])
        #expect(await controller.tick(now: Instant(.seconds(23))).snapshot?.carried == [CgroupPath("test.slice/batch")])
        tree.write(KernelPaths.demotionEnabled, "true\n")
        #expect(await controller.tick(now: Instant(.seconds(33))).snapshot?.carried == [])
        #expect(await controller.tick(now: Instant(.seconds(43))).snapshot?.carried == [])
    }

    /// One quiet tick, then the db group has 280 MiB on the slow node: more than DRAM has room for.
    func quietTickThenDBOnTheSlowNode(_ controller: TierController) async {
        let first = await controller.tick(now: Instant(.seconds(1)))
        #expect(TickPacing.isQuiet(first.plan, settings: controller.policy.controller))
        tree.addGroup("test.slice/db", pids: [700], anon: [0: 50 * Self.mib, 1: 280 * Self.mib])
        tree.addTask(700, group: "test.slice/db", pagesPerNode: [0: 12_800, 1: 71_680])
    }

    /// A carried group that had no tasks at the last read cannot cover a promotion's shortfall, so
    /// the carried plan demotes nothing although it asks for room: it is made again from a full read.
    @Test func aCarriedTickThatAsksForRoomIsPlannedAgainEvenIfItDemotesNothing() async throws {
        tree.setNode(0, freeBytes: 300 * Self.mib)
        tree.setNode(1, freeBytes: 900 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [], anon: [0: 500 * Self.mib])
        tree.addGroup("test.slice/db", pids: [700], anon: [0: 50 * Self.mib])
        let (controller, _) = try controller()
        await quietTickThenDBOnTheSlowNode(controller)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 500 * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 128_000])
        let report = await controller.tick(now: Instant(.seconds(11)))
        #expect(report.snapshot?.carried == [])
        #expect(report.plan.actions.contains { $0.direction == .demote && $0.pids == [800] })
    }

    /// A protected group that needs more room than is free makes the idle tick demote: that plan is
    /// made again from every group read now, so the demotion names the batch job's new task.
    @Test func aCarriedTickThatDemotesIsPlannedAgainFromAFullRead() async throws {
        batchOnDRAM(dramFree: 300, batch: 500)
        tree.addGroup("test.slice/db", pids: [700], anon: [0: 50 * Self.mib])
        let (controller, _) = try controller()
        await quietTickThenDBOnTheSlowNode(controller)
        tree.addGroup("test.slice/batch", pids: [800, 801], anon: [0: 500 * Self.mib])
        tree.addTask(801, group: "test.slice/batch", pagesPerNode: [0: 25_600])
        let report = await controller.tick(now: Instant(.seconds(11)))
        #expect(report.snapshot?.carried == [])
        #expect(report.plan.actions.contains { $0.direction == .demote && $0.pids.contains(801) })
        #expect(report.plan.actions.contains { $0.direction == .promote && $0.group == CgroupPath("test.slice/db") })
    }

    /// Before, the tokens a planned action spent stayed spent when it moved nothing: the rate
    /// limit throttled moves that never happened.
    @Test func aMoveThatFailedGivesItsRateTokensBack() async throws {
        batchOnDRAM(dramFree: 60, batch: 600)
        syscalls.failures[800] = EBUSY
        let (controller, _) = try controller(policyText: Self.policyText.replacingOccurrences(
            of: "controller: {interval: 1s}", with: "controller: {interval: 1s, rate_limit: 256MiB/s}"))
        let report = await controller.tick(now: Instant(.seconds(1)))
        #expect(report.plan.actions.map(\.direction) == [.demote])
        #expect(report.outcomes.first?.movedBytes == 0)
        #expect(controller.carried.globalBucket?.tokens == 256 * Self.mib)
    }

    /// The 7.3 lab's case: the first candidate's only task is bound to DRAM, so its demotion
    /// moves nothing. Before, every tick planned it again and the other opted-in group, with
    /// room on the slow node, was never asked; now the next tick (soon after: `newlyHeldBack`)
    /// demotes the other group.
    @Test func aSourceWhoseTasksAllRefusedIsPassedOverForTheNext() async throws {
        tree.setNode(0, freeBytes: 60 * Self.mib)
        tree.setNode(1, freeBytes: 900 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 600 * Self.mib])
        tree.addGroup("test.slice/other", pids: [810], anon: [0: 300 * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 153_600], policy: "bind:0")
        tree.addTask(810, group: "test.slice/other", pagesPerNode: [0: 76_800])
        let policy = Self.policyText + "\n  - {name: other, match: [\"test.slice/other\"], demote: allowed, priority: 20}\n"
        let (controller, _) = try controller(policyText: policy)
        let first = await controller.tick(now: Instant(.seconds(1)))
        #expect(first.outcomes.map(\.action.group) == [CgroupPath("test.slice/batch")])
        #expect(first.outcomes.first?.movedBytes == 0)
        #expect(first.newlyHeldBack)
        let second = await controller.tick(now: Instant(.seconds(2)))
        #expect(second.outcomes.map(\.action.group) == [CgroupPath("test.slice/other")], "\(second.plan.actions)")
        #expect((second.outcomes.first?.movedBytes ?? 0) > 0)
        #expect(second.plan.skips.contains { $0.group == CgroupPath("test.slice/batch") && $0.reason.code == "demotion_moved_nothing" })
    }

    /// Pods come and go: the per-group figures of a removed group are dropped, its bytes stay in the totals.
    @Test func aRemovedGroupLeavesTheLedgerButNotItsTotals() async throws {
        batchOnDRAM(dramFree: 60, batch: 600)
        let (controller, _) = try controller()
        _ = await controller.tick(now: Instant(.seconds(1)))
        let demoted = controller.ledger.total(.demote)
        #expect(demoted > 0 && controller.ledger.bytesMoved[CgroupPath("test.slice/batch")] != nil)
        tree.removeTask(800)
        tree.removeGroup("test.slice/batch")
        _ = await controller.tick(now: Instant(.seconds(2)))
        #expect(controller.ledger.bytesMoved.isEmpty)
        #expect(controller.ledger.total(.demote) == demoted)
    }

    @Test func aTickDemotesPromotesAndAccountsEveryByte() async throws {
        tree.setNode(0, freeBytes: 60 * Self.mib)
        tree.setNode(1, freeBytes: 900 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800, 801], anon: [0: 600 * Self.mib])
        tree.addGroup("test.slice/db", pids: [900], anon: [1: 40 * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 25_600])   // 100 MiB
        tree.addTask(801, group: "test.slice/batch", pagesPerNode: [0: 128_000])  // 500 MiB
        tree.addTask(900, group: "test.slice/db", pagesPerNode: [1: 10_240])      // 40 MiB
        syscalls.failures[800] = ESRCH  // exits mid-move
        syscalls.pageNode = { pid, _ in pid == 900 ? 1 : 0 }
        // The kernel's part: DRAM free grows as the batch job leaves it (the late promotion
        // re-reads it before moving).
        syscalls.afterMove = { [tree] _, pages, node in tree.accountMove(bytes: UInt64(pages) * 4096, from: node == 0 ? 1 : 0, to: node) }
        let (controller, _) = try controller()
        let report = await controller.tick(now: Instant(.seconds(1)))
        // 60 MiB free is 9.7 MiB above the promotion reserve: that much is promoted first, then the
        // batch job is demoted to make room for the rest, which follows; then the rest of the
        // watermark's demotion.
        #expect(report.plan.actions.map(\.direction) == [.promote, .demote, .promote, .demote])
        #expect(report.outcomes[1].tasks.map(\.result.code) == ["exited", "moved"])
        let promoted = controller.ledger.total(.promote)
        #expect(promoted <= 40 * Self.mib + 8192 && promoted >= 40 * Self.mib - 8192)
        #expect(controller.ledger.bytesMoved[CgroupPath("test.slice/db")]?[.promote] == promoted)
        #expect(controller.ledger.total(.demote) == report.outcomes[1].movedBytes + report.outcomes[3].movedBytes)
        #expect(controller.ledger.total(.demote) > 0)
        // pid 800 exits mid-move: counted in each of the two demotions that reach it.
        #expect(controller.ledger.taskResults["exited"] == 2)
        let journal = try String(contentsOfFile: dir + "/journal.jsonl", encoding: .utf8)
        #expect(journal.contains("\"event\":\"action\""))
        #expect(journal.contains("\"direction\":\"promote\""))
    }

    /// 40 MiB free, below the promotion reserve (about 50 MiB), and a protected job with 40 MiB on
    /// the slow node: the tick's room-making demotion frees 40 MiB, which the promotion takes
    /// while keeping the 40 MiB that were free; the watermark's demotion goes on after it.
    /// The fixture plays the kernel's part in each move_pages call (node free memory follows).
    func roomMakingTick() {
        tree.setNode(0, freeBytes: 40 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 600 * Self.mib])
        tree.addGroup("test.slice/db", pids: [900], anon: [1: 40 * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 153_600])
        tree.addTask(900, group: "test.slice/db", pagesPerNode: [1: 10_240])
        syscalls.pageNode = { pid, _ in pid == 900 ? 1 : 0 }
        syscalls.afterMove = { [tree] _, pages, node in tree.accountMove(bytes: UInt64(pages) * 4096, from: node == 0 ? 1 : 0, to: node) }
    }

    /// The pages promoted and demoted, call by call: the promotion never ahead of the room made.
    func promotedNeverAheadOfDemoted(by taken: Int = 0) -> (demoted: Int, promoted: Int) {
        var demoted = 0, promoted = 0
        for call in syscalls.calls {
            guard case .move(let pid, let pages, _) = call else { continue }
            if pid == 800 { demoted += pages } else { promoted += pages }
            #expect(promoted == 0 || promoted + taken <= demoted)
        }
        return (demoted, promoted)
    }

    /// The room-making demotion and the promotion into it run in two lanes; whatever the threads'
    /// interleaving, no promotion batch is sent before the demotion has freed that much.
    @Test func aPromotionRunsBesideTheDemotionMakingItsRoomAndNeverAheadOfIt() async throws {
        roomMakingTick()
        let (controller, _) = try controller()
        let report = await controller.tick(now: Instant(.seconds(1)))
        #expect(report.plan.actions.map(\.direction) == [.demote, .promote, .demote])
        #expect(report.plan.actions[0].makesRoom && report.plan.actions[1].usesRoomMade && !report.plan.actions[2].makesRoom)
        #expect(report.plan.actions[1].keepFreeOnTargets == 40 * Self.mib)
        #expect(report.outcomes.map(\.action) == report.plan.actions)
        #expect(report.outcomes[1].movedBytes == 40 * Self.mib)
        #expect(promotedNeverAheadOfDemoted().promoted == 10_240)
    }

    /// Another allocation takes 8 MiB of the room the first demotion batch frees: the promotion
    /// takes the rest from the watermark's demotion in the same tick, instead of waiting a tick.
    @Test func aPromotionShortOfRoomTakesItFromTheWatermarksDemotionInTheSameTick() async throws {
        roomMakingTick()
        let taken = Mutex(false)
        syscalls.afterMove = { [tree] pid, pages, node in
            // Taken before the first batch's room shows, so that it is never seen free.
            if pid == 800, taken.withLock({ let first = !$0; $0 = true; return first }) {
                tree.accountMove(bytes: 8 * Self.mib, from: 1, to: 0)
            }
            tree.accountMove(bytes: UInt64(pages) * 4096, from: node == 0 ? 1 : 0, to: node)
        }
        let (controller, _) = try controller()
        let report = await controller.tick(now: Instant(.seconds(1)))
        #expect(report.plan.actions.map(\.direction) == [.demote, .promote, .demote])
        #expect(report.plan.actions[0].bytes == 40 * Self.mib)
        #expect(report.outcomes[1].movedBytes == 40 * Self.mib)
        // Never ahead of the room made less the 8 MiB the other allocation took; all 40 MiB came
        // back, more than the room-making demotion alone freed.
        #expect(promotedNeverAheadOfDemoted(by: 2048).promoted == 10_240)
    }

    @Test func withoutParallelMovesOneThreadRunsThePlanInOrder() async throws {
        roomMakingTick()
        syscalls.afterMigrate = { [tree] pid, from, to in tree.relocate(pid, from: from, to: to.first!) }
        let (controller, _) = try controller(policyText: Self.policyText.replacingOccurrences(
            of: "{interval: 1s}", with: "{interval: 1s, parallel_moves: false}"))
        let report = await controller.tick(now: Instant(.seconds(1)))
        #expect(report.plan.actions.map(\.direction) == [.demote, .promote, .demote])
        // Unpaced, the promotion moves whole once the room is made, and the extra demotion waits for it.
        let calls = syscalls.calls
        let promotion = try #require(calls.firstIndex(of: .migrate(pid: 900, from: NodeSet([1]), to: NodeSet([0]), sharedPages: .include)))
        #expect(calls[..<promotion].allSatisfy { if case .move(800, _, _) = $0 { true } else if case .query(800, _) = $0 { true } else { false } })
        #expect(calls[(promotion + 1)...].contains { if case .move(800, _, _) = $0 { true } else { false } })
        #expect(report.outcomes[1].movedBytes == 40 * Self.mib)
    }

    @Test func aPromotionThatMovesNothingIsNotRetriedEveryTick() async throws {
        tree.setNode(0, freeBytes: 600 * Self.mib)
        tree.addGroup("test.slice/db", pids: [900], anon: [1: 40 * Self.mib])
        tree.addTask(900, group: "test.slice/db", pagesPerNode: [1: 10_240])
        syscalls.failures[900] = EBUSY
        let (controller, _) = try controller()
        let first = await controller.tick(now: Instant(.seconds(1)))
        #expect(first.plan.actions.map(\.direction) == [.promote])
        #expect(first.outcomes.first?.movedBytes == 0)
        let second = await controller.tick(now: Instant(.seconds(2)))
        #expect(second.plan.actions.isEmpty)
        #expect(second.plan.skips.contains { $0.group == CgroupPath("test.slice/db") && $0.reason.code == "stuck_on_slow_nodes" })
    }

    @Test func aBadReloadKeepsTheRunningPolicy() throws {
        let (controller, path) = try controller()
        let before = controller.policy
        try "workloads:\n  - name: x\n    demote: sometimes\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!controller.reload(path: path))
        #expect(controller.policy == before)
        try "workloads: []\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(controller.reload(path: path))
        #expect(controller.policy.workloads.isEmpty)
    }

    @Test func theOncePlanGivesAReasonForEveryActionAndSkip() async throws {
        // 150 MiB free: 99.7 MiB above the promotion reserve (half the low watermark), less than the
        // protected job's 100 MiB; the batch group, the only one that could make room, is cpuset-bound.
        tree.setNode(0, freeBytes: 150 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 600 * Self.mib], cpuset: "0")
        tree.addGroup("test.slice/db", pids: [900], anon: [1: 100 * Self.mib])
        tree.addTask(900, group: "test.slice/db", pagesPerNode: [1: 25_600])
        syscalls.pageNode = { _, _ in 1 }
        let (controller, _) = try controller()
        let report = await controller.tick(now: Instant(.zero))
        let text = PlanDocument(report, dryRun: false).text
        #expect(text.contains("action 1: promote /test.slice/db [db] 99.7 MiB nodes 1 -> 0 (1 tasks): protected workload has 100.0 MiB on slow nodes"))
        #expect(text.contains("  pid 900: moved 99.7 MiB"))
        #expect(text.contains("skip /test.slice/db [db]: needs 322.6 KiB of DRAM and none can be made"))
        #expect(text.contains("skip /test.slice/batch [batch]: no target node: slow nodes 1-2 ∩ cpuset 0 is empty"))
        #expect(text.contains("skip /batch.slice/job2 [default]: 64.1 MiB on slow nodes, but promotion is off for this workload"))
    }

    /// A manual demotion: planned on a fresh snapshot, moved by the same migrator, charged to the
    /// rate limit and recorded (ledger, audit with its manual reason, journal "manual"); a refusal
    /// moves nothing and is journaled.
    @Test func aManualMoveIsMovedChargedAndRecordedLikeTheDaemonsOwn() async throws {
        tree.setNode(0, freeBytes: 600 * Self.mib)
        tree.setNode(1, freeBytes: 900 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 300 * Self.mib])
        tree.addGroup("test.slice/db", pids: [900], anon: [0: 40 * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 76_800])
        tree.addTask(900, group: "test.slice/db", pagesPerNode: [0: 10_240])
        syscalls.pageNode = { _, _ in 0 }
        let policy = ControllerTests.policyText.replacingOccurrences(of: "{interval: 1s}", with: "{interval: 1s, rate_limit: 1GiB/s}")
        let (audited, _) = try controller(policyText: policy, audit: try AuditLog(path: dir + "/audit.jsonl", maxBytes: 1 << 20))
        _ = await audited.tick(now: Instant(.seconds(1)))
        #expect(syscalls.calls.isEmpty)
        let tokensBefore = try #require(audited.carried.globalBucket?.tokens)

        let request = ManualRequest(direction: .demote, group: CgroupPath("test.slice/batch"), bytes: 64 * Self.mib)
        let result = await audited.runManual(id: 1, request, now: Instant(.seconds(2)))
        #expect(result.state == .done && result.plannedBytes == 64 * Self.mib)
        let moved = try #require(result.movedBytes)
        #expect(moved > 60 * Self.mib && moved <= 64 * Self.mib)
        #expect(syscalls.calls.allSatisfy { if case .move(let pid, _, let node) = $0 { pid == 800 && node == 1 } else { true } })
        #expect(audited.ledger.total(.demote) == moved)
        #expect(audited.lastManualOutcome?.movedBytes == moved)
        let tokensAfter = try #require(audited.carried.globalBucket?.tokens)
        #expect(tokensBefore - tokensAfter == moved)
        let auditText = try String(contentsOfFile: dir + "/audit.jsonl", encoding: .utf8)
        #expect(auditText.contains("\"reason\":\"manual: tierctl demote (asked 64.0 MiB)\""))
        var journal = try String(contentsOfFile: dir + "/journal.jsonl", encoding: .utf8)
        #expect(journal.contains("\"event\":\"manual\""))

        let callsBefore = syscalls.calls.count
        let refused = await audited.runManual(id: 2, ManualRequest(direction: .demote, group: CgroupPath("test.slice/db")), now: Instant(.seconds(3)))
        #expect(refused.state == .refused && refused.refusal == "opted_out")
        #expect(syscalls.calls.count == callsBefore && audited.lastManualOutcome == nil)
        journal = try String(contentsOfFile: dir + "/journal.jsonl", encoding: .utf8)
        #expect(journal.contains("\"event\":\"manual_refused\""))
    }
}
