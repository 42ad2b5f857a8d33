import TierCore

/// `tierctl status` as a person reads it: nodes, workloads, the groups tierd has a word about, the
/// last plan and what has moved so far. Pure, so its output is tested byte for byte.
public enum StatusText {
    public static func render(_ status: DaemonStatus) -> String {
        var out: [String] = []
        out.append("tierd: \(status.ticks) tick\(status.ticks == 1 ? "" : "s"), the last took \(format1(status.lastTickSeconds)) s\(status.dryRun ? ", dry run (moves nothing)" : "")")
        out.append("policy: \(status.policy.file), generation \(status.policy.generation)" + reloadText(status.policy))
        if let error = status.collectError { out.append("last tick could not read the host: \(error)") }
        out.append("")
        out += table(["NODE", "TIER", "TOTAL", "FREE"], status.nodes.map {
            [String($0.id), $0.tier + ($0.memoryTier.map { " (memory_tier\($0))" } ?? ""), formatBytes($0.totalBytes), formatBytes($0.freeBytes)]
        })
        out.append("DRAM: \(formatBytes(status.dram.freeBytes)) free of \(formatBytes(status.dram.totalBytes)); watermarks low \(formatBytes(status.dram.lowWatermarkBytes)), high \(formatBytes(status.dram.highWatermarkBytes)); "
                   + (status.carried.reclaiming ? "reclaiming" : "not reclaiming")
                   + (status.dram.reserveBytes.map { reserve in
                       "; reserve \(formatBytes(reserve)), \(formatBytes(status.dram.reserveUnusedBytes ?? 0)) of it unused and "
                           + (status.dram.reserveMet == true ? "free" : "not yet free")
                   } ?? ""))
        out.append("")
        let nodeIDs = status.nodes.map { String($0.id) }
        out += table(["WORKLOAD", "DEMOTE", "GROUPS"] + nodeIDs.map { "NODE \($0)" } + ["DEMOTED", "PROMOTED"], status.workloads.map { w in
            [w.name, w.demote, String(w.groups)] + nodeIDs.map { formatBytes(w.ownBytesPerNode[$0] ?? 0) }
                + [formatBytes(w.demotedBytes), formatBytes(w.promotedBytes)]
        })
        let shown = status.groups.filter { $0.workload != Policy.defaultWorkloadName || !$0.actions.isEmpty || $0.skip != nil || $0.heldBack }
        if !shown.isEmpty {
            out.append("")
            out += table(["GROUP", "WORKLOAD", "RULE"] + nodeIDs.map { "NODE \($0)" } + ["PSI SOME", "READ", "LAST"], shown.map { g in
                [g.path, g.workload, g.ruleSource] + nodeIDs.map { formatBytes(g.ownBytesPerNode[$0] ?? 0) }
                    + [percent(g.pressure.someAvg10), g.readSecondsAgo > 0 ? "\(Int(g.readSecondsAgo.rounded())) s ago" : "now", last(g)]
            })
        }
        if !status.carried.heldBackGroups.isEmpty {
            out.append("held back (their last move moved nothing; tried again when their tasks change, or after a backoff): " + status.carried.heldBackGroups.joined(separator: ", "))
        }
        out.append("")
        out.append("moved so far: demoted \(formatBytes(status.moved.demotedBytes)), promoted \(formatBytes(status.moved.promotedBytes))"
                   + (status.moved.actionsDropped > 0 ? ", \(status.moved.actionsDropped) actions dropped" : ""))
        let failures = status.moved.taskResults.filter { !TierMetrics.successfulResults.contains($0.key) }.sorted { $0.key < $1.key }
        if !failures.isEmpty { out.append("task moves short: " + failures.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
        return out.joined(separator: "\n") + "\n"
    }

    static func reloadText(_ policy: DaemonStatus.PolicyState) -> String {
        switch policy.lastReloadOK {
        case nil: ""
        case true?: "; last reload applied"
        case false?: "; last reload refused: \(policy.lastReloadError ?? "")"
        }
    }

    static func last(_ group: DaemonStatus.Group) -> String {
        if let first = group.actions.first {
            let planned = group.actions.reduce(0) { $0 + $1.bytes }
            let moved = group.actions.compactMap(\.movedBytes)
            let movedText = moved.isEmpty ? "" : ", moved \(formatBytes(moved.reduce(0, +)))"
            let count = group.actions.count > 1 ? " in \(group.actions.count) actions" : ""
            return "\(first.direction) \(formatBytes(planned))\(count)\(movedText): \(first.reason)"
        }
        if let skip = group.skip { return "skip: \(skip.detail)" }
        return group.heldBack ? "held back" : "-"
    }

    static func percent(_ fraction: Double) -> String { "\((fraction * 1000).rounded() / 10)%" }
    static func format1(_ value: Double) -> String { "\((value * 10).rounded() / 10)" }

    /// Columns padded to their widest cell; the last column is left ragged.
    static func table(_ header: [String], _ rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "  ")
        }
    }
}
