import Foundation
import Testing
import TierCore
import TierTestSupport

/// Parsers against text captured from the lab guest's 6.12 kernel (Tests/Fixtures/guest-3node).
struct KernelTextTests {
    func captured(_ path: String) throws -> String {
        try String(contentsOfFile: FixtureTree.capturedGuest + path, encoding: .utf8)
    }

    /// A pagemap word says "written" only for a page in memory whose soft-dirty bit is set.
    @Test func pagemapWordsSayWrittenOnlyForPresentSoftDirtyPages() {
        #expect(PagemapEntry.writtenAndPresent(1 << 63 | 1 << 55 | 0x1234))
        #expect(!PagemapEntry.writtenAndPresent(1 << 63 | 0x1234), "present, not written")
        #expect(!PagemapEntry.writtenAndPresent(1 << 62 | 1 << 55), "swapped out")
        #expect(!PagemapEntry.writtenAndPresent(0))
    }

    @Test func nodeListsRoundTrip() {
        #expect(NodeSet.parseList("0-2,4\n") == NodeSet([0, 1, 2, 4]))
        #expect(NodeSet.parseList("") == NodeSet.empty)
        #expect(NodeSet.parseList("\n") == NodeSet.empty)
        #expect(NodeSet.parseList("3-1") == nil)
        #expect(NodeSet.parseList("a") == nil)
        #expect(NodeSet([0, 1, 2, 4, 70]).description == "0-2,4,70")
        #expect(NodeSet([1, 2]).intersection(NodeSet([2, 3])) == NodeSet([2]))
        #expect(NodeSet([1, 2]).subtracting(NodeSet([2])) == NodeSet([1]))
        #expect(NodeSet([65]).intersection(NodeSet([1])).isEmpty)
    }

    @Test func pressureFromRealGroup() throws {
        let p = try #require(KernelText.pressure(try captured("/sys/fs/cgroup/batch.slice/tight/memory.pressure")))
        #expect(p.some.avg10 == 0.0464)
        #expect(p.some.totalMicroseconds == 3_883_755)
        #expect(p.full.totalMicroseconds == 3_882_047)
        #expect(KernelText.pressure("garbage") == nil)
    }

    @Test func numaStatFromRealGroup() throws {
        let stat = KernelText.numaStat(try captured("/sys/fs/cgroup/batch.slice/job1/memory.numa_stat"))
        #expect(stat.anon[0] == 175_087_616)
        #expect(stat.bytes(on: 0) == 175_087_616 + 1_081_344)
        #expect(stat.bytes(on: NodeSet([1, 2])) == 0)
    }

    @Test func memoryStatCounters() throws {
        let stat = KernelText.memoryStat(try captured("/sys/fs/cgroup/batch.slice/job1/memory.stat"))
        #expect(stat.anonBytes == 175_087_616)
        #expect(stat.pagesDemotedByKernel == 0)
    }

    /// memory.stat of a 900 MiB job after `memory.reclaim` of 380 MiB with demotion on, captured by
    /// `probe-cold` on each lab kernel (Tests/Fixtures/memory-stat): 6.12 counts the request's
    /// demotions as direct, 7.3 as proactive; both stole about 165 pages they did not demote.
    @Test(arguments: [("6.12-after-reclaim", 97_173 + 189, 0, 97_339 + 189, 189), ("7.3-after-reclaim", 62, 97_164, 97_327 + 62, 62)])
    func memoryStatAfterADemotingReclaim(file: String, byKernel: UInt64, proactive: UInt64, stolen: UInt64, kswapd: UInt64) throws {
        let text = try String(contentsOfFile: FixtureTree.fixtures + "/memory-stat/" + file, encoding: .utf8)
        let stat = KernelText.memoryStat(text)
        #expect(stat.pagesDemotedByKernel == byKernel)
        #expect(stat.pagesDemotedProactively == proactive)
        #expect(stat.pagesStolen == stolen)
        #expect(stat.pagesStolen - (stat.pagesDemotedByKernel + stat.pagesDemotedProactively) < 200)
        #expect(stat.countsProactiveReclaim == (proactive > 0))
        #expect(stat.background == MemoryStat.ReclaimPath(stolen: kswapd, demoted: kswapd))
    }

    @Test func meminfoAndDistance() throws {
        let node0 = try #require(KernelText.nodeMeminfo(try captured("/sys/devices/system/node/node0/meminfo")))
        #expect(node0.total == 1_030_452 * 1024)
        #expect(node0.free == 731_180 * 1024)
        #expect(KernelText.nodeMemFree(try captured("/sys/devices/system/node/node0/meminfo")) == node0.free)
        #expect(KernelText.distances(try captured("/sys/devices/system/node/node0/distance")) == [10, 20, 20])
    }

