import Foundation
import Dispatch
import Logging
import TierCore
import TierLinux

/// What one tick saw, decided and did.
public struct TickReport: Sendable {
    public var snapshot: HostSnapshot?
    public var plan: MigrationPlan
    public var outcomes: [ActionOutcome]
    /// Set when the host could not be read at all this tick.
    public var collectError: String?
    /// A group was held back this tick (its move moved nothing): the next candidate is worth
    /// planning soon, not an interval later.
    public var newlyHeldBack = false

    public init(snapshot: HostSnapshot?, plan: MigrationPlan, outcomes: [ActionOutcome], collectError: String? = nil) {
        self.snapshot = snapshot; self.plan = plan; self.outcomes = outcomes; self.collectError = collectError
    }
}

/// The control loop's body: collect → plan → migrate → account. Owned by one task, never shared.
/// The policy is swapped whole on reload; the carried `ControllerState` survives it.
public final class TierController {
    public private(set) var policy: Policy
    public private(set) var ledger = MoveLedger()
    public private(set) var lastReport: TickReport?
    /// What the last manual move did (nil until one moved, or after one refused).
    public private(set) var lastManualOutcome: ActionOutcome?
    /// Why the last reload was refused (nil after one that took effect).
    public private(set) var lastReloadError: String?
    public let collector: SnapshotCollector
    let migrator: any PageMigrator
    let logger: Logger
    let journal: Journal
    var state = ControllerState()
    /// What the planner carries between ticks (hysteresis, rate-limit tokens, held-back groups).
    public var carried: ControllerState { state }
    var startedAt: Instant?
    /// When every group was last read (nil: never, or the policy changed since).
    var lastFullRead: Instant?
    /// The last skip reason logged per group, so a steady skip is logged once, not every tick.
    var loggedSkips: [CgroupPath: String] = [:]
    private var warnedAboutNice = false

    /// One line per task move, when the operator asked for an audit log.
    let audit: AuditLog?
    /// Raises `memory.low` (or `memory.min`) of the groups tierd would not demote while the kernel's reclaim demotes
    /// (nil: a dry run or a one-shot run, which change nothing).
    let shield: KernelShieldKeeper?

    public init(policy: Policy, collector: SnapshotCollector, migrator: any PageMigrator, logger: Logger, journal: Journal,
                audit: AuditLog? = nil, shield: KernelShieldKeeper? = nil) {
        self.policy = policy; self.collector = collector; self.migrator = migrator
        self.logger = logger; self.journal = journal; self.audit = audit; self.shield = shield
    }

    /// What asked for a reload, as the journal records it.
    public enum ReloadCause: String, Sendable { case signal, fileChanged = "file_changed" }

    /// Replaces the policy if `path` compiles; otherwise keeps the running one and says why.
    @discardableResult
    public func reload(path: String, cause: ReloadCause = .signal) -> Bool {
        do {
            let next = try PolicyFileLoader.load(path: path)
            policy = next
            lastFullRead = nil
            loggedSkips = [:]
            state.coldDisabled = [:]
            lastReloadError = nil
            logger.notice("policy reloaded", metadata: ["file": "\(path)", "workloads": "\(next.workloads.count)"])
            journal.write(["event": "reload", "ok": .bool(true), "cause": .string(cause.rawValue)])
            ownKernelSettings()
            reportKernelMovers()
            return true
        } catch {
            logger.error("policy reload refused, keeping the running policy: \(error)")
            lastReloadError = "\(error)"
            journal.write(["event": "reload", "ok": .bool(false), "cause": .string(cause.rawValue), "error": .string("\(error)")])
            return false
        }
    }

    /// Sets the kernel settings the policy owns (`controller.numa_balancing`,
    /// `controller.lru_gen_batch_clearing`) and puts back those it
    /// no longer does, logged and journaled (`kernel_settings`): at start and after every reload.
    public func ownKernelSettings() {
        guard let shield else { return }
        let report = shield.own(KernelSetting.wanted(by: policy.controller))
        for line in report.set { logger.notice("kernel setting: \(line) while tierd runs, as the policy asks") }
        for line in report.restored { logger.notice("kernel setting: put back \(line)") }
        for (name, why) in report.failed.sorted(by: { $0.key < $1.key }) { logger.error("kernel setting \(name): \(why)") }
        guard report != KernelShieldKeeper.SettingsReport() else { return }
        journal.write(["event": "kernel_settings", "numa_balancing": .string(policy.controller.numaBalancing.rawValue),
                       "lru_gen_batch_clearing": .string(policy.controller.lruGenBatchClearing.rawValue),
                       "set": .array(report.set.map { .string($0) }), "restored": .array(report.restored.map { .string($0) }),
                       "failed": .array(report.failed.keys.sorted().map { .string($0) })])
    }

