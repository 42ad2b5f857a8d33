#if canImport(Glibc)
import Glibc
#endif
import TierCore

/// Reads one `HostSnapshot` per tick from the kernel's files: the node topology and every
/// cgroup below the v2 mount. A group or file that vanishes mid-read is counted and skipped.
public struct SnapshotCollector: Sendable {
    public let files: any HostFiles
    /// The cgroup v2 mount point as the kernel names it ("/sys/fs/cgroup").
    public let cgroupMount: String

    /// Maps the cgroup paths in `/proc/PID/cgroup` (relative to tierd's cgroup namespace) into the
    /// mounted tree: the identity on a host, a real map in a Kubernetes pod.
    public let namespace: CgroupNamespace

    /// The kernel keeps soft-dirty bits tierd can use to find written pages (`WrittenPages`).
    public let tracksWrittenPages: Bool

    /// What goes wrong before a snapshot can be taken at all.
    public enum SetupError: Error, CustomStringConvertible {
        case noCgroup2(mountinfo: String)
        case unreadable(HostFileError)
        /// tierd's own cgroup cannot be found in the mounted tree, so no task's cgroup can be checked.
        case namespaceNotAnchored(String)
        public var description: String {
            switch self {
            case .noCgroup2(let path): "no cgroup v2 file system in \(path): tierd needs the unified hierarchy"
            case .unreadable(let error): "\(error)"
            case .namespaceNotAnchored(let why):
                "\(why): tierd cannot tell which cgroup a task is in; mount the host's cgroup2 root (in a pod: a hostPath volume of /sys/fs/cgroup)"
            }
        }
    }

    /// - Parameter selfPid: tierd's pid as this process's PID namespace numbers it (what
    ///   `cgroup.procs` lists); a fixture tree passes the pid it captured.
    public init(files: any HostFiles, selfPid: Int32 = getpid()) throws {
        self.files = files
        let mountinfo: String
        do { mountinfo = try files.read(KernelPaths.mountinfo) } catch { throw SetupError.unreadable(error) }
        guard let mount = CgroupMount.preferred(KernelText.cgroup2Mounts(mountinfo: mountinfo)) else {
            throw SetupError.noCgroup2(mountinfo: KernelPaths.mountinfo)
        }
        cgroupMount = mount.mountPoint
        namespace = try Self.anchorNamespace(files: files, mount: mount, selfPid: selfPid)
        tracksWrittenPages = WrittenPages.kernelTracks(files: files)
    }

    /// Finds tierd's own cgroup in the mounted tree (see ``CgroupNamespace``). A tree without
    /// `/proc/self/cgroup` (an old fixture) whose mount is the namespace root maps as the identity.
    static func anchorNamespace(files: any HostFiles, mount: CgroupMount, selfPid: Int32) throws(SetupError) -> CgroupNamespace {
        guard let text = try? files.read(KernelPaths.selfCgroup), let own = KernelText.cgroupOfProcess(text) else {
            guard mount.levelsAboveNamespace == 0 else {
                throw .namespaceNotAnchored("\(KernelPaths.selfCgroup) has no cgroup v2 line")
            }
            return .identity
        }
        switch CgroupNamespace.anchor(mount: mount, selfInNamespace: own) {
        case .known(let namespace): return namespace
        case .outside(let why): throw .namespaceNotAnchored(why)
        case .search(let depth):
            guard let found = directoryListing(selfPid, depth: depth, under: mount.mountPoint, files: files) else {
                throw .namespaceNotAnchored("no cgroup \(depth) levels below \(mount.mountPoint) lists tierd's pid \(selfPid) (tierd is \(own) in its cgroup namespace)")
            }
            return CgroupNamespace(selfInNamespace: own, selfInMount: found)
        }
    }

    /// The directory `depth` levels below `mountPoint` whose `cgroup.procs` lists `pid`; walked once, at start.
    static func directoryListing(_ pid: Int32, depth: Int, under mountPoint: String, files: any HostFiles) -> CgroupPath? {
        var level: [CgroupPath] = [.root]
        for _ in 0..<depth {
            level = level.flatMap { group in
                ((try? files.subdirectories(directory(of: group, mount: mountPoint))) ?? []).sorted().map { group.appending($0) }
            }
        }
        return level.first { group in
            (try? files.read(directory(of: group, mount: mountPoint) + "/cgroup.procs")).map { KernelText.pids($0).contains(pid) } ?? false
        }
    }