    @Test func cgroup2MountFromMountinfo() throws {
        #expect(KernelText.cgroup2MountPoint(mountinfo: try captured("/proc/self/mountinfo")) == "/sys/fs/cgroup")
        #expect(KernelText.cgroup2MountPoint(mountinfo: "24 25 0:22 / /proc rw - proc proc rw\n") == nil)
        let escaped = "30 26 0:26 / /mnt/cg\\040v2 rw shared:9 - cgroup2 cgroup2 rw\n"
        #expect(KernelText.cgroup2MountPoint(mountinfo: escaped) == "/mnt/cg v2")
    }

    /// Captured from a host task named "sl) (x y", pinned to CPU 1 with taskset.
    @Test func lastCPUCountsFieldsAfterTheCommandName() throws {
        let stat = try String(contentsOfFile: FixtureTree.fixtures + "/proc-stat-cpu1.txt", encoding: .utf8)
        #expect(KernelText.lastCPU(stat: stat) == 1)
        #expect(KernelText.lastCPU(stat: "1810 (sl) S 1 2 3\n") == nil)
        #expect(KernelText.lastCPU(stat: "") == nil)
    }

    @Test func memsAllowedAndProcessCgroup() throws {
        #expect(KernelText.memsAllowed(status: try captured("/proc/self/status")) == NodeSet([0, 1, 2]))
        let pid = try captured("/BOUND_PID").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(KernelText.cgroupOfProcess(try captured("/proc/\(pid)/cgroup")) == "/system.slice/db.service")
        #expect(KernelText.pids("171\n172\n") == [171, 172])
    }

    @Test func numaMapsOfBoundAndFreeTasks() throws {
        let bound = try captured("/BOUND_PID").trimmingCharacters(in: .whitespacesAndNewlines)
        let free = try captured("/FREE_PID").trimmingCharacters(in: .whitespacesAndNewlines)
        let boundMaps = KernelText.numaMaps(try captured("/proc/\(bound)/numa_maps"))
        #expect(!boundMaps.isEmpty)
        #expect(boundMaps.allSatisfy { $0.policy == Mempolicy(mode: .bind, nodes: NodeSet([0])) })
        let freeMaps = KernelText.numaMaps(try captured("/proc/\(free)/numa_maps"))
        #expect(freeMaps.allSatisfy { $0.policy.mode == .default })
        let first = try #require(freeMaps.first)
        #expect(first.start == 0x400000)
        #expect(first.pagesPerNode == [0: 18, 1: 6])
        #expect(first.file == "/usr/bin/python3.11")
        #expect(freeMaps.reduce(0) { $0 + $1.bytes(on: NodeSet([0])) } > 40 << 20)
    }

    @Test func numaMapsTellsSharedMappingsFromTheTasksOwn() throws {
        let bound = try captured("/BOUND_PID").trimmingCharacters(in: .whitespacesAndNewlines)
        let maps = KernelText.numaMaps(try captured("/proc/\(bound)/numa_maps"))
        // The interpreter's text, mapped by four processes; its heap, by this one alone.
        let text = try #require(maps.first { $0.start == 0x400000 })
        #expect(text.maxMapCount == 4)
        #expect(!text.isUnshared)
        let heap = try #require(maps.first { $0.start == 0x3cc18000 })
        #expect(heap.maxMapCount == 1)
        #expect(heap.isUnshared)
        #expect(maps.contains { !$0.isUnshared } && maps.contains(where: \.isUnshared))
    }

    @Test(arguments: [
        ("7f00 prefer (many):0-1 anon=3 N0=3 kernelpagesize_kB=4", Mempolicy.Mode.preferMany, "0-1"),
        ("7f00 weighted interleave:1-2 anon=3 N1=3 kernelpagesize_kB=4", .weightedInterleave, "1-2"),
        ("7f00 bind=static:0 anon=3 N0=3 kernelpagesize_kB=4", .bind, "0"),
        ("7f00 prefer:1 anon=3 N1=3 kernelpagesize_kB=4", .prefer, "1"),
        ("7f00 local anon=3 N0=3 kernelpagesize_kB=4", .local, ""),
    ])
    func numaMapsPolicyForms(line: String, mode: Mempolicy.Mode, nodes: String) throws {
        let entry = try #require(KernelText.numaMaps(line).first)
        #expect(entry.policy.mode == mode)
        #expect(entry.policy.nodes == NodeSet.parseList(nodes))
        #expect(entry.pagesPerNode.values.reduce(0, +) == 3)
    }

    @Test func mapRanges() {
        let ranges = KernelText.mapRanges("00400000-0041f000 r--p 00000000 fe:01 123 /usr/bin/python3\n7ffc1000-7ffc2000 rw-p 0 0:0 0 [stack]\n")
        #expect(ranges == [0x400000..<0x41f000, 0x7ffc1000..<0x7ffc2000])
    }

