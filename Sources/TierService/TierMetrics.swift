import Prometheus
import Synchronization
import TierCore
import TierLinux

/// tierd's Prometheus metrics, served at `/metrics`. Each daemon owns its registry (swift-prometheus,
/// on swift-metrics' core types) rather than bootstrapping the process-global MetricsSystem, so two
/// daemons in one test process never share counters.
///
/// Cardinality stays bounded on a host with thousands of pods: series are per workload, per node
/// and per reason code; the only per-group series (`tierd_group_memory_bytes`) exist for groups
/// tierd has moved memory of, and are dropped when such a group leaves the snapshot.
public final class TierMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "tierd", metricName: metric, unitName: unit, helpText: help)
    }

    static var lostBytes: MetricNameDescriptor { name("reclaim_lost", "bytes_total", "Bytes a cold demotion's reclaim took and did not demote while the group went to swap (or swap was not visible); must stay 0.") }
    static var slowTierDroppedBytes: MetricNameDescriptor { name("reclaim_slow_tier_dropped", "bytes_total", "Page cache of a group on the slow tier that a cold demotion's reclaim dropped (that tier has nowhere to demote to).") }
    static var kernelLostBytes: MetricNameDescriptor { name("kernel_reclaim_lost", "bytes_total", "Bytes the kernel's own reclaim took from a group and did not demote while tierd's cold demotion of it ran.") }
    static var movedBytes: MetricNameDescriptor { name("moved", "bytes_total", "Bytes tierd moved, by direction, mode and workload (what left the source nodes).") }
    static var moveFailures: MetricNameDescriptor { name("move_failures", "total", "Task moves that moved nothing or less than asked, by reason.") }
    static var actionsDropped: MetricNameDescriptor { name("actions_dropped", "total", "Planned actions dropped before any move (group gone, cpuset changed, room taken).") }
    static var skips: MetricNameDescriptor { name("skips", "total", "Groups left alone at a tick, by reason.") }
    static var ticks: MetricNameDescriptor { name("ticks", "total", "Control cycles that read the host (as the journal's action events number them).") }
    static var collectFailures: MetricNameDescriptor { name("collect_failures", "total", "Ticks at which the host could not be read.") }
    static var tickDuration: MetricNameDescriptor { name("tick_duration", "seconds", "Duration of one control cycle: collect, plan and moves.") }
    static var workloadBytes: MetricNameDescriptor { name("workload_memory", "bytes", "Memory of a workload's groups (their own, less children), by node.") }
    static var groupBytes: MetricNameDescriptor { name("group_memory", "bytes", "Memory of a group tierd has moved memory of (its own), by node.") }
    static var workloadPressure: MetricNameDescriptor { name("workload_pressure_some_avg10", "ratio", "Highest memory PSI some avg10 among a workload's groups (0-1).") }
    static var nodeFree: MetricNameDescriptor { name("node_free", "bytes", "Free memory per NUMA node.") }
    static var nodeTotal: MetricNameDescriptor { name("node_total", "bytes", "Total memory per NUMA node.") }
    static var reclaiming: MetricNameDescriptor { name("reclaiming", "", "1 while tierd brings free DRAM back up to the high watermark.") }
    static var reserveUnused: MetricNameDescriptor { name("dram_reserve_unused", "bytes", "The part of controller.dram.reserve opt-out workloads do not use in DRAM yet: kept free for them on top of the watermarks.") }
    static var policyGeneration: MetricNameDescriptor { name("policy_generation", "", "1 at start, plus one per reload that took effect.") }
    static var lastReload: MetricNameDescriptor { name("policy_last_reload_success", "", "1 if the last reload took effect, 0 if it was refused.") }
    static var writeFailures: MetricNameDescriptor { name("log_write_failures", "total", "Writes the journal, the audit log or the metrics textfile could not make (a full disk), by file.") }
    static var reloads: MetricNameDescriptor { name("policy_reloads", "total", "Policy reloads, by result.") }

    /// Moves whose result is not a failure: everything else counts under `tierd_move_failures_total`.
    static let successfulResults: Set<String> = ["moved", "would_move", "nothing_to_move", "is_tierd"]

    private let perGroup = PerGroupGauges()
    private let writeFailuresSeen = Mutex<[String: UInt64]>([:])

    /// Brings `tierd_log_write_failures_total` up to the files' own counts.
    public func recordWriteFailures(_ counts: [String: UInt64]) {
        writeFailuresSeen.withLock { seen in
            for (file, count) in counts {
                let counter = registry.makeCounter(descriptor: Self.writeFailures, labels: [("file", file)])
                if count > seen[file, default: 0] { counter.increment(by: Int64(count - seen[file, default: 0])) }
                seen[file] = max(count, seen[file, default: 0])
            }
        }
    }

    public init() {
        _ = registry.makeCounter(descriptor: Self.ticks)
        _ = registry.makeCounter(descriptor: Self.collectFailures)
        _ = registry.makeCounter(descriptor: Self.actionsDropped)
        _ = registry.makeCounter(descriptor: Self.lostBytes)
        _ = registry.makeCounter(descriptor: Self.kernelLostBytes)
        _ = registry.makeCounter(descriptor: Self.slowTierDroppedBytes)
        registry.makeGauge(descriptor: Self.policyGeneration).set(Double(1))
    }

    /// Counts one tick: what moved, what failed and why, what was skipped, how long it took; and sets
    /// the gauges from the status built after it.
    public func record(_ report: TickReport, status: DaemonStatus, duration: Duration) {
        // As the ledger counts them (and the journal's action events number them): ticks that read the host.
        if report.collectError != nil {
            registry.makeCounter(descriptor: Self.collectFailures).increment()
        } else {
            registry.makeCounter(descriptor: Self.ticks).increment()
        }
        registry.makeDurationHistogram(descriptor: Self.tickDuration, labels: [], buckets: Self.tickBuckets).record(duration)
        recordMoves(report.outcomes)
        for skip in report.plan.skips {
            registry.makeCounter(descriptor: Self.skips, labels: [("reason", skip.reason.code)]).increment()
        }
        setGauges(status, movedGroups: Set(report.outcomes.filter { $0.movedBytes > 0 }.map(\.action.group.description)))
    }

    /// Counts what moved and what failed: a tick's moves, or a manual one's.
    public func recordMoves(_ outcomes: [ActionOutcome]) {
        for outcome in outcomes {
            let action = outcome.action
            if outcome.movedBytes > 0 {
                registry.makeCounter(descriptor: Self.movedBytes, labels: [
                    ("direction", action.direction.rawValue), ("mode", action.pages == .recentlyWritten ? "hot" : action.mechanism.mode.rawValue),
                    ("workload", action.workload),
                ]).increment(by: Int64(outcome.movedBytes))
            }
            if outcome.lostBytes > 0 {
                registry.makeCounter(descriptor: Self.lostBytes).increment(by: Int64(outcome.lostBytes))
            }
            if outcome.kernelLostBytes > 0 {
                registry.makeCounter(descriptor: Self.kernelLostBytes).increment(by: Int64(outcome.kernelLostBytes))
            }
            if outcome.slowTierDroppedBytes > 0 {
                registry.makeCounter(descriptor: Self.slowTierDroppedBytes).increment(by: Int64(outcome.slowTierDroppedBytes))
            }
            if outcome.dropped != nil { registry.makeCounter(descriptor: Self.actionsDropped).increment() }
            for task in outcome.tasks where !Self.successfulResults.contains(task.result.code) {
                registry.makeCounter(descriptor: Self.moveFailures, labels: [("reason", task.result.code)]).increment()
            }
        }
    }

    public func setGauges(_ status: DaemonStatus, movedGroups: Set<String>) {
        for node in status.nodes {
            let labels = [("node", String(node.id)), ("tier", node.tier)]
            registry.makeGauge(descriptor: Self.nodeFree, labels: labels).set(Double(node.freeBytes))
            registry.makeGauge(descriptor: Self.nodeTotal, labels: labels).set(Double(node.totalBytes))
        }
        registry.makeGauge(descriptor: Self.reclaiming).set(status.carried.reclaiming ? Double(1) : Double(0))
        if let unused = status.dram.reserveUnusedBytes { registry.makeGauge(descriptor: Self.reserveUnused).set(Double(unused)) }
        let groupsOf = Dictionary(grouping: status.groups, by: \.workload)
        for workload in status.workloads {
            for node in status.nodes {
                registry.makeGauge(descriptor: Self.workloadBytes, labels: [("workload", workload.name), ("node", String(node.id))])
                    .set(Double(workload.ownBytesPerNode[String(node.id)] ?? 0))
            }
            let worst = (groupsOf[workload.name] ?? []).map(\.pressure.someAvg10).max() ?? 0
            registry.makeGauge(descriptor: Self.workloadPressure, labels: [("workload", workload.name)]).set(worst)
        }
        perGroup.update(status, moved: movedGroups, registry: registry)
    }

    /// Counts a reload and its result.
    public func recordReload(ok: Bool, generation: UInt64) {
        registry.makeCounter(descriptor: Self.reloads, labels: [("result", ok ? "applied" : "refused")]).increment()
        registry.makeGauge(descriptor: Self.lastReload).set(ok ? Double(1) : Double(0))
        registry.makeGauge(descriptor: Self.policyGeneration).set(Double(generation))
    }

    /// The Prometheus text exposition.
    public func text() -> String { registry.emitToString() }

    static let tickBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
                                          .milliseconds(500), .seconds(1), .seconds(5), .seconds(30)]
}

/// The per-group gauges: registered for a group once tierd moved its memory, updated each tick,
/// unregistered when the group is gone.
final class PerGroupGauges: Sendable {
    private let gauges = Mutex<[String: [Int: Gauge]]>([:])

    func update(_ status: DaemonStatus, moved: Set<String>, registry: PrometheusCollectorRegistry) {
        let present = Dictionary(status.groups.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        gauges.withLock { gauges in
            for (path, byNode) in gauges where present[path] == nil {
                byNode.values.forEach(registry.unregisterGauge)
                gauges[path] = nil
            }
            for path in moved where gauges[path] == nil { gauges[path] = [:] }
            for (path, _) in gauges {
                guard let group = present[path] else { continue }
                for node in status.nodes {
                    let gauge = gauges[path]?[node.id] ?? registry.makeGauge(descriptor: TierMetrics.groupBytes, labels: [
                        ("group", path), ("workload", group.workload), ("node", String(node.id)),
                    ])
                    gauges[path, default: [:]][node.id] = gauge
                    gauge.set(Double(group.ownBytesPerNode[String(node.id)] ?? 0))
                }
            }
        }
    }
}
