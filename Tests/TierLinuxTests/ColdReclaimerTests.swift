import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// A fixture tree whose group answers a `memory.reclaim` write as the lab's kernel did: its
/// memory.stat becomes the one captured after a demoting reclaim (Tests/Fixtures/memory-stat), or
/// stays as it was (nothing reclaimed). Writes are recorded.
final class ReclaimingFiles: HostFiles, @unchecked Sendable {
    let inner: RootedHostFiles
    let answer: String?
    /// The group's `memory.swap.current` after each request, if the request swaps.
    let swapAnswer: String?
    private let lock = NSLock()
    private(set) var requests: [String] = []

    init(root: String, answer: String?, swapAnswer: String? = nil) {
        inner = RootedHostFiles(root: root); self.answer = answer; self.swapAnswer = swapAnswer
    }
    var root: String { inner.root }

    func read(_ path: String) throws(HostFileError) -> String { try inner.read(path) }
    func write(_ path: String, _ text: String) throws(HostFileError) {
        guard path.hasSuffix("/memory.reclaim") else { return try inner.write(path, text) }
        lock.lock(); requests.append(text); lock.unlock()
        if let answer { try inner.write(path.replacingOccurrences(of: "memory.reclaim", with: "memory.stat"), answer) }
        if let swapAnswer { try inner.write(path.replacingOccurrences(of: "memory.reclaim", with: "memory.swap.current"), swapAnswer) }
    }
    func subdirectories(_ path: String) throws(HostFileError) -> [String] { try inner.subdirectories(path) }
    func exists(_ path: String) -> Bool { inner.exists(path) }
}

struct ColdReclaimerTests {
    let tree: FixtureTree

    init() throws {
        tree = try FixtureTree()
        tree.addGroup("test.slice/batch", pids: [700], anon: [0: 64 << 20])
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 16384])
    }

    func migrator(answer: String?, swapAnswer: String? = nil, dryRun: Bool = false) throws -> (TaskMigrator, ReclaimingFiles) {
        let files = ReclaimingFiles(root: tree.root, answer: answer, swapAnswer: swapAnswer)
        return (TaskMigrator(collector: try SnapshotCollector(files: files), syscalls: RecordingSyscalls(), dryRun: dryRun, selfPid: 1), files)
    }

    func cold(bytes: UInt64 = 100 << 20, to: [Int] = [1, 2], mempolicy: MempolicyMode = .respect) -> MigrationAction {
        var action = MigrationAction(group: CgroupPath("test.slice/batch"), workload: "batch", direction: .demote, pids: [700],
                                     from: NodeSet([0]), to: to, bytes: bytes, mempolicy: mempolicy, reason: "test")
        action.mechanism = .kernelReclaim(argument: "swappiness=max")
        return action
    }

    static func captured(_ name: String) throws -> String {
        try String(contentsOfFile: FixtureTree.fixtures + "/memory-stat/" + name, encoding: .utf8)
    }

    /// The group's swap, as its `memory.swap.current` reads before any request.
    func setSwap(_ bytes: UInt64) throws {
        try String(bytes).write(toFile: tree.root + "/sys/fs/cgroup/test.slice/batch/memory.swap.current", atomically: true, encoding: .utf8)
    }

    /// The 7.3 capture stole 163 pages it did not demote. Where the group's swap cannot be seen (no
    /// memory.swap.current), or grew meanwhile, they are lost: the first request's step reports
    /// them and no second request is made, though the budget is not spent.
    @Test(arguments: [nil, "8192"])
    func aRequestThatLostPagesEndsTheActionAndReportsThem(swapAfter: String?) throws {
        if swapAfter != nil { try setSwap(0) }
        let (migrator, files) = try migrator(answer: try Self.captured("7.3-after-reclaim"), swapAnswer: swapAfter)
        let outcome = migrator.execute(cold())
        #expect(files.requests == ["33554432 swappiness=max"])
        #expect(outcome.reclaimedBytes == 97_226 * migrator.pageSize)
        #expect(outcome.lostBytes == 163 * migrator.pageSize)
        #expect(outcome.movedBytes == outcome.reclaimedBytes)
        #expect(outcome.dropped == nil && outcome.coldRefused == nil)
    }

    /// With none of the group swapped, what the request did not demote is the slow tier's page
    /// cache it dropped: reported apart, and the action goes on (its second request demotes
    /// nothing more here, which ends it).
    @Test func theSlowTiersDroppedPageCacheIsReportedAndTheActionGoesOn() throws {
        try setSwap(4096)
        let (migrator, files) = try migrator(answer: try Self.captured("6.12-after-reclaim"), swapAnswer: "4096")
        let outcome = migrator.execute(cold(bytes: 512 << 20))
        #expect(files.requests == ["33554432 swappiness=max", "33554432 swappiness=max"])
        #expect(outcome.reclaimedBytes == 97_362 * migrator.pageSize)
        #expect(outcome.lostBytes == 0)
        #expect(outcome.slowTierDroppedBytes == 166 * migrator.pageSize)
    }

    @Test func aRequestThatDemotedNothingEndsTheAction() throws {
        let (migrator, files) = try migrator(answer: nil)
        let outcome = migrator.execute(cold())
        #expect(files.requests.count == 1)
        #expect(outcome.movedBytes == 0 && outcome.lostBytes == 0)
    }

    /// The kernel's reclaim would demote a bound task's pages whatever its policy: no request.
    @Test func aTaskBoundToDramRefusesColdBeforeAnyRequest() throws {
        tree.addTask(700, group: "test.slice/batch", pagesPerNode: [0: 16384], policy: "bind:0")
        let (migrator, files) = try migrator(answer: try Self.captured("7.3-after-reclaim"))
        let outcome = migrator.execute(cold())
        #expect(files.requests.isEmpty)
        #expect(outcome.coldRefused?.contains("bind:0") == true)
        let (overriding, overridingFiles) = try self.migrator(answer: try Self.captured("7.3-after-reclaim"))
        _ = overriding.execute(cold(mempolicy: .override))
        #expect(overridingFiles.requests.count == 1)
    }

    /// The kernel may demote to every node the action names: a cpuset that lost one drops it.
    @Test func aCpusetNarrowedSinceThePlanDropsTheAction() throws {
        tree.write("/sys/fs/cgroup/test.slice/batch/cpuset.mems.effective", "0,2\n")
        let (migrator, files) = try migrator(answer: try Self.captured("7.3-after-reclaim"))
        let outcome = migrator.execute(cold())
        #expect(files.requests.isEmpty)
        #expect(outcome.dropped?.contains("not every node the kernel may demote to") == true)
    }

    @Test func aDryRunAsksNothing() throws {
        let (migrator, files) = try migrator(answer: try Self.captured("7.3-after-reclaim"), dryRun: true)
        let outcome = migrator.execute(cold(bytes: 5 << 20))
        #expect(files.requests.isEmpty)
        #expect(outcome.wouldReclaimBytes == 5 << 20)
    }
}
