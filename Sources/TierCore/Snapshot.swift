/// A cgroup's path relative to the cgroup v2 mount ("" for the root, "batch.slice/job1").
/// Policies match these paths, and tierd never acts on a task outside the one it names.
public struct CgroupPath: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let relative: String

    public init(_ path: String) {
        relative = String(path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/"))
    }

    public static let root = CgroupPath("")
    public var isRoot: Bool { relative.isEmpty }
    public var components: [Substring] { relative.split(separator: "/") }
    public var depth: Int { isRoot ? 0 : relative.utf8.reduce(1) { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 } }

    /// The components as UTF-8 bytes, for glob matching without Character processing.
    public var componentBytes: [ArraySlice<UInt8>] {
        isRoot ? [] : Array(relative.utf8).split(separator: UInt8(ascii: "/"))
    }

    public var parent: CgroupPath? {
        guard !isRoot else { return nil }
        guard let slash = relative.utf8.lastIndex(of: UInt8(ascii: "/")) else { return .root }
        return CgroupPath(normalized: String(relative[..<slash]))
    }

    /// `child` is one directory name, as readdir returns it.
    public func appending(_ child: String) -> CgroupPath {
        CgroupPath(normalized: isRoot ? child : relative + "/" + child)
    }

    private init(normalized: String) { relative = normalized }

    public var description: String { "/" + relative }
    public static func < (a: CgroupPath, b: CgroupPath) -> Bool { a.relative < b.relative }
}

/// One NUMA node as the kernel shows it, with its memory at the time of the snapshot.
public struct MemoryNode: Sendable, Equatable {
    public var id: Int
    public var hasCPU: Bool
    public var totalBytes: UInt64
    public var freeBytes: UInt64
    /// The memory tier the kernel placed the node in (memory_tierN: a higher N is slower), if known.
    public var memoryTier: Int?
    /// Distance to every other node (SLIT), by node id.
    public var distances: [Int: Int]
    /// The kernel's high watermark for the node (its zones' `high` in /proc/zoneinfo), in bytes:
    /// below it kswapd reclaims there, and a move into the node competes with that. nil: unknown.
    public var highWatermark: UInt64?
    /// The most its per-CPU page lists hold, in bytes: free, but not in MemFree. A move into the
    /// node refills them from the free pages, so MemFree can fall by this much more than the move.
    public var perCPUListsHigh: UInt64

    public init(id: Int, hasCPU: Bool, totalBytes: UInt64, freeBytes: UInt64,
                memoryTier: Int? = nil, distances: [Int: Int] = [:], highWatermark: UInt64? = nil, perCPUListsHigh: UInt64 = 0) {
        self.id = id; self.hasCPU = hasCPU; self.totalBytes = totalBytes; self.freeBytes = freeBytes
        self.memoryTier = memoryTier; self.distances = distances; self.highWatermark = highWatermark
        self.perCPUListsHigh = perCPUListsHigh
    }

    /// What must stay free for the node to stay above its high watermark as the kernel counts it.
    public var reserve: UInt64 { (highWatermark ?? 0) + perCPUListsHigh }

    /// Free bytes above the reserve: what a demotion may fill without making the kernel reclaim.
    public var roomAboveHighWatermark: UInt64 { freeBytes - min(freeBytes, reserve) }
}

/// Which nodes are fast (DRAM) and which slow, and how that was decided.
public struct Topology: Sendable, Equatable {
    /// Where the fast/slow split came from, for the start-up log and `tierctl status`.
    public enum Source: String, Sendable, Equatable {
        case configured = "configured"
        case memoryTiers = "kernel memory tiers"
        case cpuLessNodes = "CPU-less nodes"
        case singleTier = "a single tier"
    }
    public var nodes: [MemoryNode]
    public var fast: NodeSet
    public var slow: NodeSet
    public var source: Source

    public init(nodes: [MemoryNode], fast: NodeSet, slow: NodeSet, source: Source) {
        self.nodes = nodes.sorted { $0.id < $1.id }; self.fast = fast; self.slow = slow; self.source = source
    }

    /// Splits `nodes` into tiers: an explicit selection wins; then the kernel's memory tiers
    /// (the lowest-numbered tier is fast, all others slow); then CPU-less nodes are slow.
    /// With none of these, everything is fast and there is no slow tier (observe mode).
    public static func classify(_ nodes: [MemoryNode], selection: TierSelection) -> Topology {
        let all = NodeSet(nodes.map(\.id))
        if case .explicit(let fast, let slow) = selection {
            return Topology(nodes: nodes, fast: fast.intersection(all), slow: slow.intersection(all), source: .configured)
        }
        let tiers = Set(nodes.compactMap(\.memoryTier))
        if tiers.count >= 2, nodes.allSatisfy({ $0.memoryTier != nil }), let top = tiers.min() {
            let fast = NodeSet(nodes.filter { $0.memoryTier == top }.map(\.id))
            return Topology(nodes: nodes, fast: fast, slow: all.subtracting(fast), source: .memoryTiers)
        }
        let cpu = NodeSet(nodes.filter(\.hasCPU).map(\.id))
        let cpuLess = all.subtracting(cpu)
        if !cpu.isEmpty, !cpuLess.isEmpty {
            return Topology(nodes: nodes, fast: cpu, slow: cpuLess, source: .cpuLessNodes)
        }
        return Topology(nodes: nodes, fast: all, slow: .empty, source: .singleTier)
    }