    /// Reads the kernel's own movers, logs a warning for each that is on (what it will undo), and
    /// journals them: at start and after every reload, so that a sysctl changed since is seen.
    public func reportKernelMovers() {
        let movers = collector.kernelMovers()
        for finding in movers.findings { logger.warning("kernel mover: \(finding.text)") }
        journalKernelMovers(movers)
    }

    /// The journal's `kernel_movers` event: each mover's setting and the codes of those that are on.
    public func journalKernelMovers(_ movers: KernelMovers) {
        journal.write(["event": "kernel_movers", "numa_balancing": movers.numaBalancing.map { .int(Int64($0)) } ?? .null,
                       "demotion_enabled": movers.demotionEnabled.map { .bool($0) } ?? .null,
                       "damon_running": movers.runningDamonContexts.map { .int(Int64($0)) } ?? .null,
                       "release": movers.release.map { .string($0) } ?? .null,
                       "findings": .array(movers.findings.map { .string($0.code) })])
    }

    /// Groups worth a PSI trigger: every group whose workload may be moved either way.
    public func watchedGroups() -> [CgroupPath: String] {
        guard let snapshot = lastReport?.snapshot else { return [:] }
        let resolved = policy.resolve(snapshot.groups.map(\.path))
        var result: [CgroupPath: String] = [:]
        for group in snapshot.groups {
            guard let rule = resolved[group.path]?.rule, rule.demote == .allowed || rule.promote else { continue }
            result[group.path] = collector.directory(of: group.path)
        }
        return result
    }

    /// What this tick may leave unread (`GroupCarrying`): nothing unless the last tick was quiet
    /// and the last full read recent.
    private func carrying(now: Instant, dramFallRate: UInt64) -> ((Topology) -> [CgroupPath: GroupCarrying.Carried])? {
        guard let last = lastReport, let lastSnapshot = last.snapshot, let fullRead = lastFullRead,
              !KernelShield.kernelDemotes(lastSnapshot.kernelMovers) else { return nil }
        let policy = self.policy
        return { topology in
            guard GroupCarrying.mayCarry(previous: last.plan, sinceFullRead: now - fullRead, topology: topology,
                                         dramFallRate: dramFallRate, settings: policy.controller) else { return [:] }
            return GroupCarrying.carried(from: lastSnapshot, policy: policy)
        }
    }

    private func collectFailed(_ error: HostFileError) -> TickReport {
        ledger.collectFailures += 1
        lastFullRead = nil
        logger.error("cannot read the host this tick: \(error)")
        let report = TickReport(snapshot: nil, plan: MigrationPlan(), outcomes: [], collectError: "\(error)")
        lastReport = report
        return report
    }

