import TierCore

/// The NUMA policies tasks set for themselves (numactl --membind, set_mempolicy), read from the
/// head of `/proc/PID/numa_maps`: each mapping's line names its policy, the task's own where the
/// mapping has none. Only the first line is needed, and the kernel makes numa_maps one mapping
/// at a time, so a small read costs a walk of the first mappings only (the program's text), not
/// of the task's whole memory.
public enum TaskMempolicies {
    /// Enough for the first line of numa_maps and then some.
    static let headBytes = 512

    /// The nodes every task of `pids` binds itself to (the union of their explicit policies); nil
    /// when one has none, or when none could be read. A task gone mid-read is passed over.
    public static func boundNodes(of pids: [Int32], files: any HostFiles) -> NodeSet? {
        boundNodes(policies(of: pids, files: files))
    }

    static func boundNodes(_ policies: [Int32: Mempolicy]) -> NodeSet? {
        guard !policies.isEmpty, policies.values.allSatisfy(\.isExplicit) else { return nil }
        let union = policies.values.reduce(NodeSet.empty) { $0.union($1.nodes) }
        return union.isEmpty ? nil : union
    }

    /// Each task's own policy, as its first mapping shows it; a task gone mid-read is left out.
    static func policies(of pids: [Int32], files: any HostFiles) -> [Int32: Mempolicy] {
        var policies: [Int32: Mempolicy] = [:]
        for pid in pids { policies[pid] = firstMappingPolicy(pid, files: files) }
        return policies
    }

    /// What a group's tasks bind themselves to: the nodes all of them do (`CgroupSnapshot.tasksBoundTo`),
    /// or, where some do and some do not, the ones that do with where their pages are, from their
    /// whole numa_maps (`CgroupSnapshot.boundTasks`).
    public static func read(_ pids: [Int32], files: any HostFiles) -> (all: NodeSet?, some: [BoundTask]) {
        let policies = policies(of: pids, files: files)
        if let all = boundNodes(policies) { return (all, []) }
        var bound: [BoundTask] = []
        for (pid, policy) in policies.sorted(by: { $0.key < $1.key }) where policy.isExplicit && !policy.nodes.isEmpty {
            guard let text = try? files.read(KernelPaths.process(pid) + "/numa_maps") else { continue }
            var bytes: [Int: UInt64] = [:]
            for entry in KernelText.numaMaps(text) {
                for (node, pages) in entry.pagesPerNode { bytes[node, default: 0] += pages * entry.pageSize }
            }
            bound.append(BoundTask(pid: pid, nodes: policy.nodes, bytesPerNode: bytes))
        }
        return (nil, bound)
    }

    /// The policy on the task's first mapping: its own, unless it set one for that mapping alone.
    static func firstMappingPolicy(_ pid: Int32, files: any HostFiles) -> Mempolicy? {
        guard let head = files.readHead(KernelPaths.process(pid) + "/numa_maps", upTo: headBytes),
              let newline = head.firstIndex(of: "\n") else { return nil }
        return KernelText.numaMapsLine(head[..<newline])?.policy
    }
}
