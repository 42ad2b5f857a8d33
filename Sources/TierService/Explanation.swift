import TierCore

/// `tierctl explain`: one group through the planner's eyes — which workload rule applies and
/// where it came from, the group's own memory per node, how its target nodes are derived, and the
/// decision. Computed once as a document (what `--json` prints), rendered as text from it.
public struct Explanation: Codable, Sendable, Equatable {
    public struct Rule: Codable, Sendable, Equatable {
        public var demote: String
        public var priority: Int?
        public var dramFloorBytes: UInt64?
        /// "some_avg10 20%"; nil: no guard.
        public var pressureGuard: String?
        public var promote: Bool?
        public var mempolicy: String
    }

    /// One tier's target nodes and how they were derived.
    public struct Targets: Codable, Sendable, Equatable {
        public var tier: String
        public var cpuset: String
        public var tierdNodes: String
        /// The intersection; "" when empty.
        public var nodes: String
    }

    public var group: String
    public var processes: Int
    public var workload: String?
    /// "matched here", "inherited from /a/b", or "no workload matches: the default rule".
    public var ruleSource: String?
    public var rule: Rule?
    public var ownBytesPerNode: [String: UInt64]
    public var pressure: DaemonStatus.Pressure
    public var memoryCurrent: UInt64?
    public var kernelPagesDemoted: UInt64?
    public var kernelPagesPromoted: UInt64?
    public var refaultsAnon: UInt64?
    public var refaultsFile: UInt64?
    public var demotionTargets: Targets
    public var promotionTargets: Targets
    /// What tierd would do now: each action, or the skip's reason; "nothing to do" when neither.
    public var decisions: [String]
    /// An opted-in group's demotion mode now: `cold` or `task`, and why `cold` could not be used.
    public var demotionMode: String?
    /// An opted-in group's written pages on slow nodes: whether and how they come back (`controller.hot_pages`).
    public var hotPages: String?
    /// While the kernel's reclaim demotes: the `memory.low` (or `memory.min`) tierd holds the group at, and why.
    public var kernelShield: String?
    /// The kernel's own movers that are on and may undo tierd's placement for this group's rule.
    public var kernelMovers: [String] = []
    /// What the daemon last did to the group, task by task (from its status; none offline).
    public var lastActions: [DaemonStatus.Action] = []
    public var lastActionsTick: UInt64?

    /// - Parameter state: what the planner carries (the daemon's, or a fresh one offline): a
    ///   workload whose cold demotion lost pages, or a group a mempolicy refused, demotes by task.
    public init(path: CgroupPath, cgroup: CgroupSnapshot, snapshot: HostSnapshot, policy: Policy, plan: MigrationPlan,
                state: ControllerState = ControllerState()) {
        let topology = snapshot.topology
        let resolved = policy.resolve(snapshot.groups.map(\.path))[path]
        let own = snapshot.ownNumaStats()[path] ?? NumaStat()
        group = path.description
        processes = cgroup.pids.count
        workload = resolved?.name
        ruleSource = resolved.map { $0.matchedAt.map { $0 == path ? "matched here" : "inherited from \($0)" } ?? "no workload matches: the default rule" }
        rule = resolved.map { Self.rule($0.rule) }
        ownBytesPerNode = Dictionary(uniqueKeysWithValues: own.nodes.sorted.map { (String($0), own.bytes(on: $0)) })
        pressure = DaemonStatus.Pressure(someAvg10: cgroup.pressure.some.avg10, fullAvg10: cgroup.pressure.full.avg10)
        memoryCurrent = cgroup.memoryCurrent
        kernelPagesDemoted = cgroup.memoryStat?.pagesDemotedByKernel
        kernelPagesPromoted = cgroup.memoryStat?.pagesPromotedByKernel
        refaultsAnon = cgroup.memoryStat?.refaultsAnon
        refaultsFile = cgroup.memoryStat?.refaultsFile
        func targets(_ tier: NodeSet) -> Targets {
            Targets(tier: tier.description, cpuset: cgroup.cpusetMems.description, tierdNodes: snapshot.tierdAllowedNodes.description,
                    nodes: tier.intersection(cgroup.cpusetMems).intersection(snapshot.tierdAllowedNodes).description)
        }
        demotionTargets = targets(topology.slow)
        promotionTargets = targets(topology.fast)
        let actions = plan.actions.filter { $0.group == path }.map { "\($0)" }
        let skips = plan.skips.filter { $0.group == path }.map { "skipped, \($0.reason)" }
        decisions = actions + skips
        if decisions.isEmpty { decisions = ["nothing to do"] }
        if let movers = snapshot.kernelMovers, let rule = resolved?.rule { kernelMovers = movers.findings(for: rule).map(\.text) }
        if let claim = KernelShield.protections(snapshot: snapshot, policy: policy)[path] {
            let why = resolved.flatMap { KernelShield.reason(cgroup, $0, slow: topology.slow) } ?? "it holds shielded groups"
            kernelShield = "\(policy.controller.kernelShield.file) held at \(formatBytes(claim)) or its own value if higher, so the kernel's reclaim does not demote it (\(why))"
        }
        if let resolved, resolved.rule.demote == .allowed {
            demotionMode = Planner.demotionMechanism(rule: resolved.rule, workload: resolved.name, group: cgroup, snapshot: snapshot,
                                                     hasChildren: snapshot.parentGroups().contains(path), state: state).description
            hotPages = Self.hotPages(policy.controller, tracked: snapshot.tracksWrittenPages)
        }
    }