    static func directory(of group: CgroupPath, mount: String) -> String {
        group.isRoot ? mount : mount + "/" + group.relative
    }

    public func directory(of group: CgroupPath) -> String { Self.directory(of: group, mount: cgroupMount) }

    /// The memory nodes and their tiers. Nodes without memory are left out.
    public func topology(selection: TierSelection) throws(HostFileError) -> Topology {
        let online = NodeSet.parseList(try files.read(KernelPaths.onlineNodes)) ?? .empty
        let withMemory = (try? files.read(KernelPaths.nodesWithMemory)).flatMap { NodeSet.parseList($0) } ?? online
        let withCPU = (try? files.read(KernelPaths.nodesWithCPU)).flatMap { NodeSet.parseList($0) } ?? online
        var tierOf: [Int: Int] = [:]
        if let tiers = try? files.subdirectories(KernelPaths.memoryTiering) {
            for name in tiers where name.hasPrefix("memory_tier") {
                guard let tier = Int(name.dropFirst("memory_tier".count)),
                      let list = try? files.read("\(KernelPaths.memoryTiering)/\(name)/nodelist"),
                      let nodes = NodeSet.parseList(list) else { continue }
                for node in nodes { tierOf[node] = tier }
            }
        }
        // One read for every node's watermark; an unreadable file leaves them unknown.
        let watermarks = (try? files.read(KernelPaths.zoneinfo)).map(KernelText.zoneWatermarks) ?? [:]
        let page = TaskMigrator.systemPageSize
        var nodes: [MemoryNode] = []
        let onlineOrder = online.sorted
        for id in online.intersection(withMemory) {
            guard let memory = KernelText.nodeMeminfo(try files.read(KernelPaths.node(id) + "/meminfo")) else { continue }
            let row = (try? files.read(KernelPaths.node(id) + "/distance")).map(KernelText.distances) ?? []
            var distances: [Int: Int] = [:]
            for (index, distance) in row.enumerated() where index < onlineOrder.count { distances[onlineOrder[index]] = distance }
            nodes.append(MemoryNode(id: id, hasCPU: withCPU.contains(id), totalBytes: memory.total, freeBytes: memory.free,
                                    memoryTier: tierOf[id], distances: distances,
                                    highWatermark: watermarks[id].map { $0.high * page },
                                    perCPUListsHigh: (watermarks[id]?.perCPUListsHigh ?? 0) * page))
        }
        return Topology.classify(nodes, selection: selection)
    }

    /// Free bytes on `nodes` now, from their meminfo; nil if one cannot be read.
    public func freeBytes(on nodes: some Sequence<Int>) -> UInt64? {
        var free: UInt64 = 0
        for id in nodes {
            guard let text = try? files.read(KernelPaths.node(id) + "/meminfo"),
                  let nodeFree = KernelText.nodeMemFree(text) else { return nil }
            free += nodeFree
        }
        return free
    }

    /// The nodes' meminfo files kept open, for reading their `MemFree` many times a second; nil
    /// where one cannot be kept open (the watch then reads each path every time).
    public func keepMeminfo(of nodes: [Int]) -> [KeptFile]? {
        let kept = nodes.compactMap { files.keepOpen(KernelPaths.node($0) + "/meminfo") }
        return kept.count == nodes.count ? kept : nil
    }

    /// The nodes tierd's own cpuset lets it use: migrate_pages(2) silently ANDs targets with it.
    public func tierdAllowedNodes() -> NodeSet? {
        (try? files.read(KernelPaths.selfStatus)).flatMap { KernelText.memsAllowed(status: $0) }
    }

    /// How much to read per group.
    public enum Depth: Sendable {
        /// What the planner uses: numa_stat, pressure, cpuset, procs (four files per group).
        case planning
        /// Also memory.stat and memory.current, for an operator's explanation.
        case detailed
    }

