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
        var union = NodeSet.empty, read = 0
        for pid in pids {
            guard let policy = firstMappingPolicy(pid, files: files) else { continue }
            guard policy.isExplicit else { return nil }
            union = union.union(policy.nodes)
            read += 1
        }
        return read > 0 && !union.isEmpty ? union : nil
    }

    /// The policy on the task's first mapping: its own, unless it set one for that mapping alone.
    static func firstMappingPolicy(_ pid: Int32, files: any HostFiles) -> Mempolicy? {
        guard let head = files.readHead(KernelPaths.process(pid) + "/numa_maps", upTo: headBytes),
              let newline = head.firstIndex(of: "\n") else { return nil }
        return KernelText.numaMapsLine(head[..<newline])?.policy
    }
}