    @Test func memoryTiersSplitTheCapturedTopology() {
        let nodes = [MemoryNode(id: 0, hasCPU: true, totalBytes: 1 << 30, freeBytes: 0, memoryTier: 4),
                     MemoryNode(id: 1, hasCPU: false, totalBytes: 1 << 30, freeBytes: 0, memoryTier: 67),
                     MemoryNode(id: 2, hasCPU: false, totalBytes: 1 << 30, freeBytes: 0, memoryTier: 67)]
        let byTier = Topology.classify(nodes, selection: .auto)
        #expect(byTier.fast == NodeSet([0]) && byTier.slow == NodeSet([1, 2]) && byTier.source == .memoryTiers)
        let untiered = nodes.map { var n = $0; n.memoryTier = 4; return n }
        let byCPU = Topology.classify(untiered, selection: .auto)
        #expect(byCPU.slow == NodeSet([1, 2]) && byCPU.source == .cpuLessNodes)
        let single = Topology.classify([nodes[0]], selection: .auto)
        #expect(single.slow.isEmpty && single.source == .singleTier)
        let configured = Topology.classify(nodes, selection: .explicit(fast: NodeSet([0, 1]), slow: NodeSet([2])))
        #expect(configured.fast == NodeSet([0, 1]) && configured.slow == NodeSet([2]))
    }

    /// The zones' `high` per node, and apart from it their per-CPU lists' "high:" lines.
    @Test func watermarksFromRealZoneinfo() throws {
        let marks = KernelText.zoneWatermarks(try captured("/proc/zoneinfo"))
        #expect(marks.mapValues(\.high) == [0: 14 + 1092 + 0 + 32, 1: 1021, 2: 1140])
        #expect(marks[1]?.perCPUListsHigh == 380 + 2218)
        #expect(marks.values.allSatisfy { $0.perCPUListsHigh > 0 })
        #expect(KernelText.zoneWatermarks("garbage\n        high 5\n").isEmpty)
    }

    @Test func processStatusSizesInKiB() throws {
        let status = try captured("/proc/self/status")
        let rss = try #require(KernelText.statusKiB(status, key: "VmRSS"))
        let peak = try #require(KernelText.statusKiB(status, key: "VmHWM"))
        #expect(rss > 0 && peak >= rss)
        #expect(KernelText.statusKiB(status, key: "VmNone") == nil)
    }

    // Found by the fuzz targets (scripts/fuzz.sh): each trapped or misread before its fix.

    /// A task outside the reader's pid namespace is listed as 0 (as in a pod without the host's
    /// pid namespace); pid 0 to move_pages(2) would mean tierd itself.
    @Test func cgroupProcsLeavesOutTasksOfOtherPidNamespaces() throws {
        let captured = try captured("/sys/fs/cgroup/batch.slice/job2/cgroup.procs")
        #expect(!KernelText.pids(captured).isEmpty)
        #expect(KernelText.pids("0\n0\n" + captured + "0\n") == KernelText.pids(captured))
        #expect(KernelText.pids("0\n").isEmpty)
    }

    @Test func countsNoKernelWritesAreIgnoredNotTrapped() throws {
        let meminfo = try captured("/sys/devices/system/node/node0/meminfo")
        let huge = meminfo.replacingOccurrences(of: "MemFree:", with: "MemFree: 99999999999999999 kB\nNode 0 Ignored:")
        #expect(KernelText.nodeMeminfo(huge) == nil)
        #expect(KernelText.nodeMemFree(huge) == nil)
        #expect(KernelText.nodeMemFree("Node 0 MemFree:  kB\n") == nil)

        let numaStat = try captured("/sys/fs/cgroup/system.slice/memory.numa_stat")
        let parsed = KernelText.numaStat(numaStat)
        #expect(KernelText.numaStat(numaStat + "anon N\(UInt64.max)=1 N3=\(UInt64.max)\n") == parsed)

        let line = "7f1c00000000 default anon=10 N0=10 kernelpagesize_kB=4"
        #expect(KernelText.numaMaps(line).first?.bytes(on: NodeSet([0])) == 40960)
        #expect(KernelText.numaMaps("7f1c00000000 default anon=10 N0=10 kernelpagesize_kB=99999999999999999").isEmpty)
        #expect(KernelText.numaMaps("7f1c00000000 default anon=10 N0=10 kernelpagesize_kB=12").isEmpty)
        #expect(KernelText.numaMaps("7f1c00000000 default anon=1 N0=\(UInt64.max) kernelpagesize_kB=4").isEmpty)
        #expect(KernelText.numaMaps("7f1c00000000 default anon=1 N-1=5 N0=1 kernelpagesize_kB=4").first?.pagesPerNode == [0: 1])
    }

    /// The kernel prints a cgroup's path raw at the end of the line: a name ending in "\r" must
    /// not swallow the newline after it.
    @Test func aCgroupNameEndingInCarriageReturnEndsItsLine() {
        #expect(KernelText.cgroupOfProcess("0::/batch.slice/job\r\n") == "/batch.slice/job\r")
        #expect(KernelText.cgroupOfProcess("0::/batch.slice/job\r\n0::/other\n") == "/batch.slice/job\r")
    }
}
