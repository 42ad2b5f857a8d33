#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// The migrator's safety invariants over generated moves on fixture trees, with the world
/// changing between its calls as it does on a busy host: pids reused by tasks of other groups or
/// of the same group, tasks moved to another cgroup or exiting, the group's cpuset and tierd's own
/// narrowed. At every page-moving call, the task must be the very task that was in the group
/// (same pid, same start time, same cgroup), never tierd itself, and every target inside the
/// direction's tier ∩ the group's cpuset ∩ tierd's own nodes as they are at that moment.
/// Seeded: a failure names the seed and case (`TIERD_PROPERTY_SEED`, `TIERD_PROPERTY_CASES`).
struct MigratorPropertyTests {
    static let run = PropertyRun(defaultSeed: 0x319_7A7E, defaultCases: 400)

    @Test func everyMovingCallIsForTheGroupsOwnTaskIntoAnAllowedNode() throws {
        var failures: [String] = []
        var movingCalls = 0, events = 0
        let tree = try FixtureTree()
        for index in 0..<Self.run.cases {
            var random = Self.run.generator(forCase: index)
            let world = try ChangingWorld(&random, tree: tree)
            let outcome = world.migrator.execute(world.action)
            failures += world.violations.map { "seed \(Self.run.seed) case \(index): \($0)" }
            if outcome.movedBytes > 0, world.checkedMovingCalls == 0 { failures.append("case \(index): bytes moved without a checked call") }
            movingCalls += world.checkedMovingCalls
            events += world.eventsApplied
        }
        let violations = failures.count
        #expect(violations == 0, "first: \(failures.prefix(5).joined(separator: "\n"))")
        // The generator must reach moves and races, or the test proves nothing.
        #expect(movingCalls > Self.run.cases && events > Self.run.cases / 2, "\(movingCalls) moving calls, \(events) races")
    }

    /// The checks above must be able to fail: a migrator that ignored the group's cpuset and the
    /// pinned identity (moving straight through its recorded syscalls) trips them.
    @Test func theChecksCatchAMoveThatIgnoresTheRules() throws {
        var caught = 0
        let tree = try FixtureTree()
        for index in 0..<50 {
            var random = Self.run.generator(forCase: index)
            let world = try ChangingWorld(&random, tree: tree)
            for pid in world.action.pids {
                _ = world.checking.migratePages(pid: pid, from: world.action.from, to: NodeSet(world.action.to), sharedPages: .include)
            }
            if !world.violations.isEmpty { caught += 1 }
        }
        #expect(caught > 25, "only \(caught) of 50 rule-blind moves were caught")
    }
}

/// One generated move and the fixture world around it, changing as the migrator calls. Cases
/// share one tree: each starts by putting back what the last one changed.
final class ChangingWorld: @unchecked Sendable {
    static let group = "test.slice/batch", other = "other.slice/victim"
    static let selfPid: Int32 = 650, foreign: Int32 = 800, firstPid: Int32 = 700, mostTasks = 5
    static let capturedSelfStatus = (try? String(contentsOfFile: FixtureTree.capturedGuest + KernelPaths.selfStatus, encoding: .utf8)) ?? ""
    let tree: FixtureTree
    let recording = RecordingSyscalls()
    let checking: CheckingSyscalls
    let migrator: TaskMigrator
    let action: MigrationAction
    var violations: [String] { checking.violations }
    var checkedMovingCalls: Int { checking.movingCalls }
    var eventsApplied: Int { checking.events }

