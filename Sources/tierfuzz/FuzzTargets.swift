import TierCore

/// One fuzz target: a parser of kernel text or of the policy, fed arbitrary bytes. Beyond not
/// crashing, each checks what must hold of any answer it gives; a broken claim traps, which the
/// fuzzer reports as a crash with the input that caused it.
struct FuzzTarget: Sendable {
    let name: String
    /// The fixture files (under Tests/Fixtures) that seed its corpus.
    let seeds: [String]
    /// Seeds written out here, for inputs no fixture holds.
    var literalSeeds: [String] = []
    let run: @Sendable ([UInt8]) -> Void

    init(name: String, seeds: [String], literalSeeds: [String] = [], run: @escaping @Sendable ([UInt8]) -> Void) {
        self.name = name; self.seeds = seeds; self.literalSeeds = literalSeeds; self.run = run
    }

    static let all: [FuzzTarget] = [
        FuzzTarget(name: "numa_maps", seeds: ["guest-3node/proc/172/numa_maps"]) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            for entry in KernelText.numaMaps(text) { _ = entry.bytes(on: NodeSet([0, 1, 2])) }
            for range in KernelText.mapRanges(text) { claim(range.lowerBound <= range.upperBound, "a map range runs backwards") }
        },
        FuzzTarget(name: "numa_stat", seeds: ["guest-3node/sys/fs/cgroup/system.slice/memory.numa_stat"]) { bytes in
            let stat = KernelText.numaStat(String(decoding: bytes, as: UTF8.self))
            let all = NodeSet(0..<64)
            claim(stat.bytes(on: all) >= stat.bytes(on: NodeSet([0])), "bytes on all nodes below bytes on node 0")
        },
        FuzzTarget(name: "memory_stat", seeds: ["guest-3node/sys/fs/cgroup/system.slice/memory.stat"]) { bytes in
            _ = KernelText.memoryStat(String(decoding: bytes, as: UTF8.self))
        },
        FuzzTarget(name: "pressure", seeds: ["guest-3node/sys/fs/cgroup/system.slice/memory.pressure", "guest-3node/proc/pressure/memory"]) { bytes in
            guard let pressure = KernelText.pressure(String(decoding: bytes, as: UTF8.self)) else { return }
            for line in [pressure.some, pressure.full] {
                claim(line.avg10.isFinite && line.avg60.isFinite, "a pressure average that is not a number")
            }
        },
        FuzzTarget(name: "node_list", seeds: ["guest-3node/sys/fs/cgroup/system.slice/cpuset.mems.effective", "guest-3node/proc/self/status"]) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            if let set = NodeSet.parseList(text) {
                claim(NodeSet.parseList(set.description) == set, "a node list does not survive printing and parsing again")
                claim(set.allSatisfy { $0 >= 0 && $0 <= NodeSet.maxNodeID }, "a node id out of range")
            }
            _ = KernelText.memsAllowed(status: text)
        },
        FuzzTarget(name: "meminfo", seeds: ["guest-3node/sys/devices/system/node/node0/meminfo", "guest-3node/sys/devices/system/node/node0/distance",
                                            "guest-3node/proc/zoneinfo"]) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            if let (total, free) = KernelText.nodeMeminfo(text) {
                _ = total &- free
                claim(KernelText.nodeMemFree(text) == free, "MemFree read alone differs from the full parse")
            }
            _ = KernelText.distances(text)
            for (node, mark) in KernelText.zoneWatermarks(text) {
                claim(node >= 0 && node <= NodeSet.maxNodeID, "a zoneinfo node id out of range")
                _ = mark.high &+ mark.perCPUListsHigh
            }
        },
        FuzzTarget(name: "mountinfo", seeds: ["guest-3node/proc/self/mountinfo", "guest-pod/proc/self/mountinfo"]) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            let mounts = KernelText.cgroup2Mounts(mountinfo: text)
            if let point = KernelText.cgroup2MountPoint(mountinfo: text) { claim(!point.isEmpty, "an empty cgroup2 mount point") }
            if let mount = CgroupMount.preferred(mounts) {
                claim(mounts.contains(mount), "the preferred mount is not one of the mounts")
                _ = CgroupNamespace.anchor(mount: mount, selfInNamespace: "/../../pod/tierd")
            }
        },
        FuzzTarget(name: "proc_stat", seeds: ["proc-stat-cpu1.txt"]) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            guard let (_, fields) = KernelText.processStat(text) else { return }
            claim(KernelText.startTime(stat: text) == (fields.count > 19 ? UInt64(fields[19]) : nil), "start time is not field 22")
            if let cpu = KernelText.lastCPU(stat: text) { claim(cpu >= 0, "a negative CPU") }
        },
        FuzzTarget(name: "proc_cgroup", seeds: ["guest-3node/proc/172/cgroup", "guest-pod/proc/self/cgroup", "guest-3node/sys/fs/cgroup/system.slice/cgroup.procs"]) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            if let path = KernelText.cgroupOfProcess(text) { claim(!path.contains("\n"), "a cgroup path with a newline") }
            for pid in KernelText.pids(text) { claim(pid > 0, "pid \(pid) listed in cgroup.procs") }
        },
        // Three NUL-separated parts: tierd's namespace path, its path in the mount, a task's path.
        FuzzTarget(name: "cgroup_namespace", seeds: [],
                   literalSeeds: ["/../../pod1/tierd\0kubepods.slice/pod1/tierd\0/../../pod2/app", "/\0\0/system.slice/x"]) { bytes in
            let parts = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            guard parts.count == 3 else { return }
            // tierd's own group in the mount is a directory found there: no "." or ".." in it.
            let selfInMount = CgroupPath(parts[1])
            guard !selfInMount.components.contains(where: { $0 == ".." || $0 == "." }) else { return }
            let namespace = CgroupNamespace(selfInNamespace: parts[0], selfInMount: selfInMount)
            if let path = namespace.mountPath(of: parts[2]) {
                claim(!path.components.contains(where: { $0 == ".." || $0 == "." }), "\(parts[2]) maps to \(path), outside the mounted tree")
            }
            claim(namespace.mountPath(of: parts[0]) == selfInMount, "tierd's own path does not map to its own group")
        },
        FuzzTarget(name: "policy", seeds: ["../../config/tierd.yaml", "../../config/examples/systemd-slices.yaml", "bad-policy.yaml"]) { bytes in
            do {
                _ = try PolicyCompiler.compile(bytes: bytes, file: "fuzz.yaml")
            } catch let error as PolicyError {
                claim(error.file == "fuzz.yaml" && error.line >= 1 && error.column >= 1, "an error without its place: \(error)")
                claim(!error.message.isEmpty, "an error without a message")
            } catch {
                claim(false, "a policy error of another kind: \(error)")
            }
        },
    ]

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// A broken claim: the fuzzer sees the trap as a crash and keeps the input.
func claim(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("claim broken: \(message())") }
}
