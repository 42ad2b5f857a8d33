import Testing
import TierCore
import TierLinux
import TierTestSupport

/// `tierctl demote`/`promote` turned into one action: placement rules bind as for tierd's own moves,
/// on snapshots the real collector reads from the captured 6.12 guest tree (node0 DRAM 1006 MiB;
/// nodes 1 and 2 slow, 906 and 1005 MiB).
struct ManualPlannerTests {
    static let mib: UInt64 = 1 << 20
    static let yaml = """
    controller: {dram: {low: 10%, high: 20%}}
    workloads:
      - {name: db, match: [test.slice/db], demote: never}
      - {name: batch, match: [test.slice/batch], demote: allowed}
      - {name: floored, match: [test.slice/floored], demote: allowed, dram_floor: 256MiB}
    """

    let tree: FixtureTree
    init() throws {
        tree = try FixtureTree()
        tree.setFree(mib: [0: 100, 1: 800, 2: 800])
    }

    func action(_ direction: MigrationAction.Direction, _ group: String, bytes: UInt64? = nil) throws -> Result<MigrationAction, ManualRefusal> {
        let policy = try PolicyCompiler.compile(yaml: Self.yaml, file: "test.yaml")
        let snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: policy.tiers)
        return ManualPlanner.action(for: ManualRequest(direction: direction, group: CgroupPath(group), bytes: bytes), snapshot: snapshot, policy: policy)
    }

    func refusal(_ result: Result<MigrationAction, ManualRefusal>) -> ManualRefusal? {
        if case .failure(let why) = result { return why }
        return nil
    }

    @Test func aDemotionMovesAtMostTheBytesAskedToTheSlowNodesOfTheCpuset() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 400 * Self.mib], cpuset: "0-1")
        let move = try action(.demote, "test.slice/batch", bytes: 64 * Self.mib).get()
        #expect(move.direction == .demote && move.bytes == 64 * Self.mib)
        #expect(move.from == NodeSet([0]) && move.to == [1])
        #expect(move.pids == [500] && move.workload == "batch")
        #expect(move.reason == "manual: tierctl demote (asked 64.0 MiB)")
    }

    @Test func withoutBytesADemotionTakesAllTheGroupsDRAM() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 400 * Self.mib])
        let move = try action(.demote, "test.slice/batch").get()
        #expect(move.bytes == 400 * Self.mib)
        #expect(move.reason.hasSuffix("(asked all)"))
    }

    @Test func aDemotionStopsAtTheDRAMFloor() throws {
        tree.addGroup("test.slice/floored", pids: [500], anon: [0: 300 * Self.mib])
        #expect(try action(.demote, "test.slice/floored").get().bytes == 44 * Self.mib)
        tree.addGroup("test.slice/floored", pids: [500], anon: [0: 200 * Self.mib])
        #expect(refusal(try action(.demote, "test.slice/floored")) == .atDramFloor(fastBytes: 200 * Self.mib, floor: 256 * Self.mib))
    }

    @Test func aDemotionKeepsTwoPercentOfItsTargetsFree() throws {
        tree.setNode(1, freeBytes: 30 * Self.mib)
        tree.setNode(2, freeBytes: 10 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 400 * Self.mib])
        let move = try action(.demote, "test.slice/batch").get()
        let keep = UInt64(Double((928_132 + 1_029_164) * 1024) * ManualPlanner.slowKeepFreeShare)
        #expect(move.bytes == 40 * Self.mib - keep)
        #expect(move.keepFreeOnTargets == keep)
        tree.setNode(1, freeBytes: 10 * Self.mib)
        #expect(refusal(try action(.demote, "test.slice/batch"))?.code == "no_room")
    }

    /// On small slow nodes the kernel's watermarks (with the per-CPU lists) are more than 2 %.
    @Test func aDemotionKeepsSmallTargetsAboveTheirHighWatermark() throws {
        tree.setNode(1, freeBytes: 40 * Self.mib, totalBytes: 200 * Self.mib)
        tree.setNode(2, freeBytes: 40 * Self.mib, totalBytes: 200 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 400 * Self.mib])
        let topology = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).topology(selection: .auto)
        let reserve = try #require(topology.node(1)?.reserve) + (try #require(topology.node(2)?.reserve))
        #expect(reserve > UInt64(Double(400 * Self.mib) * ManualPlanner.slowKeepFreeShare))
        let move = try action(.demote, "test.slice/batch").get()
        #expect(move.keepFreeOnTargets == reserve && move.bytes == 80 * Self.mib - reserve)
    }

    @Test func refusalsNameTheRuleThatBinds() throws {
        tree.addGroup("test.slice/db", pids: [500], anon: [0: 100 * Self.mib])
        tree.addGroup("test.slice/batch/dram-only", pids: [501], anon: [0: 100 * Self.mib], cpuset: "0")
        tree.addGroup("test.slice/batch/empty", anon: [0: 100 * Self.mib])
        tree.addGroup("test.slice/batch/slow", pids: [502], anon: [1: 100 * Self.mib])
        #expect(refusal(try action(.demote, "test.slice/db")) == .optedOut(workload: "db"))
        #expect(refusal(try action(.demote, "test.slice/batch/dram-only"))?.code == "no_target_nodes")
        #expect(refusal(try action(.demote, "test.slice/batch/empty")) == .noTasks)
        #expect(refusal(try action(.demote, "test.slice/batch/slow")) == .nothingToMove(tier: "DRAM"))
        #expect(refusal(try action(.promote, "test.slice/db")) == .nothingToMove(tier: "slow"))
        #expect(refusal(try action(.demote, "test.slice/nowhere")) == .noSuchGroup)
    }

    @Test func aPromotionLeavesDRAMFreeAtTheHighWatermark() throws {
        tree.setNode(0, freeBytes: 400 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [500], anon: [1: 300 * Self.mib, 2: 100 * Self.mib])
        let move = try action(.promote, "test.slice/batch").get()
        let high = UInt64(Double(1_030_452 * 1024) * 0.2)
        #expect(move.bytes == 400 * Self.mib - high)
        #expect(move.from == NodeSet([1, 2]) && move.to == [0])
        #expect(try action(.promote, "test.slice/batch", bytes: 10 * Self.mib).get().bytes == 10 * Self.mib)
        tree.setNode(0, freeBytes: 150 * Self.mib)
        #expect(refusal(try action(.promote, "test.slice/batch"))?.code == "no_room")
    }

    @Test func anOptOutPromotionMayUseDRAMDownToHalfTheLowWatermark() throws {
        tree.setNode(0, freeBytes: 150 * Self.mib)
        tree.addGroup("test.slice/db", pids: [500], anon: [1: 300 * Self.mib])
        let move = try action(.promote, "test.slice/db").get()
        #expect(move.bytes == 150 * Self.mib - UInt64(Double(1_030_452 * 1024) * 0.05))
    }
}
