import Testing
import TierCore
import TierLinux
import TierTestSupport

/// Which groups an idle tick may leave unread, and what the planner makes of them; on snapshots
/// the real collector reads from fixture trees on the captured 6.12 guest (node0 DRAM ~1006 MiB).
struct GroupCarryingTests {
    static let mib: UInt64 = 1 << 20
    static let yaml = """
    controller: {interval: 2s, dram: {low: 10%, high: 20%}}
    workloads:
      - {name: db, match: ["test.slice/db"], demote: never}
      - {name: batch, match: ["test.slice/batch", "test.slice/db/helper"], demote: allowed}
    """
    let tree: FixtureTree
    let policy: Policy

    init() throws {
        tree = try FixtureTree()
        policy = try PolicyCompiler.compile(yaml: Self.yaml, file: "test.yaml")
        tree.addGroup("test.slice/db", pids: [400], anon: [0: 100 * Self.mib])
        tree.addGroup("test.slice/db/helper", pids: [401], anon: [0: 10 * Self.mib])
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 200 * Self.mib])
        tree.addGroup("test.slice/batch/part", pids: [501], anon: [0: 50 * Self.mib])
    }

    func snapshot() throws -> HostSnapshot {
        try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: policy.tiers)
    }

    func quiet(_ snapshot: HostSnapshot) -> MigrationPlan {
        Planner.plan(snapshot: snapshot, policy: policy, state: ControllerState(), now: Instant(.seconds(10))).0
    }

    /// Opted-in groups are carried: wholly under an opted-in parent, with their numa_stat read under
    /// any other (the parent's own bytes need it); opt-out groups and the default's are read.
    @Test func optedInGroupsAreCarriedAndTheirNumaStatReadUnderOtherParents() throws {
        let carried = GroupCarrying.carried(from: try snapshot(), policy: policy)
        #expect(carried.mapValues(\.readsNumaStat) == [CgroupPath("test.slice/batch"): true, CgroupPath("test.slice/batch/part"): false,
                                                         CgroupPath("test.slice/db/helper"): true])
    }

    /// At the top level too: an opted-in group with a child that is not opted in reads its numa_stat
    /// (its own bytes are its numa_stat less that child's, read afresh); one whose children are all
    /// opted in is not read at all.
    @Test func anOptedInGroupWithAChildReadAfreshReadsItsNumaStat() throws {
        let yaml = Self.yaml + "\n  - {name: top, match: [top, top2], demote: allowed}\n  - {name: kept, match: [top/keep], demote: never}\n"
        let topPolicy = try PolicyCompiler.compile(yaml: yaml, file: "test.yaml")
        tree.addGroup("top/keep", pids: [600], anon: [0: 10 * Self.mib])
        tree.addGroup("top2/part", pids: [601], anon: [0: 10 * Self.mib])
        let last = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: topPolicy.tiers)
        let carried = GroupCarrying.carried(from: last, policy: topPolicy)
        #expect(carried[CgroupPath("top")]?.readsNumaStat == true)
        #expect(carried[CgroupPath("top2")]?.readsNumaStat == false)
        #expect(carried[CgroupPath("top2/part")]?.readsNumaStat == false)
        #expect(carried[CgroupPath("top/keep")] == nil)
    }

    @Test func aQuietTickWithFreeDRAMAboveHighMayCarry() throws {
        tree.setNode(0, freeBytes: 400 * Self.mib)
        let last = try snapshot()
        let plan = quiet(last)
        #expect(TickPacing.isQuiet(plan, settings: policy.controller))
        let recent: Duration = .seconds(10)
        #expect(GroupCarrying.mayCarry(previous: plan, sinceFullRead: recent, topology: last.topology, dramFallRate: 0, settings: policy.controller))
        // Not without a quiet tick before, a full read within the minute, or free DRAM above high one lookahead ahead.
        #expect(!GroupCarrying.mayCarry(previous: nil, sinceFullRead: recent, topology: last.topology, dramFallRate: 0, settings: policy.controller))
        #expect(!GroupCarrying.mayCarry(previous: plan, sinceFullRead: nil, topology: last.topology, dramFallRate: 0, settings: policy.controller))
        #expect(!GroupCarrying.mayCarry(previous: plan, sinceFullRead: .seconds(60), topology: last.topology, dramFallRate: 0, settings: policy.controller))
        #expect(!GroupCarrying.mayCarry(previous: plan, sinceFullRead: recent, topology: last.topology, dramFallRate: 250 * Self.mib,
                                        settings: policy.controller))
        var busy = plan
        busy.summary.promotionNeed = Self.mib
        #expect(!GroupCarrying.mayCarry(previous: busy, sinceFullRead: recent, topology: last.topology, dramFallRate: 0, settings: policy.controller))
        tree.setNode(0, freeBytes: 150 * Self.mib)
        #expect(!GroupCarrying.mayCarry(previous: plan, sinceFullRead: recent, topology: try snapshot().topology, dramFallRate: 0,
                                        settings: policy.controller))
    }

    /// The collector lists a carried group and its children without reading its files: its entry is
    /// the one given, a new child is read, and a removed group is gone.
    @Test func theCollectorKeepsCarriedEntriesAndReadsTheRest() throws {
        let last = try snapshot()
        let carried = GroupCarrying.carried(from: last, policy: policy)
        tree.addGroup("test.slice/batch", pids: [500, 502], anon: [0: 300 * Self.mib])
        tree.addGroup("test.slice/db", pids: [400], anon: [0: 80 * Self.mib], file: [1: 20 * Self.mib])
        tree.addGroup("test.slice/batch/new", pids: [503], anon: [0: 5 * Self.mib])
        tree.remove(tree.cgroupMount + "/test.slice/batch/part")
        let counting = CountingHostFiles(RootedHostFiles(root: tree.root))
        let now = try SnapshotCollector(files: counting).collect(selection: policy.tiers, carrying: { _ in carried })
        let byPath = Dictionary(uniqueKeysWithValues: now.groups.map { ($0.path, $0) })
        #expect(now.carried == [CgroupPath("test.slice/batch"), CgroupPath("test.slice/db/helper")])
        // The batch group's numa_stat is new (test.slice is not opted in), its tasks the last read's.
        #expect(byPath[CgroupPath("test.slice/batch")]?.pids == [500])
        #expect(byPath[CgroupPath("test.slice/batch")]?.numaStat.bytes(on: 0) == 300 * Self.mib)
        #expect(byPath[CgroupPath("test.slice/batch/new")]?.pids == [503])
        #expect(byPath[CgroupPath("test.slice/batch/part")] == nil)
        #expect(byPath[CgroupPath("test.slice/db")]?.numaStat.bytes(on: 1) == 20 * Self.mib)
        #expect(counting.reads(named: "cgroup.procs") == now.groups.count - 2)
        #expect(counting.reads(named: "memory.numa_stat") == now.groups.count)
    }

    /// Under an opted-in parent a carried group is not read at all: its entry is the last read's.
    @Test func aGroupUnderAnOptedInParentIsListedOnly() throws {
        let last = try snapshot()
        let carried = GroupCarrying.carried(from: last, policy: policy)
        tree.addGroup("test.slice/batch/part", pids: [501, 504], anon: [0: 90 * Self.mib])
        let counting = CountingHostFiles(RootedHostFiles(root: tree.root))
        let now = try SnapshotCollector(files: counting).collect(selection: policy.tiers, carrying: { _ in carried })
        let part = CgroupPath("test.slice/batch/part")
        #expect(now.groups.first { $0.path == part } == last.groups.first { $0.path == part })
        #expect(counting.reads(named: "memory.numa_stat") == now.groups.count - 1)
    }

    /// A group's stall share is measured over the time since it was read: carried ticks leave
    /// its totals as they were, and the next read divides by the whole minute, not by one tick.
    @Test func stallIsMeasuredSinceTheGroupWasLastRead() throws {
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 200 * Self.mib], someTotal: 0)
        var state = Planner.plan(snapshot: try snapshot(), policy: policy, state: ControllerState(), now: Instant(.seconds(0))).1
        var carriedTick = try snapshot()
        carriedTick.carried = [CgroupPath("test.slice/batch")]
        state = Planner.plan(snapshot: carriedTick, policy: policy, state: state, now: Instant(.seconds(10))).1
        #expect(state.pressureTotals[CgroupPath("test.slice/batch")]?.at == Instant(.seconds(0)))
        // 6 s of stall over the 60 s since the last read: 10 %, not the 60 % of a 10 s tick.
        tree.addGroup("test.slice/batch", pids: [500], anon: [0: 200 * Self.mib], someTotal: 6_000_000)
        let guarded = Self.yaml.replacingOccurrences(of: "demote: allowed}", with: "demote: allowed, pressure_guard: {some_avg10: 50%}}")
        let guardPolicy = try PolicyCompiler.compile(yaml: guarded, file: "test.yaml")
        tree.setNode(0, freeBytes: 20 * Self.mib)
        let snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: guardPolicy.tiers)
        var previous = state
        previous.lastTick = Instant(.seconds(50))
        let (plan, _) = Planner.plan(snapshot: snapshot, policy: guardPolicy, state: previous, now: Instant(.seconds(60)))
        #expect(plan.actions.contains { $0.group == CgroupPath("test.slice/batch") && $0.direction == .demote })
        #expect(!plan.skips.contains { $0.group == CgroupPath("test.slice/batch") && $0.reason.code == "pressure_guard" })
    }
}
