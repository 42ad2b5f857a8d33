import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// Pages the kernel's reclaim put where a group may not be (outside its cpuset, or outside the
/// nodes its tasks bind themselves to) come back, and groups bound to DRAM are neither demoted
/// nor left to the kernel: on fixture trees of the captured 6.12 guest, read by the real collector.
struct RepairTests {
    static let mib: UInt64 = 1 << 20

    static func yaml(mempolicy: String = "respect") -> String {
        """
        controller: {interval: 1s, dram: {low: 10%, high: 20%}, rate_limit: 4GiB/s}
        workloads:
          - {name: pinned, match: ["test.slice/pinned", "test.slice/bound", "test.slice/mixed"], demote: allowed, mempolicy: \(mempolicy)}
        """
    }

    let tree: FixtureTree
    init() throws {
        tree = try FixtureTree()
        tree.setFree(mib: [0: 500, 1: 900, 2: 900])
        tree.write(KernelPaths.demotionEnabled, "true\n")
    }

    func snapshot(_ yaml: String = RepairTests.yaml(), files: (any HostFiles)? = nil) throws -> (HostSnapshot, Policy) {
        let policy = try PolicyCompiler.compile(yaml: yaml, file: "test.yaml")
        let collector = try SnapshotCollector(files: files ?? RootedHostFiles(root: tree.root))
        return (collector.readingTaskMempolicies(try collector.collect(selection: policy.tiers), policy: policy), policy)
    }

    func plan(_ yaml: String = RepairTests.yaml()) throws -> MigrationPlan {
        let (snapshot, policy) = try snapshot(yaml)
        return Planner.plan(snapshot: snapshot, policy: policy, state: ControllerState(), now: Instant(.seconds(10))).0
    }

    func bound(_ group: String, pid: Int32, dram: UInt64, slow: UInt64) {
        tree.addGroup(group, pids: [pid], anon: [0: dram * Self.mib, 1: slow * Self.mib])
        tree.addTask(pid, group: group, pagesPerNode: [0: dram * 256, 1: slow * 256], policy: "bind:0")
    }

    @Test func aGroupWhoseCpusetHoldsNoSlowNodeGetsItsSlowPagesBack() throws {
        tree.addGroup("test.slice/pinned", pids: [800], anon: [0: 100 * Self.mib, 1: 60 * Self.mib], cpuset: "0")
        let plan = try plan()
        let action = try #require(plan.actions.first)
        #expect(plan.actions.count == 1)
        #expect(action.direction == .promote && action.group == CgroupPath("test.slice/pinned"))
        #expect(action.from == NodeSet([1]) && action.to == [0] && action.bytes == 60 * Self.mib)
        #expect(action.reason == "repair: 60.0 MiB on slow node 1 outside cpuset.mems.effective 0")
    }

    @Test func aGroupBoundToDramIsRepairedAndNotDemoted() throws {
        bound("test.slice/bound", pid: 810, dram: 100, slow: 40)
        let (snapshot, _) = try snapshot()
        #expect(snapshot.groups.first { $0.path == CgroupPath("test.slice/bound") }?.tasksBoundTo == NodeSet([0]))
        let repair = try #require(try plan().actions.first)
        #expect(repair.direction == .promote && repair.from == NodeSet([1]) && repair.to == [0] && repair.bytes == 40 * Self.mib)
        #expect(repair.reason.hasPrefix("repair: 40.0 MiB on slow node 1 outside the nodes its tasks' mempolicies bind them to (0)"))
        // DRAM short: the bound group is no source of demotion, and says why.
        tree.setNode(0, freeBytes: 20 * Self.mib)
        let short = try plan()
        #expect(!short.actions.contains { $0.direction == .demote })
        #expect(short.skips.contains { $0.group == CgroupPath("test.slice/bound") && "\($0.reason)".contains("mempolicy binds it to 0") })
    }

