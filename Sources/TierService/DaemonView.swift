import TierCore
import TierLinux

/// "What tierd would do now", as the running daemon would decide it: a fresh snapshot planned with
/// the daemon's own policy and carried state (its reclaim hysteresis, rate-limit tokens, held-back
/// groups) at the daemon's own clock. A fresh controller, as an offline `tierctl plan` builds, starts
/// with none of that, and in the middle of a reclaim answers differently. Nothing is moved.
public struct DaemonView: Sendable {
    /// What the daemon last planned with.
    public struct Context: Sendable {
        public var policy: Policy
        public var carried: ControllerState
        /// The daemon's clock origin: plans take `now` on the daemon's own timeline.
        public var origin: ContinuousClock.Instant
        public var dramFallRate: UInt64

        public init(policy: Policy, carried: ControllerState, origin: ContinuousClock.Instant, dramFallRate: UInt64) {
            self.policy = policy; self.carried = carried; self.origin = origin; self.dramFallRate = dramFallRate
        }
    }

    public let collector: SnapshotCollector

    public init(collector: SnapshotCollector) { self.collector = collector }

    /// Plans on a fresh snapshot with the daemon's context; a host that cannot be read is the report's `collectError`.
    public func plan(_ context: Context, at instant: ContinuousClock.Instant = .now, depth: SnapshotCollector.Depth = .planning) -> TickReport {
        do {
            var snapshot = collector.readingTaskMempolicies(try collector.collect(selection: context.policy.tiers, depth: depth),
                                                            policy: context.policy)
            snapshot.dramFallRate = context.dramFallRate
            let (plan, _) = Planner.plan(snapshot: snapshot, policy: context.policy, state: context.carried, now: Instant(instant - context.origin))
            return TickReport(snapshot: snapshot, plan: plan, outcomes: [])
        } catch {
            return TickReport(snapshot: nil, plan: MigrationPlan(), outcomes: [], collectError: "\(error)")
        }
    }

    /// `GET /plan`: what `tierctl plan` prints, as text or (`?format=json`) the document.
    public func planDocument(_ context: Context) -> PlanDocument { PlanDocument(plan(context), dryRun: true) }

    /// `GET /explain?group=PATH`: `tierctl explain` from the daemon's view, and what the daemon last
    /// did to the group, task by task (`last`: from its status); nil when no such group.
    public func explanation(of group: CgroupPath, _ context: Context, last: DaemonStatus.Group? = nil) -> Explanation? {
        let report = plan(context, depth: .detailed)
        guard let snapshot = report.snapshot, let cgroup = snapshot.groups.first(where: { $0.path == group }) else { return nil }
        var explanation = Explanation(path: group, cgroup: cgroup, snapshot: snapshot, policy: context.policy, plan: report.plan,
                                      state: context.carried)
        if let last, let tick = last.lastActionsTick {
            explanation.lastActions = last.lastActions
            explanation.lastActionsTick = tick
        }
        return explanation
    }
}