    /// `nextTickDue`: when the loop wants its next tick; watermark demotions still running then
    /// stop between batches (nil, as in a one-shot run: they run to the end).
    /// `dramFallRate`: bytes per second free DRAM was falling at, as the service's
    /// `FreeMemoryWatch` sampled it (0 in a one-shot run).
    public func tick(now: Instant, nextTickDue: ContinuousClock.Instant? = nil, dramFallRate: UInt64 = 0) async -> TickReport {
        if startedAt == nil { startedAt = now }
        let elapsed = (now - startedAt!).seconds
        var snapshot: HostSnapshot
        do {
            snapshot = collector.readingTaskMempolicies(try collector.collect(selection: policy.tiers, carrying: carrying(now: now, dramFallRate: dramFallRate)),
                                                        policy: policy)
            snapshot.dramFallRate = dramFallRate
        } catch {
            return collectFailed(error)
        }
        var (plan, next) = Planner.plan(snapshot: snapshot, policy: policy, state: state, now: now)
        if !snapshot.carried.isEmpty && GroupCarrying.needsFullRead(plan, movers: snapshot.kernelMovers) {
            do {
                snapshot = collector.readingTaskMempolicies(try collector.collect(selection: policy.tiers), policy: policy)
                snapshot.dramFallRate = dramFallRate
            } catch {
                return collectFailed(error)
            }
            (plan, next) = Planner.plan(snapshot: snapshot, policy: policy, state: state, now: now)
        }
        if let shield {
            let done = shield.apply(KernelShield.protections(snapshot: snapshot, policy: policy), using: policy.controller.kernelShield)
            if done != KernelShieldKeeper.Report() {
                logger.info("kernel shield: \(policy.controller.kernelShield.file) raised on \(done.raised) groups, put back on \(done.restored), \(done.failed) failed; \(shield.shielded.count) held")
                journal.write(["event": "shield", "t": .double(elapsed), "file": .string(policy.controller.kernelShield.file),
                               "raised": .int(Int64(done.raised)), "restored": .int(Int64(done.restored)),
                               "failed": .int(Int64(done.failed)), "held": .int(Int64(shield.shielded.count))])
            }
        }
        if snapshot.carried.isEmpty { lastFullRead = now }
        state = next
        let migrator = self.migrator, nice = policy.controller.moverNice
        // migrate_pages(2) blocks for seconds on large tasks: the lanes keep it off the cooperative pool.
        let (executed, niceApplied) = await MoveLanes.run(plan.actions, migrator: migrator, nice: nice,
                                                          parallel: policy.controller.parallelMoves, nextTickDue: nextTickDue)
        if !niceApplied && !warnedAboutNice {
            warnedAboutNice = true
            logger.warning("cannot move pages at nice \(nice) (CAP_SYS_NICE missing?): moving at the thread's own priority")
        }
        let heldBack = learn(from: executed, plan: plan, now: now)
        // A hot promotion that found nothing written is a look, not a move: it is not reported.
        let outcomes = executed.filter { !$0.isQuietHotLook }
        let present = Set(snapshot.groups.map(\.path))
        state.forgetGroups(notIn: present)
        ledger.forgetGroups(notIn: present)
        ledger.record(plan, outcomes, vanished: snapshot.vanishedWhileReading)
        audit?.record(outcomes, tick: ledger.ticks, time: Self.wallClock())
        report(plan, outcomes, snapshot, elapsed)
        var result = TickReport(snapshot: snapshot, plan: plan, outcomes: outcomes, collectError: nil)
        result.newlyHeldBack = heldBack
        lastReport = result
        return result
    }

    /// What the executed plan taught the carried state: every action settles its rate-limit
    /// tokens with what it moved; a group whose moves in one direction moved nothing although
    /// nothing said they could not (no full target, not a dry run, not stopped for the next tick)
    /// is held back, and one that moved is released. A group may have two promotions in a tick
    /// (into free DRAM, then into the room made): they are judged together.
    /// - Returns: whether a group tried this tick was held back.
    private func learn(from outcomes: [ActionOutcome], plan: MigrationPlan, now: Instant) -> Bool {
        /// `excused`: a full target or a dry run explains moving nothing; no refusal to hold back for.
        struct Tried { var moved: UInt64 = 0, excused = false, pids: [Int32] = [] }
        var tried: [MigrationAction.Direction: [CgroupPath: Tried]] = [:]
        for outcome in outcomes {
            let action = outcome.action
            state.settle(planned: action.bytes, moved: outcome.movedBytes, workload: action.workload)
            if action.pages == .recentlyWritten {
                // Finding nothing written is a hot promotion's usual outcome, not a refusal to hold back for.
                state.settleHot(planned: action.bytes, moved: outcome.movedBytes)
                state.noteHotPromotion(of: action.group, movedBytes: outcome.movedBytes, until: now + policy.controller.hotHold, now: now)
                continue
            }
            if outcome.lostBytes > 0 {
                let why = "its cold demotion of \(action.group) lost \(formatBytes(outcome.lostBytes)) (taken by reclaim and discarded or swapped, not demoted)"
                state.coldDisabled[action.workload] = why
                logger.error("workload \(action.workload): \(why): demoting it by task from now on (a reload retries cold)")
                journal.write(["event": "cold_lost", "group": .string(action.group.description), "workload": .string(action.workload),
                               "lost": .bytes(outcome.lostBytes), "moved": .bytes(outcome.reclaimedBytes)])
            }
            if outcome.slowTierDroppedBytes > 0 {
                logger.info("workload \(action.workload): the cold demotion of \(action.group) dropped \(formatBytes(outcome.slowTierDroppedBytes)) of its page cache on the slow tier (none of it swapped)")
            }
            if let refusal = outcome.coldRefused {
                state.coldRefused[action.group] = (action.pids.sorted(), refusal)
                continue
            }
            guard outcome.dropped == nil, !(outcome.stoppedForNextTick && outcome.movedBytes == 0) else { continue }
            var entry = tried[action.direction, default: [:]][action.group] ?? Tried(pids: action.pids)
            entry.moved += outcome.movedBytes
            entry.excused = entry.excused || outcome.wouldReclaimBytes > 0 || outcome.tasks.contains {
                switch $0.result { case .targetsFull, .wouldMove: true; default: false }
            }
            tried[action.direction, default: [:]][action.group] = entry
        }
        for (group, entry) in tried[.promote] ?? [:] {
            state.notePromotion(of: group, pids: entry.pids, slowBytes: plan.slowBytesToPromote[group] ?? 0,
                                movedBytes: entry.moved, targetsFull: entry.excused, now: now)
        }
        for (group, entry) in tried[.demote] ?? [:] {
            state.noteDemotion(of: group, pids: entry.pids, movedBytes: entry.moved, targetsFull: entry.excused, now: now)
        }
        return tried[.promote, default: [:]].keys.contains { state.stuckOnSlowNodes[$0] != nil }
            || tried[.demote, default: [:]].keys.contains { state.blockedSources[$0] != nil }
    }