    init(_ random: inout SeededGenerator, tree: FixtureTree) throws {
        self.tree = tree
        for pid in [Self.selfPid, Self.foreign] + (0..<Int32(Self.mostTasks)).map({ Self.firstPid + $0 }) { tree.removeTask(pid) }
        tree.write(KernelPaths.selfStatus, Self.capturedSelfStatus)
        let demote = random.chance(0.6)
        let from = demote ? [0] : [1, 2]
        let selfPid = Self.selfPid
        var pids: [Int32] = []
        var startTimes: [Int32: UInt64] = [:]
        for index in 0..<Int.random(in: 1...Self.mostTasks, using: &random) {
            let pid = Self.firstPid + Int32(index)
            var pages: [Int: UInt64] = [:]
            for node in from where random.chance(0.8) { pages[node] = UInt64.random(in: 1...40_000, using: &random) }
            let start = UInt64.random(in: 1_000...900_000, using: &random)
            tree.addTask(pid, group: Self.group, pagesPerNode: pages, startTime: start)
            pids.append(pid)
            startTimes[pid] = start
        }
        // A task of another group, listed by mistake, and tierd itself in the group.
        let foreign = Self.foreign
        tree.addTask(foreign, group: Self.other, pagesPerNode: [from[0]: 5_000])
        tree.addTask(selfPid, group: Self.group, pagesPerNode: [from[0]: 5_000])
        var listed = pids
        if random.chance(0.3) { listed.insert(foreign, at: Int.random(in: 0...listed.count, using: &random)) }
        if random.chance(0.3) { listed.insert(selfPid, at: Int.random(in: 0...listed.count, using: &random)) }
        let cpuset = Self.someNodes(of: [0, 1, 2], &random, keeping: demote ? 1 : 0)
        tree.addGroup(Self.group, pids: pids + [selfPid], anon: [0: 64 << 20], cpuset: cpuset.description)
        tree.addGroup(Self.other, pids: [foreign], anon: [0: 16 << 20])
        let targets = demote ? [1, 2] : [0]
        action = MigrationAction(group: CgroupPath(Self.group), workload: "batch", direction: demote ? .demote : .promote,
                                 pids: listed, from: NodeSet(from), to: random.chance(0.5) ? targets : targets.reversed(),
                                 bytes: UInt64.random(in: 1...200_000, using: &random) * 4096,
                                 mempolicy: random.chance(0.5) ? .respect : .override, reason: "property")
        checking = CheckingSyscalls(inner: recording, tree: tree, group: Self.group, startTimes: startTimes, selfPid: selfPid,
                                    tier: NodeSet(targets), seed: random.next())
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root))
        var migrator = TaskMigrator(collector: collector, syscalls: checking, dryRun: false, selfPid: selfPid)
        migrator.chunkPages = [512, 2048, 8192].randomElement(using: &random)!
        self.migrator = migrator
        let (tree, recording) = (tree, recording)
        recording.afterMigrate = { pid, from, to in tree.relocate(pid, from: from, to: to.first!) }
        recording.pageNode = { _, _ in Int32(from[0]) }
    }

    /// A random non-empty subset of `nodes` that keeps at least one node of the move's targets
    /// most of the time (`keeping`: the node always kept, so that some moves can happen).
    static func someNodes(of nodes: [Int], _ random: inout SeededGenerator, keeping: Int) -> NodeSet {
        var kept = NodeSet(random.subset(of: nodes, keep: 0.6))
        if kept.isEmpty || random.chance(0.5) { kept.insert(keeping) }
        kept.insert(keeping == 0 ? 0 : Int.random(in: 0...2, using: &random))
        return kept
    }
}

/// Page-moving syscalls that check the world at the moment each call is made, then change it
/// (the races a real host has), then hand the call to the recording syscalls.
final class CheckingSyscalls: PageMoveSyscalls, @unchecked Sendable {
    let inner: RecordingSyscalls
    let tree: FixtureTree
    let group: String
    let startTimes: [Int32: UInt64]
    let selfPid: Int32
    let tier: NodeSet
    private let lock = NSLock()
    private var random: SeededGenerator
    private(set) var violations: [String] = []
    private(set) var movingCalls = 0
    private(set) var events = 0

    init(inner: RecordingSyscalls, tree: FixtureTree, group: String, startTimes: [Int32: UInt64], selfPid: Int32, tier: NodeSet, seed: UInt64) {
        self.inner = inner; self.tree = tree; self.group = group; self.startTimes = startTimes
        self.selfPid = selfPid; self.tier = tier; random = SeededGenerator(seed: seed)
    }