    public func node(_ id: Int) -> MemoryNode? { nodes.first { $0.id == id } }
    public func freeBytes(_ set: NodeSet) -> UInt64 { nodes.filter { set.contains($0.id) }.reduce(0) { $0 + $1.freeBytes } }
    public func totalBytes(_ set: NodeSet) -> UInt64 { nodes.filter { set.contains($0.id) }.reduce(0) { $0 + $1.totalBytes } }
    /// What `set` must keep free to stay above the kernel's high watermarks (``MemoryNode/reserve``).
    public func reserveBytes(_ set: NodeSet) -> UInt64 { nodes.filter { set.contains($0.id) }.reduce(0) { $0 + $1.reserve } }

    /// `set` ordered nearest-first from the fast nodes (by SLIT distance), so a move goes to the
    /// closest slow node its cpuset allows.
    public func orderedByDistance(_ set: NodeSet) -> [Int] {
        func cost(_ id: Int) -> Int {
            fast.compactMap { node($0)?.distances[id] }.min() ?? Int.max
        }
        return set.sorted.sorted { (cost($0), $0) < (cost($1), $1) }
    }
}

/// Everything the planner knows about one cgroup for one tick.
public struct CgroupSnapshot: Sendable, Equatable {
    public var path: CgroupPath
    /// Processes directly in this group (`cgroup.procs`), not in its children.
    public var pids: [Int32]
    /// Bytes per node for this group and its descendants.
    public var numaStat: NumaStat
    /// `memory.stat` and `memory.current`: read only for a detailed snapshot (`tierctl explain`);
    /// the planner needs neither, so the daemon's tick does not pay for them.
    public var memoryStat: MemoryStat?
    public var memoryCurrent: UInt64?
    public var pressure: Pressure
    /// `cpuset.mems.effective`: the only nodes this group's memory may be on.
    public var cpusetMems: NodeSet
    /// The nodes every task of the group binds itself to with its own NUMA policy (numactl,
    /// set_mempolicy): the union of their explicit policies. nil when a task has none, when the
    /// group has no task, or when the policies were not read (tierd reads them only while the
    /// kernel's reclaim may demote, which ignores them before 6.16).
    public var tasksBoundTo: NodeSet? = nil
    /// The tasks that bind themselves to some nodes in a group whose other tasks do not, with
    /// where their pages are: no shield covers one task, so what the kernel's reclaim demotes of
    /// them is repaired task by task. Read as `tasksBoundTo` is.
    public var boundTasks: [BoundTask] = []

    public init(path: CgroupPath, pids: [Int32], numaStat: NumaStat, memoryStat: MemoryStat? = nil,
                memoryCurrent: UInt64? = nil, pressure: Pressure = .zero, cpusetMems: NodeSet) {
        self.path = path; self.pids = pids; self.numaStat = numaStat; self.memoryStat = memoryStat
        self.memoryCurrent = memoryCurrent; self.pressure = pressure; self.cpusetMems = cpusetMems
    }
}

/// A task bound by its own NUMA policy to `nodes`, and its bytes per node (its numa_maps).
public struct BoundTask: Sendable, Equatable {
    public var pid: Int32
    public var nodes: NodeSet
    public var bytesPerNode: [Int: UInt64]

    public init(pid: Int32, nodes: NodeSet, bytesPerNode: [Int: UInt64]) {
        self.pid = pid; self.nodes = nodes; self.bytesPerNode = bytesPerNode
    }
}

/// One consistent-enough view of the host, read once per tick and never mutated.
/// Groups are listed parents first.
public struct HostSnapshot: Sendable, Equatable {
    public var topology: Topology
    public var groups: [CgroupSnapshot]
    /// The nodes tierd itself may allocate on (its own cpuset): migrate_pages(2) ANDs targets with it.
    public var tierdAllowedNodes: NodeSet
    /// Groups or files that vanished while being read: normal on a container host, only counted.
    public var vanishedWhileReading: Int
    /// Bytes per second by which free DRAM was falling when the tick began (`FreeMemoryTrend`),
    /// sampled by the service between ticks; 0 when not falling or not watched.
    public var dramFallRate: UInt64 = 0
    /// The kernel's own movers as set now (nil: not read, as in a generated snapshot): whether
    /// `cold` demotion can use the kernel's reclaim, and what `tierctl explain` warns of.
    public var kernelMovers: KernelMovers?
    /// Groups whose files this tick did not read: their entries are the last full read's
    /// (`GroupCarrying`); empty on a full read.
    public var carried: Set<CgroupPath> = []
    /// The kernel keeps soft-dirty bits tierd can clear and read (`HotPageFinder.written`);
    /// false where it cannot, or where tierd has not checked.
    public var tracksWrittenPages = false

    public init(topology: Topology, groups: [CgroupSnapshot], tierdAllowedNodes: NodeSet, vanishedWhileReading: Int = 0) {
        self.topology = topology; self.groups = groups
        self.tierdAllowedNodes = tierdAllowedNodes; self.vanishedWhileReading = vanishedWhileReading
    }

    /// The groups that have a child group in the snapshot.
    public func parentGroups() -> Set<CgroupPath> {
        Set(groups.compactMap { $0.path.parent }.filter { !$0.isRoot })
    }

    /// Each group's own bytes per node: its numa_stat less its direct children's.
    public func ownNumaStats() -> [CgroupPath: NumaStat] {
        var index: [CgroupPath: Int] = [:]
        index.reserveCapacity(groups.count)
        for (position, group) in groups.enumerated() { index[group.path] = position }
        var own = groups.map(\.numaStat)
        for group in groups {
            guard let parent = group.path.parent, let position = index[parent] else { continue }
            own[position] = own[position].subtracting(group.numaStat)
        }
        var result: [CgroupPath: NumaStat] = [:]
        result.reserveCapacity(groups.count)
        for (position, group) in groups.enumerated() { result[group.path] = own[position] }
        return result
    }
}