    /// No shield covers one task of a group: a bound task beside unbound ones is repaired alone,
    /// from its own numa_maps; its unbound sibling's slow pages stay where they are.
    @Test func aBoundTaskBesideUnboundOnesIsRepairedAlone() throws {
        tree.addGroup("test.slice/mixed", pids: [820, 821], anon: [0: 100 * Self.mib, 1: 70 * Self.mib])
        tree.addTask(820, group: "test.slice/mixed", pagesPerNode: [0: 100 * 256, 1: 30 * 256], policy: "bind:0")
        tree.addTask(821, group: "test.slice/mixed", pagesPerNode: [1: 40 * 256])
        let (snapshot, _) = try snapshot()
        let group = try #require(snapshot.groups.first { $0.path == CgroupPath("test.slice/mixed") })
        #expect(group.tasksBoundTo == nil)
        #expect(group.boundTasks == [BoundTask(pid: 820, nodes: NodeSet([0]), bytesPerNode: [0: 100 * Self.mib, 1: 30 * Self.mib])])
        let plan = try plan()
        let repair = try #require(plan.actions.first)
        #expect(plan.actions.count == 1)
        #expect(repair.pids == [820] && repair.from == NodeSet([1]) && repair.to == [0] && repair.bytes == 30 * Self.mib)
        #expect(repair.reason == "repair: 30.0 MiB of pid 820 on slow node 1 outside the nodes its mempolicy binds it to (0)")
        // Bound to a slow node itself: nothing to repair.
        tree.addTask(820, group: "test.slice/mixed", pagesPerNode: [0: 100 * 256, 1: 30 * 256], policy: "bind:0-1")
        #expect(try self.plan().actions.isEmpty)
    }

    /// The repair shares its workload's rate limit with that workload's own demotions, which make
    /// its room: with DRAM short, half the bucket is kept for the repair, not all spent on demotion
    /// tick after tick (on 7.3 a 3 MiB repair of a bound task waited 5.8 s behind its group's
    /// 32 MiB/s demotion).
    @Test func aRepairIsNotStarvedByItsOwnWorkloadsDemotion() throws {
        tree.addGroup("test.slice/mixed", pids: [820, 821], anon: [0: 400 * Self.mib, 1: 30 * Self.mib])
        tree.addTask(820, group: "test.slice/mixed", pagesPerNode: [0: 100 * 256, 1: 30 * 256], policy: "bind:0")
        tree.addTask(821, group: "test.slice/mixed", pagesPerNode: [0: 300 * 256])
        tree.setNode(0, freeBytes: 20 * Self.mib)
        let limited = Self.yaml().replacingOccurrences(of: "mempolicy: respect}", with: "mempolicy: respect, rate_limit: 32MiB/s}")
        let plan = try plan(limited)
        let repair = try #require(plan.actions.first { $0.direction == .promote })
        let demotions = plan.actions.filter { $0.direction == .demote }
        #expect(repair.pids == [820] && repair.step == .promoteIntoRoomMade(keepFree: repair.keepFreeOnTargets))
        #expect(repair.bytes == 16 * Self.mib)
        #expect(demotions.contains { $0.step == .makeRoom && $0.bytes >= repair.bytes })
        #expect(plan.actions.reduce(0) { $0 + $1.bytes } <= 32 * Self.mib)
    }

    @Test func underOverrideOrWithTheKernelsDemotionOffPoliciesAreNotReadNorRepaired() throws {
        bound("test.slice/bound", pid: 810, dram: 100, slow: 40)
        let counting = CountingHostFiles(RootedHostFiles(root: tree.root))
        _ = try snapshot(Self.yaml(mempolicy: "override"), files: counting)
        #expect(counting.reads(named: "numa_maps") == 0)
        #expect(try plan(Self.yaml(mempolicy: "override")).actions.isEmpty)
        tree.write(KernelPaths.demotionEnabled, "false\n")
        let (off, _) = try snapshot()
        #expect(off.groups.allSatisfy { $0.tasksBoundTo == nil })
        #expect(try plan().actions.isEmpty)
    }

    @Test func groupsNoWorkloadNamesAreNeverRepaired() throws {
        tree.addGroup("other.slice/misc", pids: [900], anon: [0: 10 * Self.mib, 1: 60 * Self.mib], cpuset: "0")
        #expect(try plan().actions.isEmpty)
    }
}
