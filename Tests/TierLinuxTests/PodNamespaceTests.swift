import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// tierd as a Kubernetes DaemonSet runs it, on the view captured from a 6.12 guest
/// (Tests/Fixtures/guest-pod): its own cgroup and cgroup namespace, the host's cgroupfs mounted
/// over the runtime's namespaced mount, every other task's `/proc/PID/cgroup` reading "0::/../../…".
struct PodNamespaceTests {
    let tree: FixtureTree
    let selfPid: Int32
    let tierdScope = CgroupPath("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice/cri-containerd-tierd.scope")
    let webScope = CgroupPath("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podweb.slice/cri-containerd-web.scope")

    init() throws {
        tree = try FixtureTree(copying: FixtureTree.capturedPod)
        selfPid = try Self.capturedPid(tree, "SELF_PID")
    }

    static func capturedPid(_ tree: FixtureTree, _ name: String) throws -> Int32 {
        let text = try #require(tree.read("/" + name))
        return try #require(Int32(text.filter(\.isNumber)))
    }

    func captured(_ name: String) throws -> Int32 { try Self.capturedPid(tree, name) }

    @Test func theCollectorFindsItsOwnCgroupInTheHostsTree() throws {
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root), selfPid: selfPid)
        #expect(collector.cgroupMount == "/sys/fs/cgroup")
        #expect(collector.namespace.selfInMount == tierdScope)
        #expect(!collector.namespace.isIdentity)
        let workload = try captured("WORKLOAD_PID")
        let text = try #require(tree.read("/proc/\(workload)/cgroup"))
        let line = try #require(KernelText.cgroupOfProcess(text))
        #expect(line.hasPrefix("/../../../"))
        #expect(collector.namespace.mountPath(of: line) == webScope)
        // The groups are planned on host paths, the policy's globs match them as on a host.
        let snapshot = try collector.collect(selection: .auto)
        #expect(snapshot.groups.contains { $0.path == webScope && $0.pids.contains(workload) })
    }

    @Test func aPidNoGroupListsIsAClearStartupError() throws {
        #expect {
            _ = try SnapshotCollector(files: RootedHostFiles(root: tree.root), selfPid: 99_999)
        } throws: { error in
            "\(error)".contains("lists tierd's pid 99999") && "\(error)".contains("hostPath")
        }
    }

    @Test func withOnlyTheRuntimesNamespacedMountTheMapIsTheIdentity() throws {
        // Without the hostPath volume the pod sees its own subtree only (StartupChecks says so).
        let mountinfo = try #require(tree.read("/proc/self/mountinfo"))
        tree.write("/proc/self/mountinfo", mountinfo.split(separator: "\n").filter { !$0.contains("/../") }.joined(separator: "\n") + "\n")
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root), selfPid: selfPid)
        #expect(collector.namespace.isIdentity)
    }

    @Test func aTaskOfTheGroupIsMovedAndOneThatLeftIsNot() throws {
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root), selfPid: selfPid)
        let syscalls = RecordingSyscalls()
        let tree = tree
        syscalls.afterMigrate = { pid, from, to in tree.relocate(pid, from: from, to: to.first!, leaving: 0) }
        tree.addGroup("lab.slice/batch", pids: [700, 701], anon: [0: 64 << 20])
        tree.addTask(700, group: "lab.slice/batch", pagesPerNode: [0: 100])
        tree.addTask(701, group: "lab.slice/batch", pagesPerNode: [0: 100])
        // As the kernel writes them for a reader four levels down in its own cgroup namespace.
        tree.write("/proc/700/cgroup", "0::/../../../../lab.slice/batch\n")
        tree.write("/proc/701/cgroup", "0::/../../../../lab.slice/other\n")
        let action = MigrationAction(group: CgroupPath("lab.slice/batch"), workload: "batch", direction: .demote, pids: [700, 701],
                                     from: NodeSet([0]), to: [1], bytes: 1 << 30, mempolicy: .respect, reason: "test")
        let outcome = TaskMigrator(collector: collector, syscalls: syscalls, dryRun: false, selfPid: selfPid).execute(action)
        #expect(syscalls.calls == [.migrate(pid: 700, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .leave)])
        #expect(outcome.tasks.map(\.result) == [.moved(bytes: 100 * 4096), .leftGroup(now: CgroupPath("lab.slice/other"))])
    }
}