    func migratePages(pid: Int32, from: NodeSet, to: NodeSet, sharedPages: SharedPages) -> Result<Int, SyscallError> {
        checkAndRace(pid: pid, targets: to)
        return inner.migratePages(pid: pid, from: from, to: to, sharedPages: sharedPages)
    }

    func movePages(pid: Int32, addresses: [UInt64], to node: Int?, sharedPages: SharedPages) -> Result<[Int32], SyscallError> {
        if let node { checkAndRace(pid: pid, targets: NodeSet([node])) }
        return inner.movePages(pid: pid, addresses: addresses, to: node, sharedPages: sharedPages)
    }

    private func checkAndRace(pid: Int32, targets: NodeSet) {
        lock.lock(); defer { lock.unlock() }
        movingCalls += 1
        check(pid: pid, targets: targets)
        if random.chance(0.25) { race() }
    }

    private func check(pid: Int32, targets: NodeSet) {
        let process = KernelPaths.process(pid)
        if pid == selfPid { violations.append("moved tierd's own memory (pid \(pid))") }
        guard let pinned = startTimes[pid] else { violations.append("pid \(pid) was never a task of \(group)"); return }
        let cgroup = tree.read(process + "/cgroup")?.trimmingCharacters(in: .whitespacesAndNewlines)
        if cgroup != "0::/\(group)" { violations.append("pid \(pid) moved while in \(cgroup ?? "no cgroup (exited)")") }
        let started = tree.read(process + "/stat").flatMap { KernelText.startTime(stat: $0) }
        if started != pinned { violations.append("pid \(pid) moved while it named another task (start \(started.map(String.init) ?? "none"), pinned \(pinned))") }
        let cpuset = tree.read(tree.cgroupMount + "/" + group + "/cpuset.mems.effective").flatMap { NodeSet.parseList(Substring($0)) } ?? .empty
        let own = tree.read(KernelPaths.selfStatus).flatMap { KernelText.memsAllowed(status: $0) } ?? .empty
        let allowed = tier.intersection(cpuset).intersection(own)
        if !targets.isSubset(of: allowed) { violations.append("pid \(pid) moved to \(targets), allowed now \(allowed)") }
    }

    /// The kernel never leaves a cpuset without a node: an emptied one keeps what it had.
    private func nonEmpty(_ nodes: [Int], else current: NodeSet) -> NodeSet { nodes.isEmpty ? current : NodeSet(nodes) }

    /// One change to the world, as a busy host makes them between two calls.
    private func race() {
        events += 1
        let pid = startTimes.keys.sorted().randomElement(using: &random)!
        let process = KernelPaths.process(pid)
        switch Int.random(in: 0..<6, using: &random) {
        case 0: tree.addTask(pid, group: ChangingWorld.other, pagesPerNode: [0: 4_000, 1: 4_000], startTime: 950_000)
        case 1: tree.addTask(pid, group: group, pagesPerNode: [0: 4_000, 1: 4_000], startTime: 960_000)
        case 2: tree.write(process + "/cgroup", "0::/\(ChangingWorld.other)\n")
        case 3:
            tree.removeTask(pid)
            inner.failures[pid] = ESRCH
        case 4:
            let path = tree.cgroupMount + "/" + group + "/cpuset.mems.effective"
            let now = tree.read(path).flatMap { NodeSet.parseList(Substring($0)) } ?? NodeSet([0, 1, 2])
            tree.write(path, nonEmpty(random.subset(of: now.sorted, keep: 0.6), else: now).description + "\n")
        default:
            let status = tree.read(KernelPaths.selfStatus) ?? ""
            let now = KernelText.memsAllowed(status: status) ?? NodeSet([0, 1, 2])
            let narrowed = nonEmpty(random.subset(of: now.sorted, keep: 0.7), else: now)
            let lines = status.split(separator: "\n").map { $0.hasPrefix("Mems_allowed_list:") ? "Mems_allowed_list:\t\(narrowed)" : String($0) }
            tree.write(KernelPaths.selfStatus, lines.joined(separator: "\n") + "\n")
        }
    }
}