    /// Reads the whole host. The root cgroup itself is not listed: tierd never acts on it.
    /// - Parameter carrying: given the nodes just read, the groups to list but not read: each keeps
    ///   the entry given (`GroupCarrying`); a group not given, new or not, is read.
    public func collect(selection: TierSelection, depth: Depth = .planning,
                        carrying: ((Topology) -> [CgroupPath: GroupCarrying.Carried])? = nil) throws(HostFileError) -> HostSnapshot {
        let topology = try topology(selection: selection)
        let carried = depth == .planning ? carrying?(topology) ?? [:] : [:]
        var carriedPaths: Set<CgroupPath> = []
        let allNodes = NodeSet(topology.nodes.map(\.id))
        var groups: [CgroupSnapshot] = []
        var vanished = 0
        let rootCpuset = (try? files.read(cgroupMount + "/cpuset.mems.effective")).flatMap { NodeSet.parseList($0) } ?? allNodes
        var stack: [(CgroupPath, NodeSet)] = []
        if let children = try? files.subdirectories(cgroupMount) {
            stack = children.sorted(by: >).map { (CgroupPath.root.appending($0), rootCpuset) }
        }
        let names = depth == .detailed ? Self.detailedFiles : Self.planningFiles
        while let (path, inherited) = stack.popLast() {
            // A carried group starts from its last entry and reads its numa_stat (index 0) at most.
            let kept = carried[path]
            let reading = kept.map { $0.readsNumaStat ? [names[0]] : [] } ?? names
            var numaStat = kept?.entry.numaStat ?? NumaStat(), pressure = kept?.entry.pressure ?? .zero
            var cpuset = kept?.entry.cpusetMems ?? inherited
            var pids = kept?.entry.pids, memoryStat = kept?.entry.memoryStat, current = kept?.entry.memoryCurrent
            let children: [String]
            do {
                children = try files.visitDirectory(directory(of: path), names: reading, listSubdirectories: true) { index, bytes in
                    guard let bytes else { return }
                    switch index {
                    case 0: numaStat = KernelText.numaStat(bytes: bytes)
                    case 1: pressure = KernelText.pressure(bytes: bytes) ?? .zero
                    // Without the cpuset controller the group's nodes are its parent's.
                    case 2: cpuset = NodeSet.parseList(utf8: bytes) ?? inherited
                    case 3: pids = KernelText.pids(bytes: bytes)
                    case 4: memoryStat = KernelText.memoryStat(String(decoding: bytes, as: UTF8.self))
                    default: current = ByteTrim.uint64(String(decoding: bytes, as: UTF8.self))
                    }
                }
            } catch {
                vanished += 1
                continue
            }
            if kept != nil { carriedPaths.insert(path) }
            // Every cgroup has cgroup.procs: without it, the group was removed mid-read.
            guard let pids else { vanished += 1; continue }
            groups.append(CgroupSnapshot(path: path, pids: pids, numaStat: numaStat, memoryStat: memoryStat,
                                         memoryCurrent: current, pressure: pressure, cpusetMems: cpuset))
            for child in children { stack.append((path.appending(child), cpuset)) }
        }
        var snapshot = HostSnapshot(topology: topology, groups: groups,
                                    tierdAllowedNodes: tierdAllowedNodes() ?? allNodes, vanishedWhileReading: vanished)
        snapshot.kernelMovers = kernelMovers()
        snapshot.carried = carriedPaths
        snapshot.tracksWrittenPages = tracksWrittenPages
        return snapshot
    }

    /// `snapshot` with the NUMA policies of the tasks of the groups `KernelShield` names read in
    /// (`CgroupSnapshot.tasksBoundTo`, `boundTasks`): none while the kernel's reclaim does not demote.
    public func readingTaskMempolicies(_ snapshot: HostSnapshot, policy: Policy) -> HostSnapshot {
        let wanted = Set(KernelShield.groupsToReadMempolicies(snapshot: snapshot, policy: policy))
        guard !wanted.isEmpty else { return snapshot }
        var snapshot = snapshot
        for index in snapshot.groups.indices where wanted.contains(snapshot.groups[index].path) {
            (snapshot.groups[index].tasksBoundTo, snapshot.groups[index].boundTasks) = TaskMempolicies.read(snapshot.groups[index].pids, files: files)
        }
        return snapshot
    }

    /// The files a planning tick reads per group; without the memory controller the memory files
    /// are absent (the group's memory is charged to an ancestor).
    static let planningFiles = ["memory.numa_stat", "memory.pressure", "cpuset.mems.effective", "cgroup.procs"]
    static let detailedFiles = planningFiles + ["memory.stat", "memory.current"]

}

/// A single number file such as `memory.current` ("123456\n").
enum ByteTrim {
    static func uint64(_ text: String) -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        for byte in text.utf8 {
            if byte >= 48 && byte <= 57 {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - 48))
                if o1 || o2 { return nil }
                value = sum; digits += 1
            } else if byte != UInt8(ascii: "\n") && byte != UInt8(ascii: " ") {
                return nil
            }
        }
        return digits > 0 ? value : nil
    }
}