    /// What `tierctl explain` says of an opted-in group's written slow pages under `settings`,
    /// on a kernel that keeps soft-dirty bits tierd can use (`tracked`) or not.
    public static func hotPages(_ settings: ControllerSettings, tracked: Bool) -> String {
        guard settings.hotPages == .written else { return "stay on the slow tier (controller.hot_pages: off)" }
        guard tracked else { return "stay on the slow tier: the kernel keeps no soft-dirty bits tierd can clear and read" }
        return "pages it writes on slow nodes, looked for every \(formatDuration(settings.hotLookInterval)), come back to DRAM above the low watermark, at most \(formatBytes(settings.hotPromotionRate))/s, then are kept from demotion for \(formatDuration(settings.hotHold))"
    }

    static func rule(_ rule: WorkloadRule) -> Rule {
        let optedIn = rule.demote == .allowed
        return Rule(demote: rule.demote.rawValue, priority: optedIn ? rule.priority : nil, dramFloorBytes: optedIn ? rule.dramFloor : nil,
                    pressureGuard: optedIn ? rule.pressureGuard.map { "\($0.kind.rawValue)_avg10 \(Int($0.threshold * 100))%" } : nil,
                    promote: optedIn ? nil : rule.promote, mempolicy: rule.mempolicy.rawValue)
    }

    /// The text `tierctl explain` prints.
    public var text: String {
        var lines = ["cgroup \(group): \(processes) processes"]
        if let workload, let ruleSource, let rule {
            lines.append("workload: \(workload) (\(ruleSource))")
            var ruleText = "demote: \(rule.demote)"
            if let priority = rule.priority, let floor = rule.dramFloorBytes {
                ruleText += ", priority \(priority), dram_floor \(formatBytes(floor))"
                if let guardText = rule.pressureGuard { ruleText += ", pressure_guard \(guardText)" }
            }
            if let promote = rule.promote { ruleText += ", promote: \(promote)" }
            ruleText += ", mempolicy: \(rule.mempolicy)"
            lines.append("rule: \(ruleText)")
        }
        if let demotionMode { lines.append("demotion mode: \(demotionMode)") }
        if let hotPages { lines.append("hot pages: \(hotPages)") }
        let nodes = ownBytesPerNode.keys.compactMap(Int.init).sorted()
        lines.append("own memory: " + nodes.map { "node \($0) \(formatBytes(ownBytesPerNode[String($0)] ?? 0))" }.joined(separator: ", "))
        lines.append("pressure: some avg10 \(Self.percent(pressure.someAvg10)), full avg10 \(Self.percent(pressure.fullAvg10))")
        if let memoryCurrent { lines.append("memory.current: \(formatBytes(memoryCurrent)) (this group and its children)") }
        if let demoted = kernelPagesDemoted, let promoted = kernelPagesPromoted {
            lines.append("kernel's own moves (memory.stat): \(demoted) pages demoted, \(promoted) promoted; refaults anon \(refaultsAnon ?? 0), file \(refaultsFile ?? 0)")
        }
        for (name, targets) in [("demotion", demotionTargets), ("promotion", promotionTargets)] {
            let tierName = name == "demotion" ? "slow" : "fast"
            lines.append("\(name) targets: \(tierName) \(targets.tier) ∩ cpuset \(targets.cpuset) ∩ tierd \(targets.tierdNodes) = \(targets.nodes.isEmpty ? "none" : targets.nodes)")
        }
        lines += decisions.map { "decision now: \($0)" }
        lines += kernelMovers.map { "kernel mover, may undo it: \($0)" }
        if let kernelShield { lines.append("kernel shield: \(kernelShield)") }
        if let tick = lastActionsTick {
            for action in lastActions {
                let moved = action.movedBytes.map { formatBytes($0) } ?? "nothing"
                lines.append("last moved at tick \(tick): \(action.direction) planned \(formatBytes(action.bytes)), moved \(moved): \(action.reason)"
                             + (action.dropped.map { " (dropped: \($0))" } ?? ""))
                for task in action.tasks { lines.append("  pid \(task.pid): \(task.detail)") }
            }
        }
        return lines.joined(separator: "\n")
    }

    static func percent(_ fraction: Double) -> String { "\((fraction * 1000).rounded() / 10)%" }
}

/// A duration as an operator writes it: "5 s", "500 ms".
func formatDuration(_ duration: Duration) -> String {
    let seconds = duration.seconds
    return seconds >= 1 && seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(Int((seconds * 1000).rounded())) ms"
}
