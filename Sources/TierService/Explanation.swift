import TierCore

/// `tierctl explain`: one group through the planner's eyes — which workload rule applies and
/// where it came from, the group's own memory per node, and how its target nodes are derived.
public enum Explanation {
    public static func render(path: CgroupPath, cgroup: CgroupSnapshot, snapshot: HostSnapshot, policy: Policy, plan: MigrationPlan) -> String {
        let topology = snapshot.topology
        let resolved = policy.resolve(snapshot.groups.map(\.path))[path]
        let own = snapshot.ownNumaStats()[path] ?? NumaStat()
        var lines = ["cgroup \(path): \(cgroup.pids.count) processes"]
        if let resolved {
            let origin = resolved.matchedAt.map { $0 == path ? "matched here" : "inherited from \($0)" } ?? "no workload matches: the default rule"
            lines.append("workload: \(resolved.name) (\(origin))")
            let rule = resolved.rule
            var ruleText = "demote: \(rule.demote.rawValue)"
            if rule.demote == .allowed {
                ruleText += ", priority \(rule.priority), dram_floor \(formatBytes(rule.dramFloor))"
                if let guardRule = rule.pressureGuard { ruleText += ", pressure_guard \(guardRule.kind.rawValue)_avg10 \(Int(guardRule.threshold * 100))%" }
            } else {
                ruleText += ", promote: \(rule.promote)"
            }
            ruleText += ", mempolicy: \(rule.mempolicy.rawValue)"
            lines.append("rule: \(ruleText)")
        }
        lines.append("own memory: " + own.nodes.sorted.map { "node \($0) \(formatBytes(own.bytes(on: $0)))" }.joined(separator: ", "))
        lines.append("pressure: some avg10 \(percent(cgroup.pressure.some.avg10)), full avg10 \(percent(cgroup.pressure.full.avg10))")
        if let current = cgroup.memoryCurrent { lines.append("memory.current: \(formatBytes(current)) (this group and its children)") }
        if let stat = cgroup.memoryStat {
            lines.append("kernel's own moves (memory.stat): \(stat.pagesDemotedByKernel) pages demoted, \(stat.pagesPromotedByKernel) promoted; refaults anon \(stat.refaultsAnon), file \(stat.refaultsFile)")
        }
        let slowTargets = topology.slow.intersection(cgroup.cpusetMems).intersection(snapshot.tierdAllowedNodes)
        let fastTargets = topology.fast.intersection(cgroup.cpusetMems).intersection(snapshot.tierdAllowedNodes)
        lines.append("demotion targets: slow \(topology.slow) ∩ cpuset \(cgroup.cpusetMems) ∩ tierd \(snapshot.tierdAllowedNodes) = \(slowTargets.isEmpty ? "none" : slowTargets.description)")
        lines.append("promotion targets: fast \(topology.fast) ∩ cpuset \(cgroup.cpusetMems) ∩ tierd \(snapshot.tierdAllowedNodes) = \(fastTargets.isEmpty ? "none" : fastTargets.description)")
        let actions = plan.actions.filter { $0.group == path }
        let skips = plan.skips.filter { $0.group == path }
        if actions.isEmpty && skips.isEmpty { lines.append("decision now: nothing to do") }
        for action in actions { lines.append("decision now: \(action)") }
        for skip in skips { lines.append("decision now: skipped, \(skip.reason)") }
        return lines.joined(separator: "\n")
    }

    static func percent(_ fraction: Double) -> String { "\((fraction * 1000).rounded() / 10)%" }
}