    /// Runs an operator's request now: planned by `ManualPlanner` on a fresh snapshot, moved by the
    /// same migrator (cpuset, mempolicy and identity checks per task), charged to the rate limits and
    /// recorded like the daemon's own moves (ledger, audit log, journal event "manual").
    public func runManual(id: UInt64, _ request: ManualRequest, now: Instant) async -> ManualResult {
        let snapshot: HostSnapshot
        do { snapshot = try collector.collect(selection: policy.tiers) } catch {
            lastManualOutcome = nil
            return .refused(id, request, code: "cannot_read_host", detail: "cannot read the host: \(error)")
        }
        let action: MigrationAction
        switch ManualPlanner.action(for: request, snapshot: snapshot, policy: policy) {
        case .failure(let refusal):
            lastManualOutcome = nil
            logger.notice("manual \(request.direction.rawValue) of \(request.group) refused: \(refusal)")
            journal.write(["event": "manual_refused", "group": .string(request.group.description),
                           "direction": .string(request.direction.rawValue), "reason": .string(refusal.code), "detail": .string(refusal.description)])
            return .refused(id, request, code: refusal.code, detail: refusal.description)
        case .success(let planned): action = planned
        }
        let (outcomes, _) = await MoveLanes.run([action], migrator: migrator, nice: policy.controller.moverNice, parallel: false)
        for outcome in outcomes { state.charge(outcome.movedBytes, workload: outcome.action.workload) }
        // The tick after it reads every group, the one moved included.
        lastFullRead = nil
        ledger.recordMoves(outcomes)
        lastManualOutcome = outcomes.first
        audit?.record(outcomes, tick: ledger.ticks, time: Self.wallClock())
        logOutcomes(outcomes, event: "manual", elapsed: startedAt.map { (now - $0).seconds } ?? 0)
        return .done(id, request, outcomes[0])
    }

    static func wallClock() -> String {
        Date().ISO8601Format(.iso8601.time(includingFractionalSeconds: true).year().month().day().dateTimeSeparator(.standard))
    }

