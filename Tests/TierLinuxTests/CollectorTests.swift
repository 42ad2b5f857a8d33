import Testing
import TierCore
import TierLinux
import TierTestSupport

struct CollectorTests {
    @Test func readsTheCapturedGuestAsTheKernelWroteIt() throws {
        let tree = try FixtureTree()
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root))
        #expect(collector.cgroupMount == "/sys/fs/cgroup")
        let snapshot = try collector.collect(selection: .auto)
        #expect(snapshot.topology.fast == NodeSet([0]))
        #expect(snapshot.topology.slow == NodeSet([1, 2]))
        #expect(snapshot.topology.node(0)?.hasCPU == true)
        #expect(snapshot.topology.node(1)?.distances[0] == 20)
        let paths = snapshot.groups.map(\.path.relative)
        #expect(paths.contains("batch.slice/job1") && paths.contains("system.slice/db.service"))
        // Parents come before their children.
        #expect(paths.firstIndex(of: "batch.slice")! < paths.firstIndex(of: "batch.slice/job1")!)
        let job2 = try #require(snapshot.groups.first { $0.path == CgroupPath("batch.slice/job2") })
        #expect(job2.cpusetMems == NodeSet([1]))
        #expect(job2.numaStat.bytes(on: 1) > 60 << 20)
        let tight = try #require(snapshot.groups.first { $0.path == CgroupPath("batch.slice/tight") })
        #expect(tight.pressure.some.avg10 > 0.04)
        #expect(snapshot.tierdAllowedNodes == NodeSet([0, 1, 2]))
        #expect(snapshot.vanishedWhileReading == 0)
    }

    @Test func aGroupThatVanishesIsCountedAndTheRestIsRead() throws {
        let tree = try FixtureTree()
        tree.addGroup("test.slice/a", pids: [1], anon: [0: 4096])
        tree.addGroup("test.slice/gone", pids: [2], anon: [0: 4096])
        // What a group removed between readdir and read looks like: a directory without files.
        tree.remove("/sys/fs/cgroup/test.slice/gone/cgroup.procs")
        let snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: .auto)
        #expect(snapshot.vanishedWhileReading == 1)
        #expect(snapshot.groups.contains { $0.path == CgroupPath("test.slice/a") })
        #expect(!snapshot.groups.contains { $0.path == CgroupPath("test.slice/gone") })
    }

    @Test func groupsWithoutTheCpusetControllerInheritTheirParentsNodes() throws {
        let tree = try FixtureTree()
        tree.addGroup("test.slice", cpuset: "0-1")
        tree.addGroup("test.slice/child", pids: [3], anon: [0: 4096])
        tree.remove("/sys/fs/cgroup/test.slice/child/cpuset.mems.effective")
        let snapshot = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).collect(selection: .auto)
        #expect(snapshot.groups.first { $0.path == CgroupPath("test.slice/child") }?.cpusetMems == NodeSet([0, 1]))
    }

    @Test func noCgroup2IsAClearError() throws {
        let tree = try FixtureTree()
        tree.write("/proc/self/mountinfo", "24 25 0:22 / /proc rw,nosuid - proc proc rw\n")
        #expect(throws: SnapshotCollector.SetupError.self) { try SnapshotCollector(files: RootedHostFiles(root: tree.root)) }
    }
}

struct KernelMoversReaderTests {
    /// The captured 6.12 guest booted with Debian's defaults: numa_balancing 1, demotion off.
    @Test func theCapturedGuestShowsTheKernelsDefaults() throws {
        let tree = try FixtureTree()
        let movers = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).kernelMovers()
        #expect(movers.numaBalancing == 1)
        #expect(movers.demotionEnabled == false)
        #expect(movers.runningDamonContexts == nil)
        #expect(movers.findings.map(\.code) == ["numa_balancing"])
    }

    @Test func damonContextsAreCountedByState() throws {
        let tree = try FixtureTree()
        tree.write(KernelPaths.damonKdamonds + "/nr_kdamonds", "3\n")
        tree.write(KernelPaths.damonKdamonds + "/0/state", "off\n")
        tree.write(KernelPaths.damonKdamonds + "/1/state", "on\n")
        tree.write(KernelPaths.damonKdamonds + "/2/state", "on\n")
        tree.write(KernelPaths.demotionEnabled, "true\n")
        tree.write(KernelPaths.numaBalancing, "2\n")
        tree.write(KernelPaths.kernelRelease, "7.3.4+deb13-amd64\n")
        let movers = try SnapshotCollector(files: RootedHostFiles(root: tree.root)).kernelMovers()
        #expect(movers == KernelMovers(numaBalancing: 2, demotionEnabled: true, runningDamonContexts: 2, release: "7.3.4+deb13-amd64"))
        #expect(movers.demotionRespectsCpusets)
    }
}
