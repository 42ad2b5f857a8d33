import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// The shield against the kernel's own demotion, on the captured guest: which groups claim
/// `memory.low` (pure), and how the keeper raises, keeps and puts back the files.
struct KernelShieldTests {
    let tree: FixtureTree
    static let mib: UInt64 = 1 << 20
    static let policy = """
        workloads:
          - {name: db, match: [test.slice/db], demote: never}
          - {name: batch, match: [test.slice/batch, test.slice/pinned], demote: allowed}
        """

    init() throws {
        tree = try FixtureTree()
        tree.addGroup("test.slice/db", pids: [600], anon: [0: 300 * Self.mib, 1: 20 * Self.mib])
        tree.addGroup("test.slice/batch", pids: [700], anon: [0: 500 * Self.mib])
        tree.addGroup("test.slice/pinned", pids: [800], anon: [0: 100 * Self.mib], cpuset: "0")
        tree.addGroup("other.slice/misc", pids: [900], anon: [0: 50 * Self.mib])
        for group in ["test.slice", "test.slice/db", "test.slice/batch", "test.slice/pinned", "other.slice", "other.slice/misc"] {
            tree.write("/sys/fs/cgroup/\(group)/memory.low", "0\n")
        }
    }

    func claims(demotion: Bool) throws -> [CgroupPath: UInt64] {
        tree.write(KernelPaths.demotionEnabled, demotion ? "true\n" : "false\n")
        let policy = try PolicyCompiler.compile(yaml: Self.policy, file: "t.yaml")
        let snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: .auto)
        return KernelShield.protections(snapshot: snapshot, policy: policy)
    }

    @Test func optOutGroupsAndGroupsWithoutASlowNodeClaimTheirMemoryAndTheirAncestorsTheSum() throws {
        let found = try claims(demotion: true)
        let db: UInt64 = 320 * Self.mib + 40 * Self.mib        // usage + usage/8
        let pinned: UInt64 = 100 * Self.mib + 32 * Self.mib    // usage + the 32 MiB least headroom
        #expect(found[CgroupPath("test.slice/db")] == db)
        #expect(found[CgroupPath("test.slice/pinned")] == pinned)
        #expect(found[CgroupPath("test.slice")] == db + pinned)
        // Opted in with a slow node in its cpuset, or matched by no workload: left to the kernel.
        #expect(found[CgroupPath("test.slice/batch")] == nil)
        #expect(found[CgroupPath("other.slice/misc")] == nil && found[CgroupPath("other.slice")] == nil)
    }

    /// A DRAM-bound task cannot be shielded in a group it shares with unbound ones (memory.low
    /// covers the group, not a task): only a group whose every task binds itself to DRAM is.
    @Test func anOptedInGroupWhoseEveryTaskIsBoundToDramIsShielded() throws {
        tree.write(KernelPaths.demotionEnabled, "true\n")
        tree.addGroup("test.slice/batch/bound", pids: [710, 711], anon: [0: 200 * Self.mib])
        tree.addTask(710, group: "test.slice/batch/bound", pagesPerNode: [0: 25_600], policy: "bind:0")
        tree.addTask(711, group: "test.slice/batch/bound", pagesPerNode: [0: 25_600], policy: "prefer:0")
        let policy = try PolicyCompiler.compile(yaml: Self.policy, file: "t.yaml")
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root))
        func claim() throws -> UInt64? {
            let snapshot = collector.readingTaskMempolicies(try collector.collect(selection: .auto), policy: policy)
            return KernelShield.protections(snapshot: snapshot, policy: policy)[CgroupPath("test.slice/batch/bound")]
        }
        #expect(try claim() == 200 * Self.mib + 32 * Self.mib)
        tree.addTask(711, group: "test.slice/batch/bound", pagesPerNode: [0: 25_600])
        #expect(try claim() == nil)
    }

    @Test func withTheKernelsDemotionOffNothingIsClaimed() throws {
        #expect(try claims(demotion: false).isEmpty)
        tree.write(KernelPaths.numaBalancing, "2\n")
        #expect(try !claims(demotion: false).isEmpty)
    }

    func keeper(_ stateFile: String?) throws -> KernelShieldKeeper {
        KernelShieldKeeper(collector: try SnapshotCollector(files: RootedHostFiles(root: tree.root)), stateFile: stateFile)
    }

    func low(_ group: String) -> String? { tree.read("/sys/fs/cgroup/\(group)/memory.low")?.trimmingCharacters(in: .whitespacesAndNewlines) }

    @Test func theKeeperRaisesKeepsTheOldValuesOnDiskAndPutsThemBack() throws {
        let state = tree.root + "/kernel-settings.json"
        tree.write("/sys/fs/cgroup/test.slice/memory.low", "max\n")
        let keeper = try keeper(state)
        let report = keeper.apply(try claims(demotion: true))
        #expect(report.raised == 2 && report.failed == 0)
        #expect(low("test.slice/db") == String(360 * Self.mib + 360 * Self.mib / 16))   // the claim and a sixteenth of slack
        #expect(low("test.slice") == "max")   // never lowered
        let saved = try JSONDecoder().decode([String: [String: String]].self, from: Data(contentsOf: URL(fileURLWithPath: state)))
        #expect(saved["memory.low"]?["test.slice/db"] == "0" && saved["memory.low"]?["test.slice"] == "max")
        // A claim that grew within the headroom is not rewritten; the kernel's demotion off puts all back.
        #expect(keeper.apply(try claims(demotion: true)) == KernelShieldKeeper.Report())
        let back = keeper.apply(try claims(demotion: false))
        #expect(back.restored == 3)
        #expect(low("test.slice/db") == "0" && low("test.slice") == "max" && low("test.slice/pinned") == "0")
        #expect(!FileManager.default.fileExists(atPath: state))
    }

    /// `kernel_shield: min` writes memory.min instead; a reload back to `low` puts every
    /// memory.min back and raises memory.low; a restart puts back what the file holds of either.
    @Test func theMinimumShieldWritesMemoryMinAndAReloadToLowPutsItBack() throws {
        let state = tree.root + "/kernel-settings.json"
        for group in ["test.slice", "test.slice/db", "test.slice/pinned"] { tree.write("/sys/fs/cgroup/\(group)/memory.min", "0\n") }
        func min(_ group: String) -> String? { tree.read("/sys/fs/cgroup/\(group)/memory.min")?.trimmingCharacters(in: .whitespacesAndNewlines) }
        let keeper = try keeper(state)
        let raised = keeper.apply(try claims(demotion: true), using: .min)
        #expect(raised.raised == 3 && raised.failed == 0)
        #expect(min("test.slice/db") == String(360 * Self.mib + 360 * Self.mib / 16) && low("test.slice/db") == "0")
        let saved = try JSONDecoder().decode([String: [String: String]].self, from: Data(contentsOf: URL(fileURLWithPath: state)))
        #expect(saved["memory.min"]?["test.slice/db"] == "0" && saved["memory.low"] == nil)
        let switched = keeper.apply(try claims(demotion: true), using: .low)
        #expect(switched.restored == 3 && switched.raised == 3)
        #expect(min("test.slice/db") == "0" && low("test.slice/db") == String(360 * Self.mib + 360 * Self.mib / 16))
        _ = keeper.apply(try claims(demotion: true), using: .min)
        let restarted = try self.keeper(state).restoreLeftovers()
        #expect(restarted.restored == 3 && min("test.slice/db") == "0" && low("test.slice/db") == "0")
        #expect(!FileManager.default.fileExists(atPath: state))
    }

    /// What a tierd killed with groups raised left on disk is put back by the next one at start.
    @Test func aRestartedTierdPutsBackWhatTheKilledOneRaised() throws {
        let state = tree.root + "/kernel-settings.json"
        let killed = try keeper(state)
        killed.apply(try claims(demotion: true))
        #expect(low("test.slice/db") != "0")
        let restarted = try keeper(state)
        #expect(restarted.restoreLeftovers().restored == 3)
        #expect(low("test.slice/db") == "0" && low("test.slice/pinned") == "0" && low("test.slice") == "0")
        #expect(!FileManager.default.fileExists(atPath: state))
    }

    func setting(_ setting: KernelSetting) -> String? {
        tree.read(KernelPaths.setting(setting))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func owning(_ yaml: String) throws -> [KernelSetting: SettingValue] {
        KernelSetting.wanted(by: try PolicyCompiler.compile(yaml: yaml, file: "t.yaml").controller)
    }

    /// `controller.numa_balancing`: what tierd sets, what it keeps on disk first, and what it puts back.
    @Test func ownedKernelSettingsAreSetKeptOnDiskAndPutBack() throws {
        let state = tree.root + "/kernel-settings.json"
        tree.write(KernelPaths.numaBalancing, "1\n")
        tree.write(KernelPaths.setting(.promoteRateLimit), "65536\n")
        let keeper = try keeper(state)
        let tiering = keeper.own(try owning("controller: {numa_balancing: tiering, hot_promotion_rate: 32MiB/s}"))
        #expect(tiering.set == ["kernel.numa_balancing=2 (was 1)", "kernel.numa_balancing_promote_rate_limit_MBps=32 (was 65536)"])
        #expect(setting(.numaBalancing) == "2" && setting(.promoteRateLimit) == "32")
        let saved = try JSONDecoder().decode([String: [String: String]].self, from: Data(contentsOf: URL(fileURLWithPath: state)))
        #expect(saved["settings"] == ["kernel.numa_balancing": "1", "kernel.numa_balancing_promote_rate_limit_MBps": "65536"])
        // Set already: nothing written. A reload to `off` puts the rate back and keeps the first value found.
        #expect(keeper.own(try owning("controller: {numa_balancing: tiering, hot_promotion_rate: 32MiB/s}")) == KernelShieldKeeper.SettingsReport())
        let off = keeper.own(try owning("controller: {numa_balancing: off}"))
        #expect(off.restored == ["kernel.numa_balancing_promote_rate_limit_MBps=65536"])
        #expect(off.set == ["kernel.numa_balancing=0 (was 2)"])
        #expect(setting(.numaBalancing) == "0" && setting(.promoteRateLimit) == "65536")
        // At stop, the host's own value is back and the file is gone.
        #expect(keeper.restoreAll().settingsRestored == ["kernel.numa_balancing=1"])
        #expect(setting(.numaBalancing) == "1")
        #expect(!FileManager.default.fileExists(atPath: state))
    }

    @Test func leaveChangesNothingAndAReloadToLeavePutsBack() throws {
        tree.write(KernelPaths.numaBalancing, "1\n")
        let keeper = try keeper(nil)
        #expect(keeper.own(try owning("controller: {numa_balancing: leave}")) == KernelShieldKeeper.SettingsReport())
        #expect(setting(.numaBalancing) == "1")
        keeper.own(try owning("controller: {numa_balancing: off}"))
        #expect(setting(.numaBalancing) == "0")
        #expect(keeper.own(try owning("workloads: []")).restored == ["kernel.numa_balancing=1"])
        #expect(setting(.numaBalancing) == "1")
    }

    /// A tierd killed while it owned NUMA balancing: the next one puts the host's value back first.
    @Test func aRestartedTierdPutsBackTheSettingsTheKilledOneSet() throws {
        let state = tree.root + "/kernel-settings.json"
        tree.write(KernelPaths.numaBalancing, "1\n")
        try keeper(state).own(try owning("controller: {numa_balancing: off}"))
        #expect(setting(.numaBalancing) == "0")
        #expect(try keeper(state).restoreLeftovers().settingsRestored == ["kernel.numa_balancing=1"])
        #expect(setting(.numaBalancing) == "1")
        #expect(!FileManager.default.fileExists(atPath: state))
    }

    /// A value that cannot be put back at stop stays in the file, for the next start to put back.
    @Test func aSettingThatCannotBePutBackStaysOnDisk() throws {
        let state = tree.root + "/kernel-settings.json"
        tree.write(KernelPaths.numaBalancing, "1\n")
        let keeper = try keeper(state)
        keeper.own(try owning("controller: {numa_balancing: off}"))
        let file = tree.root + KernelPaths.numaBalancing
        try FileManager.default.removeItem(atPath: file)
        try FileManager.default.createDirectory(atPath: file, withIntermediateDirectories: false)
        let stop = keeper.restoreAll()
        #expect(stop.settingsRestored.isEmpty && stop.settingsFailed.keys.sorted() == ["kernel.numa_balancing"])
        let saved = try JSONDecoder().decode([String: [String: String]].self, from: Data(contentsOf: URL(fileURLWithPath: state)))
        #expect(saved["settings"] == ["kernel.numa_balancing": "1"])
        try FileManager.default.removeItem(atPath: file)
        tree.write(KernelPaths.numaBalancing, "0\n")
        #expect(try self.keeper(state).restoreLeftovers().settingsRestored == ["kernel.numa_balancing=1"])
        #expect(setting(.numaBalancing) == "1")
    }

    /// A kernel built without NUMA balancing: said, and nothing kept.
    @Test func aSettingTheKernelDoesNotHaveFails() throws {
        let state = tree.root + "/kernel-settings.json"
        try FileManager.default.removeItem(atPath: tree.root + KernelPaths.numaBalancing)
        let report = try keeper(state).own(try owning("controller: {numa_balancing: off}"))
        #expect(report.set.isEmpty && report.failed.keys.sorted() == ["kernel.numa_balancing"])
        #expect(!FileManager.default.fileExists(atPath: state))
    }

    /// `controller.lru_gen_batch_clearing: off` clears one bit of the LRU's mask and puts the mask back.
    @Test func theLRUsBatchedClearingIsTurnedOffByItsBitAndPutBack() throws {
        let state = tree.root + "/kernel-settings.json"
        tree.write(KernelPaths.lruGenEnabled, "0x0007\n")
        let keeper = try keeper(state)
        #expect(keeper.own(try owning("controller: {lru_gen_batch_clearing: off}")).set == ["lru_gen.enabled=0x0005 (was 0x0007)"])
        #expect(setting(.lruGenFeatures) == "0x0005")
        // Cleared already (as the kernel prints it back): nothing to write.
        tree.write(KernelPaths.lruGenEnabled, "0x0005\n")
        #expect(keeper.own(try owning("controller: {lru_gen_batch_clearing: off}")) == KernelShieldKeeper.SettingsReport())
        #expect(keeper.restoreAll().settingsRestored == ["lru_gen.enabled=0x0007"])
        #expect(setting(.lruGenFeatures) == "0x0007")
        // A kernel without the multi-generational LRU's file, and one that prints no mask.
        tree.write(KernelPaths.lruGenEnabled, "y\n")
        #expect(keeper.own(try owning("controller: {lru_gen_batch_clearing: off}")).failed.keys.sorted() == ["lru_gen.enabled"])
        #expect(setting(.lruGenFeatures) == "y")
    }
}