    private func report(_ plan: MigrationPlan, _ outcomes: [ActionOutcome], _ snapshot: HostSnapshot, _ elapsed: Double) {
        let s = plan.summary
        let line: Logger.Message = "tick dram_free=\(formatBytes(s.dramFree)) falling=\(formatBytes(s.dramFallRate))/s low=\(formatBytes(s.lowWatermark)) high=\(formatBytes(s.highWatermark)) reclaiming=\(s.reclaiming) promote_need=\(formatBytes(s.promotionNeed)) demand=\(formatBytes(s.demotionDemand)) actions=\(plan.actions.count) skips=\(plan.skips.count) groups=\(snapshot.groups.count) carried=\(snapshot.carried.count) vanished=\(snapshot.vanishedWhileReading)"
        if outcomes.isEmpty { logger.debug(line) } else { logger.info(line) }
        // A quiet tick (nothing needed, nothing done) is not journaled: the file stays readable.
        let quiet = outcomes.isEmpty && s.demotionDemand == 0 && s.promotionNeed == 0 && !s.reclaiming
        let cpu = ProcessCPU.now()
        if !quiet { journal.write([
            "event": "tick", "t": .double(elapsed), "dram_free": .bytes(s.dramFree), "dram_total": .bytes(s.dramTotal),
            "reclaiming": .bool(s.reclaiming), "promotion_need": .bytes(s.promotionNeed),
            "dram_fall_rate": .bytes(s.dramFallRate), "projected_dram_free": .bytes(s.projectedDramFree),
            "demand": .bytes(s.demotionDemand), "deferred": .bytes(s.deferredBytes),
            "groups": .int(Int64(snapshot.groups.count)), "groups_carried": .int(Int64(snapshot.carried.count)),
            "vanished": .int(Int64(snapshot.vanishedWhileReading)),
            "cpu_user_s": .double(cpu.user), "cpu_system_s": .double(cpu.system),
            "demoted_cold_total": .bytes(ledger.demotedByMode[.cold] ?? 0), "demoted_task_total": .bytes(ledger.demotedByMode[.task] ?? 0),
            "lost_total": .bytes(ledger.lostTotal), "slow_tier_dropped_total": .bytes(ledger.slowTierDroppedTotal),
            "promoted_hot_total": .bytes(ledger.promotedHotTotal),
        ].merging(s.reserve > 0 ? ["reserve_unused": .bytes(s.reserveUnused), "reserve_met": .bool(s.reserveMet)] : [:]) { a, _ in a }) }
        logOutcomes(outcomes, event: "action", elapsed: elapsed)
        var current: [CgroupPath: String] = [:]
        for skip in plan.skips {
            let text = skip.reason.description
            current[skip.group] = text
            guard loggedSkips[skip.group] != text else { continue }
            logger.info("\(skip)")
            journal.write(["event": "skip", "t": .double(elapsed), "group": .string(skip.group.description),
                           "workload": .string(skip.workload), "reason": .string(skip.reason.code), "detail": .string(text)])
        }
        loggedSkips = current
    }

    /// One log line and one journal event per outcome: a tick's ("action") or a manual move's ("manual").
    private func logOutcomes(_ outcomes: [ActionOutcome], event: String, elapsed: Double) {
        for outcome in outcomes {
            let a = outcome.action
            let tasks = outcome.tasks.map { "\($0.pid): \($0.result)" }.joined(separator: "; ")
            logger.info("\(a.direction.rawValue) \(a.group) [\(a.workload)] planned \(formatBytes(a.bytes)) moved \(formatBytes(outcome.movedBytes)) \(a.from)->\(NodeSet(a.to)): \(a.reason)\(outcome.dropped.map { " — dropped: \($0)" } ?? "") \(tasks)")
            journal.write([
                "event": .string(event), "t": .double(elapsed), "tick": .int(Int64(ledger.ticks)),
                "group": .string(a.group.description), "workload": .string(a.workload),
                "direction": .string(a.direction.rawValue), "planned": .bytes(a.bytes), "moved": .bytes(outcome.movedBytes),
                "from": .string(a.from.description), "to": .string(NodeSet(a.to).description), "reason": .string(a.reason),
                "seconds": .double(outcome.duration.seconds), "syscall_seconds": .double(outcome.syscallDuration.seconds),
                "cpu_seconds": .double(outcome.cpuSeconds), "involuntary_switches": .int(Int64(outcome.involuntarySwitches)),
                "on_task_cpu": .int(Int64(outcome.movedOnTaskCPU)), "whole_moves": .int(Int64(outcome.wholeMoves)),
                "stopped_for_next_tick": .bool(outcome.stoppedForNextTick),
                "stayed_by_error": .object(Dictionary(uniqueKeysWithValues: outcome.stayedByError.map {
                    (SyscallError($0.key).name, JSONValue.int(Int64($0.value)))
                })),
                "dropped": .string(outcome.dropped ?? ""),
                "tasks": .array(outcome.tasks.map { .object(["pid": .int(Int64($0.pid)), "result": .string($0.result.code),
                                                            "detail": .string($0.result.description)]) }),
            ])
        }
    }

}

extension ActionOutcome {
    /// A hot promotion that found no written page to move and met no error.
    var isQuietHotLook: Bool {
        action.pages == .recentlyWritten && movedBytes == 0 && dropped == nil
            && tasks.allSatisfy { $0.result == .nothingToMove || $0.result == .exited }
    }
}
