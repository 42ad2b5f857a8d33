import TierCore
import TierLinux

/// The human-readable plan `tierd --once` and `tierctl plan` print: every action and every skip
/// with its reason.
public enum PlanText {
    public static func render(_ report: TickReport, findings: [StartupFinding] = [], dryRun: Bool) -> String {
        var lines: [String] = findings.map { "# \($0)" }
        if let error = report.collectError { lines.append("error: cannot read the host: \(error)"); return lines.joined(separator: "\n") }
        let s = report.plan.summary
        if let snapshot = report.snapshot {
            let t = snapshot.topology
            lines.append("topology: fast \(t.fast) slow \(t.slow) (\(t.source.rawValue)); tierd may use nodes \(snapshot.tierdAllowedNodes); \(snapshot.groups.count) groups")
        }
        lines.append("dram: free \(formatBytes(s.dramFree)) of \(formatBytes(s.dramTotal)); low \(formatBytes(s.lowWatermark)) high \(formatBytes(s.highWatermark)); reclaiming \(s.reclaiming)")
        lines.append("promotion need \(formatBytes(s.promotionNeed)); demotion demand \(formatBytes(s.demotionDemand))")
        if report.plan.actions.isEmpty { lines.append("actions: none") }
        for (index, action) in report.plan.actions.enumerated() {
            lines.append("action \(index + 1): \(action)")
            if index < report.outcomes.count {
                let outcome = report.outcomes[index]
                if let dropped = outcome.dropped { lines.append("  dropped: \(dropped)") }
                for task in outcome.tasks { lines.append("  pid \(task.pid): \(task.result)") }
            }
        }
        for skip in report.plan.skips { lines.append(skip.description) }
        if dryRun { lines.append("(dry run: nothing was moved)") }
        return lines.joined(separator: "\n")
    }
}
