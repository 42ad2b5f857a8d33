import Testing
import TierCore
import TierLinux
import TierService
import TierTestSupport

/// What tierd says about the host before its first tick, on captured trees.
struct StartupChecksTests {
    func findings(_ tree: FixtureTree, selfPid: Int32 = 1, yaml: String = "controller: {hot_pages: off}\ndefault: {demote: never}\n") throws -> [StartupFinding] {
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root), selfPid: selfPid)
        let policy = try PolicyCompiler.compile(yaml: yaml, file: "test.yaml")
        return StartupChecks.run(collector: collector, policy: policy, dryRun: true).1
    }

    @Test func theHostsTreeRaisesNoSubtreeWarning() throws {
        let found = try findings(FixtureTree())
        #expect(!found.contains { $0.message.contains("not the host's root") })
        #expect(found.contains { $0.level == .info && $0.message.contains("slow nodes 1-2") })
        #expect(!found.contains { $0.message.contains("cgroup namespace") })
    }

    @Test func aPodInTheHostsTreeSaysHowItMapsCgroups() throws {
        let tree = try FixtureTree(copying: FixtureTree.capturedPod)
        let selfPid = try #require(Int32((tree.read("/SELF_PID") ?? "").filter(\.isNumber)))
        let found = try findings(tree, selfPid: selfPid)
        #expect(found.contains { $0.level == .info && $0.message.contains(
            "its cgroup there (/) is /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice/cri-containerd-tierd.scope") })
        #expect(!found.contains { $0.level != .info })
    }

    /// A fixture tree has no task whose soft-dirty bits tierd could clear and read back.
    @Test func hotPagesWithoutSoftDirtyBitsAreWarnedOnce() throws {
        let found = try findings(FixtureTree(), yaml: "default: {demote: never}\n")
        #expect(found.filter { $0.message.hasPrefix("hot pages:") }.map(\.level) == [.warning])
        #expect(try !findings(FixtureTree()).contains { $0.message.hasPrefix("hot pages:") })
    }

    @Test func aPodSeeingOnlyItsOwnSubtreeIsWarned() throws {
        let tree = try FixtureTree(copying: FixtureTree.capturedPod)
        // The runtime's namespaced mount alone: its root is tierd's container cgroup, which, unlike
        // the hierarchy's root, has cgroup.type (as every non-root group in the captured trees does).
        let mountinfo = try #require(tree.read("/proc/self/mountinfo"))
        tree.write("/proc/self/mountinfo", mountinfo.split(separator: "\n").filter { !$0.contains("/../") }.joined(separator: "\n") + "\n")
        tree.write("/sys/fs/cgroup/cgroup.type", "domain\n")
        let found = try findings(tree)
        #expect(found.contains { $0.level == .warning && $0.message.contains("hostPath") })
    }
}
