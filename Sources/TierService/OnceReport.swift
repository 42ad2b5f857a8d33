import TierCore
import TierLinux

/// The plan `tierd --once` and `tierctl plan` print: every action and every skip with its reason,
/// and what each action did when it ran. A document (`tierctl plan --json`), rendered as text.
public struct PlanDocument: Codable, Sendable, Equatable {
    public struct Topology: Codable, Sendable, Equatable {
        public var fast: String
        public var slow: String
        /// Where the tiers came from ("memory_tiers", "cpus", …).
        public var source: String
        public var tierdNodes: String
        public var groups: Int
    }

    public struct DRAM: Codable, Sendable, Equatable {
        public var totalBytes: UInt64
        public var freeBytes: UInt64
        public var lowWatermarkBytes: UInt64
        public var highWatermarkBytes: UInt64
        public var reclaiming: Bool
        public var promotionNeedBytes: UInt64
        public var demotionDemandBytes: UInt64
        public var deferredBytes: UInt64
    }

    public struct Action: Codable, Sendable, Equatable {
        /// The action in one line, as the log has it.
        public var summary: String
        public var detail: DaemonStatus.Action
    }

    /// Start-up findings (`tierd --once`), "level: message".
    public var findings: [String]
    /// Set when the host could not be read: then there is no plan.
    public var error: String?
    public var topology: Topology?
    public var dram: DRAM
    public var actions: [Action]
    public var skips: [DaemonStatus.Skip]
    public var dryRun: Bool

    public init(_ report: TickReport, findings: [StartupFinding] = [], dryRun: Bool) {
        self.findings = findings.map(\.description)
        error = report.collectError
        topology = report.snapshot.map { snapshot in
            let t = snapshot.topology
            return Topology(fast: t.fast.description, slow: t.slow.description, source: t.source.rawValue,
                            tierdNodes: snapshot.tierdAllowedNodes.description, groups: snapshot.groups.count)
        }
        let s = report.plan.summary
        dram = DRAM(totalBytes: s.dramTotal, freeBytes: s.dramFree, lowWatermarkBytes: s.lowWatermark, highWatermarkBytes: s.highWatermark,
                    reclaiming: s.reclaiming, promotionNeedBytes: s.promotionNeed, demotionDemandBytes: s.demotionDemand, deferredBytes: s.deferredBytes)
        actions = report.plan.actions.enumerated().map { index, action in
            Action(summary: action.description,
                   detail: DaemonStatusBuilder.action(action, outcome: index < report.outcomes.count ? report.outcomes[index] : nil))
        }
        skips = report.plan.skips.map(DaemonStatusBuilder.skip)
        self.dryRun = dryRun
    }

    public var text: String {
        var lines: [String] = findings.map { "# \($0)" }
        if let error { lines.append("error: cannot read the host: \(error)"); return lines.joined(separator: "\n") }
        if let t = topology {
            lines.append("topology: fast \(t.fast) slow \(t.slow) (\(t.source)); tierd may use nodes \(t.tierdNodes); \(t.groups) groups")
        }
        lines.append("dram: free \(formatBytes(dram.freeBytes)) of \(formatBytes(dram.totalBytes)); low \(formatBytes(dram.lowWatermarkBytes)) high \(formatBytes(dram.highWatermarkBytes)); reclaiming \(dram.reclaiming)")
        lines.append("promotion need \(formatBytes(dram.promotionNeedBytes)); demotion demand \(formatBytes(dram.demotionDemandBytes))")
        if actions.isEmpty { lines.append("actions: none") }
        for (index, action) in actions.enumerated() {
            lines.append("action \(index + 1): \(action.summary)")
            if let dropped = action.detail.dropped { lines.append("  dropped: \(dropped)") }
            for task in action.detail.tasks { lines.append("  pid \(task.pid): \(task.detail)") }
        }
        for skip in skips { lines.append("skip \(skip.group) [\(skip.workload)]: \(skip.detail)") }
        if dryRun { lines.append("(dry run: nothing was moved)") }
        return lines.joined(separator: "\n")
    }
}
