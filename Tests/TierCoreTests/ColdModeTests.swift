import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// `cold` demotion: when the planner hands a group's demotion to the kernel's reclaim, and when it
/// falls back to moving its tasks, on the captured three-node guest (node 0 DRAM, 1 and 2 slow,
/// in the kernel's memory tiers) with the kernel's settings written as the kernel shows them.
struct ColdModeTests {
    let tree: FixtureTree
    static let mib: UInt64 = 1 << 20

    init() throws {
        tree = try FixtureTree()
        tree.addGroup("test.slice/batch", pids: [700], anon: [0: 600 * Self.mib])
        tree.setNode(0, freeBytes: 20 * Self.mib)
    }

    func kernel(demotion: Bool, release: String) {
        tree.write(KernelPaths.demotionEnabled, demotion ? "true\n" : "false\n")
        tree.write(KernelPaths.kernelRelease, release + "\n")
    }

    func choice(_ yaml: String = ColdModeTests.policy, state: ControllerState = ControllerState()) throws -> MechanismChoice {
        let policy = try PolicyCompiler.compile(yaml: yaml, file: "t.yaml")
        let snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: .auto)
        let group = try #require(snapshot.groups.first { $0.path == CgroupPath("test.slice/batch") })
        let resolved = try #require(policy.resolve(snapshot.groups.map(\.path))[group.path])
        return Planner.demotionMechanism(rule: resolved.rule, workload: resolved.name, group: group, snapshot: snapshot,
                                         hasChildren: snapshot.parentGroups().contains(group.path), state: state)
    }

    static let policy = "workloads:\n  - {name: batch, match: [test.slice/batch], demote: allowed}\n"

    @Test func coldIsTheDefaultAndAsksForAnonymousMemoryFirst() throws {
        kernel(demotion: true, release: "7.3.4+deb13-amd64")
        #expect(try choice() == MechanismChoice(.kernelReclaim(argument: "swappiness=200")))
        kernel(demotion: true, release: "6.12.95+deb12-amd64")
        #expect(try choice() == MechanismChoice(.kernelReclaim(argument: "swappiness=200")))
    }

    @Test func taskModeIsKeptWhenAskedFor() throws {
        kernel(demotion: true, release: "7.3.4+deb13-amd64")
        let yaml = "workloads:\n  - {name: batch, match: [test.slice/batch], demote: allowed, demotion_mode: task}\n"
        #expect(try choice(yaml) == MechanismChoice(.taskMoves))
    }

    /// Demotion disabled and left so: every workload falls back to task, and says why.
    @Test func withKernelDemotionOffColdFallsBackToTask() throws {
        kernel(demotion: false, release: "7.3.4+deb13-amd64")
        let found = try choice()
        #expect(found.mechanism == .taskMoves)
        #expect(found.fallback?.contains("demotion_enabled=false") == true)
    }

    /// A kernel that counts no demotion per cgroup (before 6.12), or one whose release is
    /// unknown, could not have a request verified: `task`, saying why.
    @Test(arguments: ["6.8.0-49-generic", "unknown"])
    func aKernelThatCountsNoDemotionPerGroupDemotesByTask(release: String) throws {
        kernel(demotion: true, release: release)
        let found = try choice()
        #expect(found.mechanism == .taskMoves)
        #expect(found.fallback?.contains("counts no demotion per cgroup") == true)
        kernel(demotion: true, release: "6.12.0")
        #expect(try choice().mechanism == .kernelReclaim(argument: "swappiness=200"))
    }

    /// Before 6.16 the kernel demotes to any slow node: a cpuset without node 1 rules cold out;
    /// from 6.16 on the kernel keeps to the cpuset.
    @Test func aCpusetWithoutEverySlowNodeNeedsAKernelThatKeepsToIt() throws {
        tree.addGroup("test.slice/batch", pids: [700], anon: [0: 600 * Self.mib], cpuset: "0,2")
        kernel(demotion: true, release: "6.12.95+deb12-amd64")
        let old = try choice()
        #expect(old.mechanism == .taskMoves)
        #expect(old.fallback?.contains("whatever the cpuset") == true)
        kernel(demotion: true, release: "6.16.1")
        #expect(try choice().mechanism == .kernelReclaim(argument: "swappiness=200"))
    }

    @Test func aGroupWithChildrenOrAWorkloadThatLostPagesDemotesByTask() throws {
        kernel(demotion: true, release: "7.3.4+deb13-amd64")
        var state = ControllerState()
        state.coldDisabled["batch"] = "lost 4 KiB"
        #expect(try choice(state: state) == MechanismChoice(.taskMoves, fallback: "lost 4 KiB"))
        tree.addGroup("test.slice/batch/child", pids: [701], anon: [0: Self.mib])
        #expect(try choice().fallback?.contains("child groups") == true)
    }

    /// A group a task's mempolicy refused stays with task until its tasks change.
    @Test func aMempolicyRefusalHoldsUntilTheTasksChange() throws {
        kernel(demotion: true, release: "7.3.4+deb13-amd64")
        var state = ControllerState()
        state.coldRefused[CgroupPath("test.slice/batch")] = ([700], "bound")
        #expect(try choice(state: state) == MechanismChoice(.taskMoves, fallback: "bound"))
        state.coldRefused[CgroupPath("test.slice/batch")] = ([700, 702], "bound")
        #expect(try choice(state: state).mechanism == .kernelReclaim(argument: "swappiness=200"))
    }

    @Test func thePlannedDemotionCarriesTheMechanism() throws {
        kernel(demotion: true, release: "7.3.4+deb13-amd64")
        let policy = try PolicyCompiler.compile(yaml: Self.policy, file: "t.yaml")
        let snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: .auto)
        let (plan, _) = Planner.plan(snapshot: snapshot, policy: policy, state: ControllerState(), now: Instant(.seconds(10)))
        let demotion = try #require(plan.actions.first { $0.direction == .demote })
        #expect(demotion.mechanism == .kernelReclaim(argument: "swappiness=200"))
        #expect(demotion.description.contains("coldest pages, memory.reclaim"))
    }

    @Test func theModeIsParsedAndCheckedWithItsLine() throws {
        let bad = "workloads:\n  - name: batch\n    match: [a]\n    demote: allowed\n    demotion_mode: hot\n"
        #expect { try PolicyCompiler.compile(yaml: bad, file: "t.yaml") } throws: { "\($0)".contains("t.yaml:5:20: workloads[0].demotion_mode: 'hot' is not `cold`") }
        let optOut = "workloads:\n  - {name: db, match: [a], demote: never, demotion_mode: cold}\n"
        #expect { try PolicyCompiler.compile(yaml: optOut, file: "t.yaml") } throws: { "\($0)".contains("applies only to `demote: allowed`") }
    }

    /// The counters of a captured memory.stat, with the group's swap as `memory.swap.current`.
    private func counters(_ path: String, swap: UInt64? = 0) throws -> ColdReclaim.Counters {
        ColdReclaim.Counters(stat: KernelText.memoryStat(try String(contentsOfFile: path, encoding: .utf8)), swapBytes: swap)
    }

    /// What one request did, from the captured memory.stat of a group before (the 6.12 guest's
    /// job, nothing reclaimed yet) and after a demoting reclaim on each kernel: what it took and
    /// did not demote, with no swap, is the slow tier's dropped page cache.
    @Test(arguments: [("6.12-after-reclaim", UInt64(97_362), UInt64(166)), ("7.3-after-reclaim", 97_226, 163)])
    func aRequestIsJudgedByItsDemotedAndStolenPages(file: String, demoted: UInt64, notDemoted: UInt64) throws {
        let before = try counters(FixtureTree.capturedGuest + "/sys/fs/cgroup/batch.slice/job1/memory.stat")
        let after = try counters(FixtureTree.fixtures + "/memory-stat/" + file)
        #expect(ColdReclaim.step(before: before, after: after) == ColdReclaim.Step(demotedPages: demoted, lostPages: 0, slowTierDroppedPages: notDemoted))
        #expect(ColdReclaim.step(before: after, after: before) == ColdReclaim.Step(demotedPages: 0, lostPages: 0))
        #expect(ColdReclaim.request(bytes: 32 << 20, argument: "swappiness=max") == "33554432 swappiness=max")
        #expect(ColdReclaim.request(bytes: 4096, argument: nil) == "4096")
    }

    /// A request whose group went to swap meanwhile lost what it did not demote (the slow tier's
    /// anonymous memory swapped, or worse), and so does one where swap cannot be seen; the
    /// `pswpout`/`zswpout` counters are read from both kernels' memory.stat.
    @Test(arguments: ["6.12-after-reclaim", "7.3-after-reclaim"])
    func aRequestThatSwapsOrCannotSeeSwapLosesWhatItDidNotDemote(file: String) throws {
        let before = try counters(FixtureTree.fixtures + "/memory-stat/" + file, swap: 1 << 20)
        var after = before
        let requestPath: WritableKeyPath<MemoryStat, MemoryStat.ReclaimPath> = before.stat.countsProactiveReclaim ? \.proactive : \.direct
        after.stat[keyPath: requestPath].stolen += 100
        after.stat[keyPath: requestPath].demoted += 90
        #expect(ColdReclaim.step(before: before, after: after) == ColdReclaim.Step(demotedPages: 90, lostPages: 0, slowTierDroppedPages: 10))
        var swapped = after
        swapped.swapBytes = (1 << 20) + 4096
        #expect(ColdReclaim.step(before: before, after: swapped).lostPages == 10)
        var zswapped = after
        zswapped.stat = KernelText.memoryStat(try String(contentsOfFile: FixtureTree.fixtures + "/memory-stat/" + file, encoding: .utf8)
            .replacingOccurrences(of: "zswpout 0", with: "zswpout 3"))
        zswapped.stat[keyPath: requestPath] = after.stat[keyPath: requestPath]
        #expect(zswapped.stat.pagesSwappedOut == 3)
        #expect(ColdReclaim.step(before: before, after: zswapped) == ColdReclaim.Step(demotedPages: 90, lostPages: 10))
        var unseen = after
        unseen.swapBytes = nil
        #expect(ColdReclaim.step(before: before, after: unseen).lostPages == 10)
    }

    /// kswapd discarding the group's page cache while a request runs is the kernel's own reclaim:
    /// reported beside the request, not held against it (on 6.12 the request counts as direct, on
    /// 7.3 as proactive, and there an allocating task's direct reclaim is not the request's either).
    @Test(arguments: ["6.12-after-reclaim", "7.3-after-reclaim"])
    func lossesOnTheKernelsOwnPathsAreNotTheRequests(file: String) throws {
        let before = try counters(FixtureTree.fixtures + "/memory-stat/" + file, swap: nil)
        var after = before
        after.stat.background.stolen += 192
        after.stat.background.demoted += 8
        after.stat.khugepaged.stolen += 4
        let requestPath: WritableKeyPath<MemoryStat, MemoryStat.ReclaimPath> = before.stat.countsProactiveReclaim ? \.proactive : \.direct
        after.stat[keyPath: requestPath].stolen += 1000
        after.stat[keyPath: requestPath].demoted += 990
        #expect(ColdReclaim.step(before: before, after: after) == ColdReclaim.Step(demotedPages: 998, lostPages: 10, kernelLostPages: 188))
        if before.stat.countsProactiveReclaim {
            after.stat.direct.stolen += 30
            #expect(ColdReclaim.step(before: before, after: after).kernelLostPages == 218)
        }
    }
}
