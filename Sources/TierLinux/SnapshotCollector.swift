import TierCore

/// Reads one `HostSnapshot` per tick from the kernel's files: the node topology and every
/// cgroup below the v2 mount. A group or file that vanishes mid-read is counted and skipped.
public struct SnapshotCollector: Sendable {
    public let files: any HostFiles
    /// The cgroup v2 mount point as the kernel names it ("/sys/fs/cgroup").
    public let cgroupMount: String

    /// What goes wrong before a snapshot can be taken at all.
    public enum SetupError: Error, CustomStringConvertible {
        case noCgroup2(mountinfo: String)
        case unreadable(HostFileError)
        public var description: String {
            switch self {
            case .noCgroup2(let path): "no cgroup v2 file system in \(path): tierd needs the unified hierarchy"
            case .unreadable(let error): "\(error)"
            }
        }
    }

    public init(files: any HostFiles) throws {
        self.files = files
        let mountinfo: String
        do { mountinfo = try files.read(KernelPaths.mountinfo) } catch { throw SetupError.unreadable(error) }
        guard let mount = KernelText.cgroup2MountPoint(mountinfo: mountinfo) else {
            throw SetupError.noCgroup2(mountinfo: KernelPaths.mountinfo)
        }
        cgroupMount = mount
    }

    public func directory(of group: CgroupPath) -> String {
        group.isRoot ? cgroupMount : cgroupMount + "/" + group.relative
    }

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
        var nodes: [MemoryNode] = []
        let onlineOrder = online.sorted
        for id in online.intersection(withMemory) {
            guard let memory = KernelText.nodeMeminfo(try files.read(KernelPaths.node(id) + "/meminfo")) else { continue }
            let row = (try? files.read(KernelPaths.node(id) + "/distance")).map(KernelText.distances) ?? []
            var distances: [Int: Int] = [:]
            for (index, distance) in row.enumerated() where index < onlineOrder.count { distances[onlineOrder[index]] = distance }
            nodes.append(MemoryNode(id: id, hasCPU: withCPU.contains(id), totalBytes: memory.total, freeBytes: memory.free,
                                    memoryTier: tierOf[id], distances: distances))
        }
        return Topology.classify(nodes, selection: selection)
    }

    /// The nodes tierd's own cpuset lets it use: migrate_pages(2) silently ANDs targets with it.
    public func tierdAllowedNodes() -> NodeSet? {
        (try? files.read(KernelPaths.selfStatus)).flatMap { KernelText.memsAllowed(status: $0) }
    }

    /// Reads the whole host. The root cgroup itself is not listed: tierd never acts on it.
    public func collect(selection: TierSelection) throws(HostFileError) -> HostSnapshot {
        let topology = try topology(selection: selection)
        let allNodes = NodeSet(topology.nodes.map(\.id))
        var groups: [CgroupSnapshot] = []
        var vanished = 0
        let rootCpuset = (try? files.read(cgroupMount + "/cpuset.mems.effective")).flatMap { NodeSet.parseList($0) } ?? allNodes
        var stack: [(CgroupPath, NodeSet)] = []
        if let children = try? files.subdirectories(cgroupMount) {
            stack = children.sorted(by: >).map { (CgroupPath.root.appending($0), rootCpuset) }
        }
        while let (path, inherited) = stack.popLast() {
            let dir = directory(of: path)
            do {
                let group = try readGroup(path, dir, inherited)
                groups.append(group)
                let children = try files.subdirectories(dir)
                stack.append(contentsOf: children.sorted(by: >).map { (path.appending($0), group.cpusetMems) })
            } catch {
                vanished += 1
            }
        }
        return HostSnapshot(topology: topology, groups: groups,
                            tierdAllowedNodes: tierdAllowedNodes() ?? allNodes, vanishedWhileReading: vanished)
    }

    private func readGroup(_ path: CgroupPath, _ dir: String, _ inheritedCpuset: NodeSet) throws(HostFileError) -> CgroupSnapshot {
        let pids = KernelText.pids(try files.read(dir + "/cgroup.procs"))
        // Without the memory or cpuset controller a group has no such files: its memory is
        // charged to an ancestor and its cpuset is its parent's.
        let numaStat = optional(dir + "/memory.numa_stat").map(KernelText.numaStat) ?? NumaStat()
        let memoryStat = optional(dir + "/memory.stat").map(KernelText.memoryStat) ?? MemoryStat()
        let current = optional(dir + "/memory.current").flatMap { UInt64($0.trimmingCharacters()) } ?? 0
        let pressure = optional(dir + "/memory.pressure").flatMap(KernelText.pressure) ?? .zero
        let cpuset = optional(dir + "/cpuset.mems.effective").flatMap { NodeSet.parseList($0) } ?? inheritedCpuset
        // A group removed after cgroup.procs was read leaves empty reads behind: check it still is.
        guard files.exists(dir + "/cgroup.procs") else { throw .vanished(dir) }
        return CgroupSnapshot(path: path, pids: pids, numaStat: numaStat, memoryStat: memoryStat,
                              memoryCurrent: current, pressure: pressure, cpusetMems: cpuset)
    }

    private func optional(_ path: String) -> String? { try? files.read(path) }
}

extension String {
    func trimmingCharacters() -> String {
        String(self.filter { !$0.isWhitespace })
    }
}
