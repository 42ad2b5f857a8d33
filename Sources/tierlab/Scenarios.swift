import Foundation
import TierCore
import TierLinux
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The lab's end-to-end scenarios. Each sets up cgroups and workloads in the guest, runs tierd
/// (or the kernel alone) and checks placement where the kernel reports it.
enum Scenarios {
    static func run(_ name: String, in lab: GuestLab) -> ScenarioResult {
        switch name {
        case "throughput": return throughput(lab)
        // One run: a miss is a miss, never run again.
        case "late-protected": return lateProtected(lab, mode: .tierd)
        case "late-protected-cold": return lateProtected(lab, mode: .tierd, cold: true, hotEarly: true)
        case "late-protected-reserve": return lateProtected(lab, mode: .tierd, cold: true, hotEarly: true, reserve: true)
        case "phase-change": return phaseChange(lab, mover: .tierd)
        case "numa-balancing-default": return numaBalancingDefault(lab)
        case "kernel-demotion-neighbours": return kernelDemotionNeighbours(lab)
        // Not in a suite: the batch job's hot set is untouched while it allocates, so it is the
        // coldest memory then, demoted, and nothing brings it back once hot (issue 14, item 6).
        case "late-protected-cold-hot-late": return lateProtected(lab, mode: .tierd, cold: true)
        case let name where name.hasPrefix("late-protected-run"):
            // Repeated runs in one boot (late-protected-run1,-run2, …), each figure kept.
            return lateProtected(lab, mode: .tierd, variant: (String(name.dropFirst("late-protected-".count)), ""))
        case "late-protected-pod": return lateProtected(lab, mode: .tierd, launch: .pod)
        case "late-protected-nice0": return lateProtected(lab, mode: .tierd, variant: ("nice0", ", mover_nice: 0"))
        case "late-protected-anycpu": return lateProtected(lab, mode: .tierd, variant: ("anycpu", ", move_on_task_cpu: false"))
        case "late-protected-serial": return lateProtected(lab, mode: .tierd, variant: ("serial", ", parallel_moves: false"))
        case "demo-kernel": return lateProtected(lab, mode: .kernelDemotion)
        case "demo-numa-balancing": return lateProtected(lab, mode: .numaBalancing)
        case "opt-out-holds": return optOutHolds(lab)
        case "mempolicy": return mempolicy(lab)
        case "pressure-guard": return pressureGuard(lab)
        case "cpuset": return cpuset(lab)
        case "faults-mid-move": return faultsMidMove(lab)
        case "killed-mid-demotion": return killedMidDemotion(lab)
        case "slow-tier-full": return slowTierFull(lab)
        case "churn": return churn(lab)
        case "systemd-unit": return systemdUnit(lab)
        default:
            return probe(name, in: lab)
                ?? ScenarioResult(scenario: name, checks: [Check(name: "known scenario", ok: false, detail: "no scenario named \(name)")])
        }
    }

    static let mib: Double = 1048576

    static func median(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.sorted()[values.count / 2] }

    /// A policy under which one tick of tierd demotes `group`'s tasks whole: the high watermark at
    /// 98 % asks for more than they hold, and neither the rate limit nor the per-tick batch caps it.
    static func wholeMovePolicy(_ name: String, group: String) -> String {
        """
        controller: {interval: 1s, dram: {low: 97%, high: 98%}, rate_limit: 8GiB/s, demotion_per_tick: 4GiB}
        workloads:
          - {name: \(name), match: ["\(group)"], demote: allowed}
        """
    }

    /// Kills a measured task and waits until its pages on the slow node are freed.
    static func discard(_ task: Load, group: String, _ lab: GuestLab) {
        lab.stop(task.process, signal: SIGKILL)
        _ = lab.waitFor(seconds: 10) { lab.numaStat(group).bytes(on: 1) < 8 << 20 }
    }

    static let timingCheck = "time to 99 % within 2× the migratepages floor"

    // MARK: migration throughput

    /// tierd demoting a 512 MiB task against migratepages(8) demoting the same task, same guest,
    /// and against the bare migrate_pages(2) call made from the lab's process as tierd makes it.
    /// Runs in the guest whose clock counts instructions (`GuestClock.instructions`): on a
    /// host clock the same move took 4 to 8 s from one round to the next, with the host's CPU
    /// speed, and medians of eleven paired ratios ranged 0.84–1.05 between runs; counted, a way's
    /// moves agree to 0.01 s. The ways take turns round by round, each moving the same task back
    /// from DRAM (brought there by migratepages, untimed, before each). Task and movers share one
    /// vCPU (see `GuestLab.measuringCPU`): migratepages is pinned there; tierd runs unpinned, as
    /// deployed, and its moving thread moves from the task's CPU (`move_on_task_cpu`). Five rounds:
    /// counted, seven rounds' ratios spanned 1.01–1.03, and each round costs 75 s of host time.
    static func throughput(_ lab: GuestLab, rounds: Int = 5) -> ScenarioResult {
        var result = ScenarioResult(scenario: "throughput", checks: [])
        var wholeMoves = 0, onTaskCPU = 0, journals: [String] = [], pairs = PairedMoves(), placementAtEnd = ""
        let allocated = lab.withPinnedIdleTask("tp") { task, group in
            defer { placementAtEnd = lab.describe([group]) }
            pairs = pairedMoves(lab, task: task, group: group, rounds: rounds, label: "throughput", bareCall: true) { round in
                let inDram = lab.numaStat(group).bytes(on: 0)
                let reclaimBefore = lab.vmstat(GuestLab.reclaimCounters), activity = lab.cpuTimes()
                // One real tick, waited for like migratepages is: nothing polls the guest meanwhile.
                // Not pinned, as deployed: tierd's moving thread moves from the task's CPU itself.
                let tierd = lab.runTierdOnce("tierd-throughput-\(round)", policy: wholeMovePolicy("tp", group: group))
                journals.append(tierd.tail(6))
                guard let action = tierd.events("action").first, let moved = action["moved"] as? Int,
                      let seconds = action["seconds"] as? Double, seconds > 0 else { return nil }
                if action["on_task_cpu"] as? Int == 1 { onTaskCPU += 1 }
                // Pages the task shares with other processes stay (tierd never demotes shared pages);
                // the rest goes by one migrate_pages(2) call, as migratepages moves it.
                if Double(moved) >= Double(inDram) * 0.95, action["whole_moves"] as? Int == 1 { wholeMoves += 1 }
                let tick = tierd.events("tick").last
                lab.log(String(format: "throughput round %d: tierd %.1f MiB in %.2f s (%.2f s in system calls; moving thread %.2f s of CPU, %d involuntary switches); tierd's CPU: %.2f s user, %.2f s system; reclaim %@; CPU (tierd's start-up included) %@", round,
                               Double(moved) / mib, seconds, (action["syscall_seconds"] as? Double) ?? .nan,
                               (action["cpu_seconds"] as? Double) ?? .nan, (action["involuntary_switches"] as? Int) ?? -1,
                               (tick?["cpu_user_s"] as? Double) ?? .nan, (tick?["cpu_system_s"] as? Double) ?? .nan,
                               lab.vmstatDelta(GuestLab.reclaimCounters, since: reclaimBefore), lab.cpuActivity(since: activity)))
                return (UInt64(moved), seconds)
            }
        }
        guard allocated else {
            result.checks.append(Check(name: "task allocated", ok: false, detail: lab.describe(["\(lab.labSlice)/tp"])))
            return result
        }
        let ratio = median(pairs.ratios)
        let best = pairs.tierdRates.max() ?? .nan, bestReference = pairs.migratepagesRates.max() ?? .nan
        result.figures["throughput_ratio"] = ratio
        result.figures["tierd_mib_per_s"] = median(pairs.tierdRates)
        result.figures["migratepages_mib_per_s"] = median(pairs.migratepagesRates)
        result.figures["tierd_best_mib_per_s"] = best
        result.figures["migratepages_best_mib_per_s"] = bestReference
        result.figures["throughput_ratio_best"] = best / bestReference
        result.figures["rounds"] = Double(rounds)
        result.figures["bare_call_mib_per_s"] = median(pairs.bareCallRates)
        result.figures["throughput_ratio_to_bare_call"] = median(pairs.bareCallRatios)
        result.figures.merge(pairs.figures) { $1 }
        result.checks.append(Check(name: "tierd moved the 512 MiB task whole, by one migrate_pages(2) call, every round", ok: wholeMoves == rounds,
                                   detail: "\(wholeMoves) of \(rounds) rounds"))
        // Both movers then run on the task's vCPU: migratepages by taskset, tierd's moving thread by its own choice.
        result.checks.append(Check(name: "tierd moved from the task's vCPU every round", ok: onTaskCPU == rounds,
                                   detail: "\(onTaskCPU) of \(rounds) rounds"))
        // Asserted: the guest's clock counts instructions, so the same move takes the same time.
        let goal = LabClaims.meetsRatio(pairs.ratios, pairs: rounds, goal: 0.95)
        result.checks.append(Check(name: "tierd moves at ≥ 0.95× migratepages(8), paired rounds on the counted clock", ok: goal.ok,
                                   detail: goal.detail + String(format: "; medians %.1f vs %.1f MiB/s; best rounds %.1f vs %.1f MiB/s; against the bare call (%.1f MiB/s) %.2f",
                                                                median(pairs.tierdRates), median(pairs.migratepagesRates), best, bestReference,
                                                                median(pairs.bareCallRates), median(pairs.bareCallRatios))))
        if !result.passed { result.diagnostics = placementAtEnd + "\ntierd journals:\n" + journals.joined(separator: "\n") }
        return result
    }

    /// Rates of the paired moves of one task, per tool, and the pairs' ratios (tierd / migratepages,
    /// and tierd / the bare call when it was timed too).
    struct PairedMoves {
        var tierdRates: [Double] = [], migratepagesRates: [Double] = [], ratios: [Double] = []
        var bareCallRates: [Double] = [], bareCallRatios: [Double] = []
        var figures: [String: Double] = [:]
    }

    /// Rounds of back-to-back demotions of `task`'s DRAM pages, one by migratepages (the
    /// command's wall time, its start included) and one by `tierdMove` (moved bytes and seconds,
    /// or nil if it failed), the order changing round by round; with `bareCall`, a third by
    /// migrate_pages(2) called from this process as tierd calls it (`timedBareCall`): the kernel's
    /// share of a move with neither tool around it. Before every timed move migratepages brings the
    /// task back to DRAM (untimed), the first one included, so every way moves the same pages from
    /// the same state.
    static func pairedMoves(_ lab: GuestLab, task: Load, group: String, rounds: Int, label: String, bareCall: Bool = false,
                            tierdMove: (Int) -> (movedBytes: UInt64, seconds: Double)?) -> PairedMoves {
        var pairs = PairedMoves()
        let tools = ["migratepages", "tierd"] + (bareCall ? ["bare call"] : [])
        _ = lab.migratepages(task.pid, from: 0, to: 1, group: group, pinned: true)
        for round in 1...rounds {
            var rates: [String: Double] = [:]
            let shift = (round - 1) % tools.count
            for tool in tools[shift...] + tools[..<shift] {
                _ = lab.migratepages(task.pid, from: 1, to: 0, group: group, pinned: true)
                if tool == "tierd" {
                    if let move = tierdMove(round) { rates[tool] = Double(move.movedBytes) / mib / move.seconds }
                    continue
                }
                let reclaimBefore = lab.vmstat(GuestLab.reclaimCounters), activity = lab.cpuTimes()
                let timed = tool == "bare call" ? timedBareCall(lab, task: task, group: group)
                    : lab.migratepages(task.pid, from: 0, to: 1, group: group, pinned: true)
                guard let move = timed, move.seconds > 0 else { continue }
                rates[tool] = Double(move.movedBytes) / mib / move.seconds
                lab.log(String(format: "%@ round %d: %@ %.1f MiB in %.2f s; reclaim %@; CPU %@", label, round, tool,
                               Double(move.movedBytes) / mib, move.seconds,
                               lab.vmstatDelta(GuestLab.reclaimCounters, since: reclaimBefore), lab.cpuActivity(since: activity)))
            }
            let tierdRate = rates["tierd"], migratepagesRate = rates["migratepages"], bareRate = rates["bare call"]
            if let tierdRate { pairs.tierdRates.append(tierdRate); pairs.figures["tierd_round\(round)_mib_per_s"] = tierdRate }
            if let migratepagesRate { pairs.migratepagesRates.append(migratepagesRate); pairs.figures["migratepages_round\(round)_mib_per_s"] = migratepagesRate }
            if let bareRate { pairs.bareCallRates.append(bareRate); pairs.figures["bare_call_round\(round)_mib_per_s"] = bareRate }
            if let tierdRate, let migratepagesRate { pairs.ratios.append(tierdRate / migratepagesRate) }
            if let tierdRate, let bareRate { pairs.bareCallRatios.append(tierdRate / bareRate) }
        }
        return pairs
    }

    /// migrate_pages(2) of `task`'s DRAM pages to node 1 from this process, as tierd makes the
    /// call: on the task's vCPU, at nice -10, `CAP_SYS_NICE` lowered (`.leave`) unless `shared`
    /// says otherwise, optionally right after reading the task's numa_maps from the same thread.
    /// Returns the bytes that left DRAM (the group's `memory.numa_stat`) and the call's seconds.
    static func timedBareCall(_ lab: GuestLab, task: Load, group: String, shared: SharedPages = .leave,
                              readingMapsFirst: Bool = false) -> (movedBytes: UInt64, seconds: Double)? {
        let before = lab.numaStat(group).bytes(on: 0)
        let started = monotonic()
        let ((result, _), _) = ThreadPlacement.onCPU(GuestLab.measuringCPU) {
            ThreadPriority.withNice(-10) {
                if readingMapsFirst { _ = try? lab.files.read(KernelPaths.process(task.pid) + "/numa_maps") }
                return LibnumaSyscalls().migratePages(pid: task.pid, from: NodeSet([0]), to: NodeSet([1]), sharedPages: shared)
            }
        }
        let seconds = monotonic() - started
        guard case .success = result else { return nil }
        return (before - min(before, lab.numaStat(group).bytes(on: 0)), seconds)
    }

    // MARK: the headline

    enum Mode { case tierd, kernelDemotion, numaBalancing }

    /// A batch job fills DRAM (900 MiB, 50 MiB hot); then a protected job (400 MiB, all hot)
    /// starts. With tierd it must reach ≥ 99 % in DRAM, and none of its pages may go to slow
    /// memory; the kernel-only modes are measured the same way for the demo's table.
    /// `variant` names a probe run of tierd with other controller settings (", key: value" text).
    /// `launch: .pod` runs tierd as the Kubernetes DaemonSet does (``GuestLab/TierdLaunch/pod``).
    /// `cold`: kernel demotion on, as an operator who wants `cold` demotion sets it, and the batch
    /// workload in its default mode, `cold`: its hot set must stay in DRAM throughout. `hotEarly`:
    /// the batch job keeps its hot set hot while it allocates the rest, not only afterwards.
    static func lateProtected(_ lab: GuestLab, mode: Mode, variant: (name: String, settings: String)? = nil,
                              launch: GuestLab.TierdLaunch = .host, cold: Bool = false, hotEarly: Bool = false,
                              reserve: Bool = false) -> ScenarioResult {
        let launchSuffix = [GuestLab.TierdLaunch.host: "", .pod: "-pod", .podTraced: "-pod-traced"][launch]!
        let name = reserve ? "late-protected-reserve" : mode == .tierd ? "late-protected" + (cold ? (hotEarly ? "-cold" : "-cold-hot-late") : "") + (variant.map { "-" + $0.name } ?? "") + launchSuffix
            : mode == .kernelDemotion ? "demo-kernel" : "demo-numa-balancing"
        var result = ScenarioResult(scenario: name, checks: [])
        let batchGroup = "\(lab.labSlice)/batch", protectedGroup = "\(lab.labSlice)/protected"
        lab.makeGroup(batchGroup)
        lab.makeGroup(protectedGroup)
        var tierd: TierdRun?
        var lruGenBefore: String?
        // The idle floor's rate is sampled around the run, two moves before and three after: the
        // emulator's slow spells last tens of seconds, and one side alone can land in one.
        var idleRates: [Double] = []
        switch mode {
        case .tierd:
            lab.kernelTiering(demotion: false, numaBalancing: 0)
            idleRates = (0..<2).compactMap { _ in lab.calibrateMigratepages(mib: 256)?.mibPerSecond }
            if cold { lab.kernelTiering(demotion: true, numaBalancing: 0) }
            lruGenBefore = lab.fileValue(KernelPaths.lruGenEnabled)
            // Cold demotion as docs/CONFIG.md advises it: the LRU's batched clearing of accessed
            // bits let part of a continuously written hot set go on 7.3 (probe-hot-aging).
            let coldSettings = cold ? ", lru_gen_batch_clearing: off" : ""
            // With a reserve the watermarks are small: the room is the reserve's to make.
            let dram = reserve ? "{low: 2%, high: 3%, reserve: \(Self.reserveMiB)MiB}" : "{low: 10%, high: 20%}"
            tierd = lab.startTierd("tierd-\(name)", policy: """
                controller: {interval: 1s, dram: \(dram), rate_limit: 2GiB/s\(coldSettings)\(variant?.settings ?? "")}
                workloads:
                  - {name: protected, match: ["\(protectedGroup)"], demote: never}
                  - {name: batch, match: ["\(batchGroup)"], demote: allowed, priority: 10}
                """, launch: launch)
        case .kernelDemotion: lab.kernelTiering(demotion: true, numaBalancing: 0)
        case .numaBalancing: lab.kernelTiering(demotion: true, numaBalancing: 2)
        }
        let batch = lab.load("\(name)-batch", group: batchGroup, mib: 900, hotMiB: 50, hotWhileAllocating: hotEarly)
        guard lab.waitFor(seconds: 180, { batch.allocatedAt() != nil }) else {
            result.checks.append(Check(name: "batch job allocated", ok: false, detail: lab.describe([batchGroup])))
            return result
        }
        sleep(5)
        var reserveWait: (met: Bool, seconds: Double, demotedBefore: UInt64, freeAtMet: UInt64)?
        if reserve, let tierd {
            let started = monotonic()
            let met = lab.waitFor(seconds: 120, every: 0.5) { tierd.reserveMet() == true }
            reserveWait = (met, monotonic() - started, tierd.movedBytes(group: batchGroup, direction: "demote"), lab.dramFreeBytes())
        }
        let dramFreeBeforeProtected = lab.dramFreeBytes()
        let movedBeforeProtected = tierd.map { movedInAll($0, groups: [batchGroup, protectedGroup]) } ?? 0
        // Placement reported twice a second: the time to 99 % is read to half a second.
        let protected = lab.load("\(name)-protected", group: protectedGroup, mib: 400, hotMiB: 400, interval: 0.5)
        // What the kernel did while the job allocated and came back: whether node 0 ran into its
        // watermarks (reclaim, refaults of file pages) when the job spilled.
        let trace = KernelTrace(lab, groups: [protectedGroup, batchGroup])
        guard lab.waitFor(seconds: 180, { trace.sample(); return protected.allocatedAt() != nil }), let t0 = protected.allocatedAt() else {
            result.checks.append(Check(name: "protected job allocated", ok: false, detail: lab.describe([batchGroup, protectedGroup])))
            return result
        }
        let slowAtStart = lab.numaStat(protectedGroup).bytes(on: 1)
        let dramFreeAtStart = lab.dramFreeBytes()
        let migrationCounters = ["pgmigrate_success", "pgmigrate_fail", "thp_migration_success", "thp_migration_fail", "thp_migration_split", "compact_stall"]
        let migrationBefore = lab.vmstat(migrationCounters)
        let samplesBeforeStart = trace.sampleCount
        let observe: Double = mode == .tierd ? 90 : 75
        var reachedAt: Double?
        while monotonic() - t0 < observe {
            trace.sample()
            if reachedAt == nil, let hit = protected.samples().first(where: { $0.t >= t0 && $0.allShare >= 0.99 }) { reachedAt = hit.t - t0 }
            // tierd's run ends 5 s after it reached 99 %, but not before 35 s: the demo's table has a +30 s column.
            if mode == .tierd, let reached = reachedAt, monotonic() - t0 > max(reached + 5, 35) { break }
            usleep(500_000)
        }
        let slowSamples = Array((trace.slowBytes[protectedGroup] ?? []).dropFirst(samplesBeforeStart))
        lab.log("\(name): kernel migration counters while the protected job came back: " + lab.vmstatDelta(migrationCounters, since: migrationBefore))
        lab.log("\(name): the kernel from the protected job's start (allocation ended at +\(String(format: "%.1f", t0 - trace.started)) s):\n" + trace.text)
        let samples = protected.samples().filter { $0.t >= t0 }
        result.series["protected_share"] = samples.map { [$0.t - t0, $0.allShare] }
        func share(at seconds: Double) -> Double? {
            samples.last(where: { $0.t - t0 <= seconds }).map(\.allShare)
        }
        for mark in [5.0, 15, 30, 60] { if let s = share(at: mark), (samples.last?.t ?? 0) - t0 >= mark - 1 { result.figures["share_at_\(Int(mark))s"] = s } }
        if let last = samples.last { result.figures["share_final"] = last.allShare }
        result.figures["observed_seconds"] = (samples.last?.t ?? t0) - t0
        if let reachedAt { result.figures["seconds_to_99"] = reachedAt }
        if let batchLast = batch.samples().last { result.figures["batch_hot_share_final"] = batchLast.hotShare }
        let batchAllocated = batch.allocatedAt() ?? .infinity
        if let lowest = batch.samples().filter({ $0.t >= batchAllocated }).map(\.hotShare).min() { result.figures["batch_hot_share_lowest"] = lowest }
        result.figures["protected_slow_bytes_at_start"] = Double(slowAtStart)
        let kernelBatch = lab.kernelMovedPages(batchGroup), kernelProtected = lab.kernelMovedPages(protectedGroup)
        if let tierd {
            let demotedBatch = tierd.movedBytes(group: batchGroup, direction: "demote")
            let demotedProtected = tierd.movedBytes(group: protectedGroup, direction: "demote")
            let promoted = tierd.movedBytes(group: protectedGroup, direction: "promote")
            result.figures["batch_demoted_bytes"] = Double(demotedBatch)
            result.figures["protected_demoted_bytes"] = Double(demotedProtected)
            result.figures["protected_promoted_bytes"] = Double(promoted)
            result.figures["pages_moved"] = Double((demotedBatch + demotedProtected + promoted) / 4096)
        } else {
            result.figures["batch_demoted_bytes"] = Double(kernelBatch.demoted * 4096)
            result.figures["protected_demoted_bytes"] = Double(kernelProtected.demoted * 4096)
            result.figures["pages_moved"] = Double(kernelBatch.demoted + kernelBatch.promoted + kernelProtected.demoted + kernelProtected.promoted)
        }
        guard let tierd else {
            result.checks.append(Check(name: "placement measured", ok: !samples.isEmpty, detail: "\(samples.count) reports"))
            return result
        }
        // The floor: migratepages moving what had to move — the protected job's slow bytes back,
        // and as much of the batch job out as DRAM lacked room for them — at the rate migratepages
        // achieves in this guest under the same load (both jobs still running, the protected job
        // writing every page): it moves the protected job out and back. The idle rate is reported too.
        result.checks += endpointChecks(lab, tierd, name: name, groups: [batchGroup, protectedGroup])
        if cold { result.checks += coldChecks(lab, tierd, batch: batch, batchGroup: batchGroup, protectedGroup: protectedGroup, t0: t0, result: &result) }
        if cold && reserveWait == nil {
            lab.log(movedAgainstLeast(lab, tierd, movedBefore: movedBeforeProtected, freeBefore: dramFreeBeforeProtected,
                                      groups: [batchGroup, protectedGroup], protectedGroup: protectedGroup, result: &result))
        }
        if let reserveWait {
            result.checks += reserveChecks(lab, tierd, reserveWait, samples: samples, t0: t0, batchGroup: batchGroup,
                                           protectedGroup: protectedGroup, result: &result)
        }
        if !cold && launch == .host && variant == nil { result.checks.append(demotionOffCheck(lab, tierd, batchGroup: batchGroup)) }
        if launch != .host { result.checks += podLifeChecks(lab, tierd, name: name, opted: batchGroup) }
        if launch == .pod { result.checks += seccompRefusalChecks(lab) }
        // tierd stops first: it would otherwise bring the protected job back while migratepages moves it out.
        lab.stop(tierd.process)
        if cold {
            let low = lab.fileValue(lab.cgroupDir(protectedGroup) + "/memory.low")
            result.checks.append(Check(name: "tierd put the protected group's memory.low back when it stopped", ok: low == "0",
                                       detail: "memory.low after SIGTERM: \(low ?? "unreadable")"))
            let lruGenAfter = lab.fileValue(KernelPaths.lruGenEnabled)
            let set = tierd.events("kernel_settings").flatMap { ($0["set"] as? [String]) ?? [] }.filter { $0.hasPrefix("lru_gen.enabled=") }
            result.checks.append(Check(name: "tierd turned the LRU's batched clearing off while it ran and put the mask back when it stopped",
                                       ok: lruGenBefore == "0x0007" && set == ["lru_gen.enabled=0x0005 (was 0x0007)"] && lruGenAfter == lruGenBefore,
                                       detail: "lru_gen/enabled before \(lruGenBefore ?? "unread"), set \(set), after SIGTERM \(lruGenAfter ?? "unread")"))
        }
        let mustDemote = slowAtStart > dramFreeAtStart ? slowAtStart - dramFreeAtStart : 0
        // At ≥ 99 % in its first placement report, nothing had to move to reach it: the time is
        // the report's own latency, and a floor of the few KiB on the slow node would be noise.
        let atFirstReport = samples.first.map { $0.allShare >= 0.99 } ?? false
        if atFirstReport { result.figures["at_99_at_first_report"] = 1 }
        let mustMove = atFirstReport ? 0 : Double(slowAtStart + mustDemote)
        result.figures["bytes_that_had_to_move"] = mustMove
        // What had to leave DRAM for the protected job to fit, whenever tierd moved it: its size
        // less the DRAM free when the batch job was settled (printed beside the bytes moved).
        result.figures["dram_deficit_bytes"] = Double(400 << 20) - min(Double(400 << 20), Double(dramFreeBeforeProtected))
        if let loaded = migratepagesUnderLoad(lab, protected, group: protectedGroup) {
            result.figures["migratepages_loaded_mib_per_s"] = loaded
            let floor = mustMove / mib / loaded
            result.figures["floor_seconds"] = floor
            // Nothing left to move when the allocation ended: no floor to be a multiple of.
            if let reachedAt, mustMove > 0 { result.figures["ratio_to_floor"] = reachedAt / floor }
        }
        lab.stop(protected.process, signal: SIGKILL)
        lab.stop(batch.process, signal: SIGKILL)
        // The idle floor: migratepages' median rate over the moves before and three more in the now idle guest.
        idleRates += (0..<3).compactMap { _ in lab.calibrateMigratepages(mib: 256)?.mibPerSecond }
        if !idleRates.isEmpty {
            let idle = median(idleRates)
            result.figures["migratepages_idle_mib_per_s"] = idle
            result.figures["floor_idle_seconds"] = mustMove / mib / idle
            if let reachedAt, mustMove > 0 { result.figures["ratio_to_idle_floor"] = reachedAt / (mustMove / mib / idle) }
        }
        let held = LabClaims.reachesAndHolds(samples.map { LabClaims.Sample(seconds: $0.t - t0, share: $0.allShare) }, threshold: 0.99).0
        result.checks.append(Check(name: "protected job reaches ≥ 99 % in DRAM and stays there", ok: held.ok,
            detail: held.detail + String(format: " (%.0f MiB were on the slow node when it finished allocating)", Double(slowAtStart) / mib)))
        result.checks.append(Check(name: "tierd never demotes the protected job", ok: tierd.movedBytes(group: protectedGroup, direction: "demote") == 0
                                   && !tierd.events("action").contains { $0["group"] as? String == "/" + protectedGroup && $0["direction"] as? String == "demote" },
                                   detail: "demote actions on \(protectedGroup): \(tierd.events("action").filter { $0["group"] as? String == "/" + protectedGroup && $0["direction"] as? String == "demote" }.count)"))
        if launch != .host {
            let log = (try? String(contentsOfFile: lab.out + "/tierd-\(name).log", encoding: .utf8)) ?? ""
            let line = log.split(separator: "\n").first { $0.contains("cgroup namespace of its own") }
            result.checks.append(Check(name: "tierd ran in a cgroup namespace of its own and mapped cgroups through it", ok: line != nil,
                                       detail: line.map(String.init) ?? "no namespace line in tierd's log"))
        }
        let misread = tierd.taskResults("left_group")
        result.checks.append(Check(name: "no task is taken for one that left its group", ok: misread == 0,
                                   detail: "\(misread) task moves skipped as left_group" + (launch != .host ? " (tierd in a private cgroup namespace)" : "")))
        let neverGrew = LabClaims.neverGrows(slowSamples)
        result.checks.append(Check(name: "the protected job's bytes on the slow node never grow after it started", ok: neverGrew.ok,
                                   detail: neverGrew.detail))
        // When tierd kept up during the allocation, little is left to move and the floor nears
        // zero; a controller still needs a tick to see it, so two ticks (1 s each) are allowed on top.
        let timing = LabClaims.withinFloor(reached: result.figures["seconds_to_99"], floor: result.figures["floor_seconds"])
        result.checks.append(Check(name: timingCheck, ok: timing.ok, detail: timing.detail))
        if !result.passed {
            result.diagnostics = lab.describe([batchGroup, protectedGroup])
                + "\nprotected job's slow-node MiB every 0.5 s: " + slowSamples.map { String($0 >> 20) }.joined(separator: " ")
                + "\nthe kernel from the protected job's start:\n" + trace.text
                + "\ntierd journal:\n" + tierd.tail()
        }
        return result
    }

    /// Everything tierd moved of `groups`, both ways.
    static func movedInAll(_ tierd: TierdRun, groups: [String]) -> UInt64 {
        groups.reduce(0) { $0 + tierd.movedBytes(group: $1, direction: "demote") + tierd.movedBytes(group: $1, direction: "promote") }
    }

    /// The headline without a reserve: what tierd moved from the protected job's start against the
    /// least its settings let it move. Without a reserve tierd keeps DRAM free down to `high` (20 %
    /// here), so the least is what the protected job took of DRAM beyond what was free above
    /// `high` when it started: its DRAM bytes + high − free before. (The batch job's own growth
    /// before is demoted to the same watermark, and counted apart; with a reserve the least is the
    /// protected job's deficit alone, and `late-protected-reserve` holds tierd to 1.2× of it.)
    /// Printed, not checked: on 6.12 it came to 1.19× in each of three runs, at the edge of the
    /// issue's 1.2× (the fall rate, still high a tick after the allocation ends, has tierd
    /// anticipate a fall that no longer comes), and a gate that close would fail the test command
    /// at random. The figures are in the results and docs/BENCHMARKS.md.
    static func movedAgainstLeast(_ lab: GuestLab, _ tierd: TierdRun, movedBefore: UInt64, freeBefore: UInt64, groups: [String],
                                  protectedGroup: String, result: inout ScenarioResult) -> String {
        let moved = movedInAll(tierd, groups: groups) - movedBefore
        let high = Double(lab.dramTotalBytes()) * 0.2
        let protectedDram = Double(lab.numaStat(protectedGroup).bytes(on: 0))
        let minimum = max(0, protectedDram + high - Double(freeBefore))
        result.figures["moved_from_protected_start_bytes"] = Double(moved)
        result.figures["minimum_to_move_bytes"] = minimum
        if minimum > 0 { result.figures["moved_per_minimum"] = Double(moved) / minimum }
        return String(format: "%@: from the protected job's start tierd moved %.0f MiB; the least its watermark asked for %.0f MiB = %.0f + %.0f − %.0f MiB free before (%.2f×)",
                      result.scenario, Double(moved) / mib, minimum / mib, protectedDram / mib, high / mib, Double(freeBefore) / mib,
                      minimum > 0 ? Double(moved) / minimum : 0)
    }

    /// `cold` demotion kept the batch job's hot set: at least 95 % of it in DRAM at every report from
    /// its allocation on; tierd's `/metrics` show cold demotion used and no byte lost to it; with
    /// kernel demotion on, tierd held the protected group's `memory.low` up and the kernel's
    /// reclaim demoted none of it (its `memory.stat` counts every demotion but tierd's own moves).
    /// With kernel demotion off (as this scenario leaves it), a workload in the default `cold` mode
    /// falls back to `task`: every demotion by task, and `tierctl explain` says why.
    static func demotionOffCheck(_ lab: GuestLab, _ tierd: TierdRun, batchGroup: String) -> Check {
        let explained = tierd.explain(batchGroup, lab: lab, label: "demotion-off")
        let modeLine = explained.text.split(separator: "\n").first { $0.contains("demotion mode:") }.map(String.init) ?? "no demotion mode line"
        let cold = tierd.metric("tierd_moved_bytes_total", label: "mode=\"cold\"") ?? 0
        let task = tierd.metric("tierd_moved_bytes_total", label: "mode=\"task\",workload=\"batch\"")
        return Check(name: "kernel demotion off: the default cold mode falls back to task, and explain says why",
                     ok: explained.ok && modeLine.contains("task") && modeLine.contains("demotion_enabled=false") && cold == 0 && (task ?? 0) > 0,
                     detail: String(format: "%@; demoted by task %.1f MiB, by cold %.1f MiB", modeLine, (task ?? 0) / mib, cold / mib))
    }

    static func coldChecks(_ lab: GuestLab, _ tierd: TierdRun, batch: Load, batchGroup: String, protectedGroup: String, t0: Double,
                           result: inout ScenarioResult) -> [Check] {
        let allocated = batch.allocatedAt() ?? .infinity
        let reports = batch.samples().filter { $0.t >= allocated }.map { LabClaims.Sample(seconds: $0.t - t0, share: $0.hotShare) }
        let hot = LabClaims.holdsThroughout(reports, threshold: 0.95)
        let coldBytes = tierd.metric("tierd_moved_bytes_total", label: "mode=\"cold\"")
        let taskDemoted = tierd.metric("tierd_moved_bytes_total", label: "mode=\"task\",workload=\"batch\"")
        let lost = tierd.metric("tierd_reclaim_lost_bytes_total")
        if let coldBytes { result.figures["cold_demoted_bytes"] = coldBytes }
        if let taskDemoted { result.figures["task_demoted_batch_bytes"] = taskDemoted }
        if let lost { result.figures["lost_bytes"] = lost }
        let kernelLost = tierd.metric("tierd_kernel_reclaim_lost_bytes_total")
        if let kernelLost { result.figures["kernel_lost_bytes"] = kernelLost }
        let slowTierDropped = tierd.metric("tierd_reclaim_slow_tier_dropped_bytes_total")
        if let slowTierDropped { result.figures["slow_tier_dropped_bytes"] = slowTierDropped }
        let used = coldBytes.map { $0 > 0 } ?? false
        let kernelDemoted = lab.kernelMovedPages(protectedGroup).demoted
        // Which reclaim demoted the batch job's pages (its hot ones included): tierd's requests
        // count as proactive on 7.3 and as direct on 6.12, kswapd's as background.
        if let stat = lab.memoryStat(batchGroup) {
            result.figures["batch_pgdemote_kswapd_pages"] = Double(stat.background.demoted)
            result.figures["batch_pgdemote_direct_pages"] = Double(stat.direct.demoted)
            result.figures["batch_pgdemote_proactive_pages"] = Double(stat.proactive.demoted)
        }
        let low = lab.fileValue(lab.cgroupDir(protectedGroup) + "/memory.low") ?? "?"
        let shieldEvents = tierd.events("shield").count
        result.figures["protected_kernel_demoted_pages"] = Double(kernelDemoted)
        return [
            Check(name: "the kernel's reclaim demoted none of the protected job (tierd raised its memory.low)",
                  ok: kernelDemoted == 0 && shieldEvents > 0 && (UInt64(low) ?? 0) > 0,
                  detail: "pgdemote of the protected group: \(kernelDemoted) pages; its memory.low now \(low); \(shieldEvents) shield events"),
            Check(name: "the batch job's hot set stays ≥ 95 % in DRAM at every report (cold demotion)", ok: hot.ok, detail: hot.detail),
            Check(name: "tierd demoted by cold and lost nothing to reclaim (none swapped; the slow tier's page cache it dropped is shown)",
                  ok: used && lost == 0 && slowTierDropped != nil && (taskDemoted ?? 0) == 0,
                  detail: coldBytes == nil || lost == nil || slowTierDropped == nil ? "no /metrics answer"
                    : String(format: "cold %.1f MiB, task %.1f MiB, lost %.0f bytes (the slow tier's page cache dropped: %.0f; the kernel's own reclaim lost meanwhile: %.0f)",
                             coldBytes! / mib, (taskDemoted ?? 0) / mib, lost!, slowTierDropped!, kernelLost ?? 0)),
        ]
    }

    /// What the running daemon's endpoint says, against the kernel and its own journal:
    /// `tierctl status --json` gives each group's bytes per node within 1 % of its memory.numa_stat
    /// read right after (a node holding under 1 MiB is judged against 1 MiB), and `/metrics` counts exactly the bytes the audit log's task moves add
    /// up to over the ticks it covers.
    /// Covers the 400 MiB protected job, which uses ~404 MiB of DRAM with its program, libraries and
    /// page tables, with 12 MiB to spare: a reserve it outgrows sends the lookahead after its last
    /// megabytes (a run with 400 MiB moved 1.28× the deficit), and every megabyte reserved beyond
    /// its use is moved for nothing (440 MiB: 1.18×).
    static let reserveMiB = 416

    /// The headline with `dram.reserve` covering the protected job, started once tierd reported
    /// the reserve met: it never touches the slow tier, and tierd moved no more than 1.2× what had
    /// to leave DRAM for it — its DRAM use and the low watermark, less the DRAM that would have been
    /// free without tierd (free when the reserve was met, less what tierd had demoted by then).
    static func reserveChecks(_ lab: GuestLab, _ tierd: TierdRun, _ wait: (met: Bool, seconds: Double, demotedBefore: UInt64, freeAtMet: UInt64),
                              samples: [LoadSample], t0: Double, batchGroup: String, protectedGroup: String,
                              result: inout ScenarioResult) -> [Check] {
        let held = LabClaims.holdsThroughout(samples.map { LabClaims.Sample(seconds: $0.t - t0, share: $0.allShare) }, threshold: 0.99)
        let moved = tierd.movedBytes(group: batchGroup, direction: "demote") + tierd.movedBytes(group: protectedGroup, direction: "promote")
        let need = Double(lab.numaStat(protectedGroup).bytes(on: 0)) + 0.02 * Double(lab.dramTotalBytes())
        let deficit = max(0, need - (Double(wait.freeAtMet) - Double(wait.demotedBefore)))
        result.figures["reserve_met_after_seconds"] = wait.met ? wait.seconds : -1
        result.figures["reserve_deficit_bytes"] = deficit
        result.figures["reserve_moved_bytes"] = Double(moved)
        if deficit > 0 { result.figures["reserve_moved_per_deficit"] = Double(moved) / deficit }
        return [
            Check(name: "tierd reports the reserve met before the protected job starts", ok: wait.met,
                  detail: String(format: "after %.1f s; %.0f MiB demoted by then, DRAM free %.0f MiB", wait.seconds,
                                 Double(wait.demotedBefore) / mib, Double(wait.freeAtMet) / mib)),
            Check(name: "the protected job is ≥ 99 % in DRAM at every report", ok: held.ok, detail: held.detail),
            Check(name: "tierd moved at most 1.2× the DRAM deficit (the protected job's DRAM and the low watermark, less what was free without tierd)",
                  ok: wait.met && deficit > 0 && Double(moved) <= 1.2 * deficit,
                  detail: String(format: "moved %.0f MiB, deficit %.0f MiB", Double(moved) / mib, deficit / mib)),
        ]
    }

    static func endpointChecks(_ lab: GuestLab, _ tierd: TierdRun, name: String, groups: [String]) -> [Check] {
        let status = tierd.tierctl(["status", "--json"], lab: lab, label: "\(name)-status")
        let document = try? JSONSerialization.jsonObject(with: Data(status.text.utf8)) as? [String: Any]
        let reported = (document?["groups"] as? [[String: Any]] ?? []).reduce(into: [String: [String: Int]]()) { map, group in
            if let path = group["path"] as? String, let bytes = group["bytes_per_node"] as? [String: Int] { map[path] = bytes }
        }
        var worst = 0.0, details: [String] = []
        var complete = status.ok
        for group in groups {
            let kernel = lab.numaStat(group)
            guard let bytes = reported["/" + group] else { complete = false; details.append("\(group): not in the status"); continue }
            for node in [0, 1] {
                let said = Double(bytes[String(node)] ?? 0), actual = Double(kernel.bytes(on: node))
                let off = abs(said - actual) / max(actual, 1_048_576.0)
                worst = max(worst, off)
                details.append(String(format: "%@ node %d: status %.1f MiB, numa_stat %.1f MiB", group, node, said / mib, actual / mib))
            }
        }
        var checks = [Check(name: "tierctl status --json agrees with memory.numa_stat within 1 %", ok: complete && worst <= 0.01,
                            detail: (status.ok ? "" : "tierctl failed: \(status.text.prefix(200)); ") + details.joined(separator: "; "))]
        if let counted = tierd.metricsMoved() {
            let audited = tierd.auditMoved(throughTick: counted.ticks)
            checks.append(Check(name: "/metrics counts the bytes the audit log's task moves add up to", ok: counted.demote == audited.demote
                                    && counted.promote == audited.promote && counted.demote > 0,
                                detail: "over \(counted.ticks) ticks: demoted \(counted.demote) vs \(audited.demote), promoted \(counted.promote) vs \(audited.promote)"))
        } else {
            checks.append(Check(name: "/metrics counts the bytes the audit log's task moves add up to", ok: false, detail: "no answer on \(tierd.socket)"))
        }
        return checks
    }

    /// The rest of a pod's life, through the container's own confinement: the readiness probe's
    /// `tierctl health --ready`, a SIGHUP reload, a changed policy file picked up unasked (the
    /// ConfigMap's way), and a manual demotion of 16 MiB of the opted-in group.
    static func podLifeChecks(_ lab: GuestLab, _ tierd: TierdRun, name: String, opted: String) -> [Check] {
        let ready = tierd.tierctl(["health", "--ready"], lab: lab, label: "\(name)-ready")
        let reloadsBefore = tierd.events("reload").count
        kill(tierd.process.processIdentifier, SIGHUP)
        let reloaded = lab.waitFor(seconds: 20) { tierd.events("reload").count > reloadsBefore }
        let policy = (try? String(contentsOfFile: tierd.policyPath, encoding: .utf8)) ?? ""
        try? (policy + "# changed\n").write(toFile: tierd.policyPath + ".new", atomically: false, encoding: .utf8)
        rename(tierd.policyPath + ".new", tierd.policyPath)
        let watched = lab.waitFor(seconds: 20) { tierd.events("reload").contains { $0["cause"] as? String != "signal" && $0["ok"] as? Bool == true } }
        // The daemon's own ticks may demote the group meanwhile: the audit log tells the manual move apart.
        let before = lab.numaStat(opted).bytes(on: 1)
        let manual = tierd.tierctl(["demote", opted, "--bytes", "16MiB"], lab: lab, label: "\(name)-manual-demote")
        let gained = Int64(lab.numaStat(opted).bytes(on: 1)) - Int64(before)
        let audited = tierd.auditRecords().filter { ($0["reason"] as? String)?.hasPrefix("manual: tierctl demote") == true }
            .reduce(0) { $0 + Int64(($1["moved"] as? Int) ?? 0) }
        return [
            Check(name: "tierctl health --ready answers ready", ok: ready.ok, detail: ready.text.trimmingCharacters(in: .whitespacesAndNewlines)),
            Check(name: "SIGHUP and a changed policy file are both reloaded", ok: reloaded && watched,
                  detail: tierd.events("reload").map { "\($0["cause"] ?? "?"): ok \($0["ok"] ?? "?")" }.joined(separator: ", ")),
            Check(name: "tierctl demote --bytes 16MiB moves about 16 MiB to the slow node, audited as manual",
                  ok: manual.ok && (12 << 20...20 << 20).contains(audited) && gained >= audited - (1 << 20),
                  detail: String(format: "audit %.1f MiB; slow node +%.1f MiB; ", Double(audited) / mib, Double(gained) / mib)
                      + (manual.text.split(separator: "\n").first.map(String.init) ?? manual.text)),
        ]
    }

    /// The seccomp audit records (type 1326) in the kernel log, as (executable, system call number).
    /// The executable, not the thread's name: Dispatch names its threads ("oot.default-qos").
    static func seccompRefusals(_ lab: GuestLab) -> [(exe: String, syscall: Int)] {
        let dmesg = lab.out + "/dmesg.txt"
        lab.spawn(group: nil, ["dmesg"], output: dmesg).waitUntilExit()
        let text = (try? String(contentsOfFile: dmesg, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("type=1326") }.compactMap { line in
            func field(_ key: String) -> String? {
                guard let range = line.range(of: " " + key + "=") else { return nil }
                return line[range.upperBound...].split(separator: " ").first.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
            guard let exe = field("exe"), let call = field("syscall").flatMap({ Int($0) }) else { return nil }
            return (exe, call)
        }
    }

    /// tierd and tierctl ran under the DaemonSet's profile with refusals logged: none of their
    /// calls was refused. The control: unshare(1) under the same profile, whose unshare(2) it
    /// refuses, must leave a record, or the kernel log is not one to trust.
    static func seccompRefusalChecks(_ lab: GuestLab) -> [Check] {
        lab.spawn(group: nil, lab.seccompPrefix + ["/usr/bin/unshare", "--uts", "true"], output: lab.out + "/seccomp-control.txt").waitUntilExit()
        let refusals = seccompRefusals(lab)
        let control = refusals.filter { $0.exe == "/usr/bin/unshare" }
        let ours = refusals.filter { $0.exe.hasPrefix(lab.bin) || $0.exe.hasSuffix("/tierd") || $0.exe.hasSuffix("/tierctl") }
        let names = Set(ours.map { "\(URL(fileURLWithPath: $0.exe).lastPathComponent):\($0.syscall)" }).sorted()
        return [
            Check(name: "the kernel logs what the seccomp profile refuses (control: unshare(2))", ok: !control.isEmpty,
                  detail: "\(control.count) records for unshare; \(refusals.count) type-1326 records in all"),
            Check(name: "no system call of tierd or tierctl was refused by deploy/kubernetes/tierd-seccomp.json", ok: !control.isEmpty && ours.isEmpty,
                  detail: ours.isEmpty ? "0 refusals" : "refused (executable:number): " + names.joined(separator: ", ")),
        ]
    }


    /// migratepages' rate on the running protected job: out to the slow node and back, timed.
    static func migratepagesUnderLoad(_ lab: GuestLab, _ job: Load, group: String) -> Double? {
        var moved: UInt64 = 0, seconds = 0.0
        for (from, to) in [("0", "1"), ("1", "0")] {
            let node = Int(from)!
            let before = lab.numaStat(group).bytes(on: node)
            let started = monotonic()
            lab.spawn(group: nil, ["migratepages", String(job.pid), from, to], output: lab.out + "/migratepages-loaded.out").waitUntilExit()
            seconds += monotonic() - started
            moved += before - min(before, lab.numaStat(group).bytes(on: node))
        }
        guard moved > 0, seconds > 0 else { return nil }
        lab.log(String(format: "migratepages under load: %.1f MiB in %.2f s", Double(moved) / mib, seconds))
        return Double(moved) / mib / seconds
    }

    // MARK: opt-out

    /// Sustained DRAM pressure: tierd demotes the opted-in job and never the opt-out one.
    static func optOutHolds(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "opt-out-holds", checks: [])
        let keep = "\(lab.labSlice)/keep", batch = "\(lab.labSlice)/batch"
        lab.makeGroup(keep); lab.makeGroup(batch)
        let tierd = lab.startTierd("tierd-optout", policy: """
            controller: {interval: 1s}
            workloads:
              - {name: keep, match: ["\(keep)"], demote: never}
              - {name: batch, match: ["\(batch)"], demote: allowed}
            """)
        // Both jobs also map 32 MiB of one shm file, first touched (and charged to) the batch job:
        // demoting the batch job must leave those pages, which the opt-out job uses too.
        let sharedFile = "/dev/shm/tierlab-optout-shared"
        unlink(sharedFile)
        let demotable = lab.load("optout-batch", group: batch, mib: 150, hotMiB: 10, shared: (sharedFile, 32))
        _ = lab.waitFor(seconds: 60) { demotable.allocatedAt() != nil }
        let kept = lab.load("optout-keep", group: keep, mib: 300, hotMiB: 300, shared: (sharedFile, 32))
        _ = lab.waitFor(seconds: 120) { kept.allocatedAt() != nil && demotable.allocatedAt() != nil }
        let slowBefore = lab.numaStat(keep).bytes(on: 1)
        _ = lab.fillDram(leaveMiB: 20)
        var slowSeries = [slowBefore]
        let until = monotonic() + 25
        while monotonic() < until { slowSeries.append(lab.numaStat(keep).bytes(on: 1)); usleep(500_000) }
        let maxSlow = slowSeries.max() ?? slowBefore
        let demotedBatch = tierd.movedBytes(group: batch, direction: "demote")
        let shared = lab.mappedBytes(kept.pid, file: sharedFile), batchPrivateSlow = lab.numaStat(batch).bytes(on: 1)
        let sharedTotal = shared.values.reduce(0, +)
        unlink(sharedFile)
        result.figures = ["keep_slow_bytes_before": Double(slowBefore), "keep_slow_bytes_max": Double(maxSlow),
                          "batch_demoted_bytes": Double(demotedBatch), "shared_slow_bytes": Double(shared[1] ?? 0)]
        result.checks.append(Check(name: "pages the batch job shares with the opt-out job stay in DRAM", ok: sharedTotal >= 30 << 20 && (shared[1] ?? 0) == 0 && batchPrivateSlow > 0,
                                   detail: String(format: "shared file: %.1f MiB on node 0, %.1f MiB on node 1; batch job's slow-node bytes %.0f MiB",
                                                  Double(shared[0] ?? 0) / mib, Double(shared[1] ?? 0) / mib, Double(batchPrivateSlow) / mib)))
        result.checks.append(Check(name: "DRAM pressure made tierd demote the opted-in job", ok: demotedBatch > 0,
                                   detail: String(format: "%.0f MiB demoted from batch", Double(demotedBatch) / mib)))
        let neverGrew = LabClaims.neverGrows(slowSeries)
        result.checks.append(Check(name: "not a page of the opt-out job moved to slow memory", ok: neverGrew.ok
                                   && tierd.movedBytes(group: keep, direction: "demote") == 0,
                                   detail: String(format: "slow-node bytes %.1f MiB before, at most %.1f MiB during 25 s of pressure: ", Double(slowBefore) / mib, Double(maxSlow) / mib)
                                       + neverGrew.detail))
        lab.stop(tierd.process)
        let stopLog = (try? String(contentsOfFile: lab.out + "/tierd-optout.log", encoding: .utf8)) ?? ""
        result.checks.append(Check(name: "SIGTERM stops tierd cleanly", ok: tierd.process.terminationStatus == 0 && stopLog.contains("tierd stopping"),
                                   detail: "exit status \(tierd.process.terminationStatus)"))
        if !result.passed { result.diagnostics = lab.describe([keep, batch]) + "\ntierd journal:\n" + tierd.tail() }
        return result
    }

    // MARK: mempolicy

    /// A `numactl --membind=0` task in an opted-in group stays put under `mempolicy: respect`
    /// while its unbound sibling is demoted; after a SIGHUP reload with `override`, it moves too.
    static func mempolicy(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "mempolicy", checks: [])
        let group = "\(lab.labSlice)/batch"
        lab.makeGroup(group)
        func policy(_ mode: String) -> String {
            """
            controller: {interval: 1s}
            workloads:
              - {name: batch, match: ["\(group)"], demote: allowed, mempolicy: \(mode)}
            """
        }
        let bound = lab.load("mempolicy-bound", group: group, mib: 100, hotMiB: 0, prefix: ["numactl", "--membind=0"])
        let free = lab.load("mempolicy-free", group: group, mib: 100, hotMiB: 0)
        _ = lab.waitFor(seconds: 120) { bound.allocatedAt() != nil && free.allocatedAt() != nil }
        let tierd = lab.startTierd("tierd-mempolicy", policy: policy("respect"))
        _ = lab.fillDram(leaveMiB: 20)
        func slowShare(_ load: Load) -> Double { 1 - (load.samples().last?.allShare ?? 1) }
        _ = lab.waitFor(seconds: 45) { slowShare(free) > 0.9 }
        sleep(3)
        let boundUnderRespect = slowShare(bound), freeUnderRespect = slowShare(free)
        let skipped = tierd.events("action").flatMap { ($0["tasks"] as? [[String: Any]]) ?? [] }
            .filter { ($0["pid"] as? Int).map(Int32.init) == bound.pid && $0["result"] as? String == "mempolicy" }.count
        result.checks.append(Check(name: "respect: the unbound task is demoted", ok: freeUnderRespect > 0.9,
                                   detail: String(format: "%.0f%% on the slow node", freeUnderRespect * 100)))
        result.checks.append(Check(name: "respect: the membind=0 task is left in DRAM", ok: boundUnderRespect < 0.01 && skipped > 0,
                                   detail: String(format: "%.1f%% on the slow node; %d journal entries skipping it for its mempolicy", boundUnderRespect * 100, skipped)))
        let reason = "pid \(bound.pid): its mempolicy bind:0 excludes the targets"
        let explained = tierd.explain(group, lab: lab, label: "mempolicy")
        result.checks.append(Check(name: "tierctl explain names the mempolicy that kept the task", ok: explained.ok && explained.text.contains(reason),
                                   detail: explained.text.split(separator: "\n").first { $0.contains("pid \(bound.pid)") }.map(String.init)
                                       ?? "no line for pid \(bound.pid) in: " + explained.text))
        // By hand as by tierd: a manual demotion goes through the same per-task mempolicy check.
        let manual = tierd.tierctl(["demote", group], lab: lab, label: "mempolicy-manual-demote")
        sleep(1)
        let boundAfterManual = slowShare(bound)
        result.checks.append(Check(name: "tierctl demote leaves the membind=0 task in DRAM too, and says why",
                                   ok: manual.ok && manual.text.contains("  " + reason) && boundAfterManual < 0.01,
                                   detail: String(format: "%.1f%% on the slow node after; %@", boundAfterManual * 100,
                                                  manual.text.split(separator: "\n").first { $0.contains("pid \(bound.pid)") }.map(String.init) ?? manual.text)))
        tierd.requestReload(policy("override"))
        _ = lab.waitFor(seconds: 45) { slowShare(bound) > 0.5 }
        sleep(2)
        let boundUnderOverride = slowShare(bound)
        let reloaded = tierd.events("reload").contains { $0["ok"] as? Bool == true }
        // tierd moves only what the watermark asks for, so "demoted" means most of it, not all.
        result.checks.append(Check(name: "override (after SIGHUP reload): the membind=0 task is demoted", ok: reloaded && boundUnderOverride > 0.5,
                                   detail: String(format: "reload ok: %@; %.0f%% on the slow node", reloaded ? "yes" : "no", boundUnderOverride * 100)))
        result.figures = ["bound_slow_share_respect": boundUnderRespect, "free_slow_share_respect": freeUnderRespect,
                          "bound_slow_share_override": boundUnderOverride]
        if !result.passed { result.diagnostics = lab.describe([group]) + "\ntierd journal:\n" + tierd.tail() }
        return result
    }

    // MARK: pressure guard

    /// An opted-in job stalling on its own memory.high is not demoted while its PSI is over the
    /// guard; once the stall ends, it is.
    static func pressureGuard(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "pressure-guard", checks: [])
        let group = "\(lab.labSlice)/guarded"
        lab.makeGroup(group, memoryHigh: "48M")
        let tierd = lab.startTierd("tierd-guard", policy: """
            controller: {interval: 1s}
            workloads:
              - {name: guarded, match: ["\(group)"], demote: allowed, pressure_guard: {some_avg10: 10%}}
            """)
        let job = lab.load("guard-job", group: group, mib: 96, hotMiB: 96)
        // It cannot finish allocating under memory.high without swap: it stalls, which is the point.
        _ = lab.waitFor(seconds: 20) { lab.numaStat(group).bytes(on: 0) > 40 << 20 }
        sleep(5)
        _ = lab.fillDram(leaveMiB: 20)
        let guardWindowEnd = monotonic() + 15
        var slowDuringGuard: UInt64 = 0
        while monotonic() < guardWindowEnd { slowDuringGuard = max(slowDuringGuard, lab.numaStat(group).bytes(on: 1)); usleep(500_000) }
        let guardSkips = tierd.events("skip").filter { $0["group"] as? String == "/" + group && $0["reason"] as? String == "pressure_guard" }
        let pressure = (try? lab.files.read(lab.cgroupDir(group) + "/memory.pressure")).flatMap(KernelText.pressure)
        result.figures["some_avg10_during_guard"] = pressure?.some.avg10 ?? .nan
        // The job keeps allocating slowly under memory.high, and with DRAM full the kernel gives it
        // a little slow memory itself: what matters is that tierd moved none of it.
        result.checks.append(Check(name: "while stalling over its guard it is not demoted", ok: !guardSkips.isEmpty
                                   && tierd.movedBytes(group: group, direction: "demote") == 0,
                                   detail: String(format: "some avg10 %.1f%%; %d pressure_guard skips; tierd moved 0 bytes; %.1f MiB on the slow node (kernel fallback)", (pressure?.some.avg10 ?? 0) * 100, guardSkips.count, Double(slowDuringGuard) / mib)))
        let psiWakes = tierd.events("wake").filter { $0["cause"] as? String == "psi" && $0["group"] as? String == "/" + group }.count
        result.figures["psi_wakes"] = Double(psiWakes)
        result.checks.append(Check(name: "the group's PSI trigger woke tierd", ok: psiWakes > 0,
                                   detail: "\(psiWakes) wake-ups from the trigger on \(group)/memory.pressure"))
        result.checks.append(psiTriggerReloadCheck(lab, tierd, group: group))
        lab.setFile(lab.cgroupDir(group) + "/memory.high", "max")
        _ = lab.waitFor(seconds: 60) { tierd.movedBytes(group: group, direction: "demote") > 0 }
        let demotedAfter = tierd.movedBytes(group: group, direction: "demote")
        result.figures["demoted_after_release_bytes"] = Double(demotedAfter)
        result.checks.append(Check(name: "once the stall ends it is demoted", ok: demotedAfter > 0,
                                   detail: String(format: "%.1f MiB demoted after memory.high was lifted", Double(demotedAfter) / mib)))
        _ = job
        if !result.passed { result.diagnostics = lab.describe([group]) + "\ntierd journal:\n" + tierd.tail() }
        return result
    }

    /// A SIGHUP with a changed `psi_trigger` re-arms the kernel's triggers with the new one:
    /// before, the triggers armed at start stayed until tierd restarted. The journal's `psi`
    /// event says what was armed, and on how many groups, after the kernel took the writes.
    static func psiTriggerReloadCheck(_ lab: GuestLab, _ tierd: TierdRun, group: String) -> Check {
        func armed(_ trigger: String) -> [[String: Any]] {
            tierd.events("psi").filter { $0["trigger"] as? String == trigger && ($0["armed"] as? Int ?? 0) >= 1 && $0["failed"] as? Int == 0 }
        }
        let atStart = armed("some 150000 1000000")
        let policy = (try? String(contentsOfFile: tierd.policyPath, encoding: .utf8)) ?? ""
        tierd.requestReload(policy.replacingOccurrences(of: "controller: {interval: 1s}",
                                                        with: "controller: {interval: 1s, psi_trigger: {stall: 200ms, window: 2s}}"))
        let rearmed = lab.waitFor(seconds: 20) { !armed("some 200000 2000000").isEmpty }
        return Check(name: "SIGHUP with a new psi_trigger re-arms the kernel's triggers with it", ok: !atStart.isEmpty && rearmed,
                     detail: tierd.events("psi").map { "\($0["trigger"] ?? "?") on \($0["armed"] ?? "?") (failed \($0["failed"] ?? "?"))" }
                         .joined(separator: "; "))
    }

    // MARK: cpusets (three-node guest)

    /// An opted-in group allowed DRAM and node 2 is demoted to node 2 only; a protected group
    /// confined to node 1 is never promoted into DRAM.
    static func cpuset(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "cpuset", checks: [])
        let partial = "\(lab.labSlice)/partial", confined = "\(lab.labSlice)/confined", dramOnly = "\(lab.labSlice)/dram-only"
        lab.makeGroup(partial, mems: "0,2")
        lab.makeGroup(confined, mems: "1")
        lab.makeGroup(dramOnly, mems: "0")
        let tierd = lab.startTierd("tierd-cpuset", policy: """
            controller: {interval: 1s}
            workloads:
              - {name: partial, match: ["\(partial)"], demote: allowed}
              - {name: dram-only, match: ["\(dramOnly)"], demote: allowed}
              - {name: confined, match: ["\(confined)"], demote: never, promote: true}
            """)
        let a = lab.load("cpuset-partial", group: partial, mib: 200, hotMiB: 0)
        let c = lab.load("cpuset-confined", group: confined, mib: 100, hotMiB: 0)
        let d = lab.load("cpuset-dram-only", group: dramOnly, mib: 32, hotMiB: 0)
        _ = lab.waitFor(seconds: 120) { a.allocatedAt() != nil && c.allocatedAt() != nil && d.allocatedAt() != nil }
        let filler = lab.fillDram(leaveMiB: 20)
        var partialOnNode1: UInt64 = 0, confinedInDram: UInt64 = 0
        _ = lab.waitFor(seconds: 40) {
            partialOnNode1 = max(partialOnNode1, lab.numaStat(partial).bytes(on: 1))
            confinedInDram = max(confinedInDram, lab.numaStat(confined).bytes(on: 0))
            return lab.numaStat(partial).bytes(on: 2) > 100 << 20
        }
        for _ in 0..<10 {
            partialOnNode1 = max(partialOnNode1, lab.numaStat(partial).bytes(on: 1))
            confinedInDram = max(confinedInDram, lab.numaStat(confined).bytes(on: 0))
            usleep(500_000)
        }
        let onNode2 = lab.numaStat(partial).bytes(on: 2)
        let confinedSkips = tierd.events("skip").filter { $0["group"] as? String == "/" + confined && $0["reason"] as? String == "confined_to_slow_nodes" }
        result.checks.append(Check(name: "demoted only to the slow node in its cpuset (node 2)", ok: onNode2 > 100 << 20 && partialOnNode1 < 1 << 20,
                                   detail: String(format: "node 2: %.0f MiB; node 1 at most %.1f MiB", Double(onNode2) / mib, Double(partialOnNode1) / mib)))
        result.checks.append(Check(name: "a group confined to slow node 1 is never promoted", ok: confinedInDram < 1 << 20 && !confinedSkips.isEmpty
                                   && tierd.movedBytes(group: confined, direction: "promote") == 0,
                                   detail: String(format: "DRAM bytes at most %.1f MiB; %d confined_to_slow_nodes skips", Double(confinedInDram) / mib, confinedSkips.count)))
        let confinedWhy = tierd.explain(confined, lab: lab, label: "cpuset-confined")
        let expected = "decision now: skipped, cpuset.mems.effective is 1, no DRAM node: never promoted"
        result.checks.append(Check(name: "tierctl explain names why the confined group is not promoted", ok: confinedWhy.ok && confinedWhy.text.contains(expected),
                                   detail: confinedWhy.text.split(separator: "\n").first { $0.hasPrefix("decision now") }.map(String.init) ?? confinedWhy.text))
        let partialWhy = tierd.explain(partial, lab: lab, label: "cpuset-partial")
        let targets = "demotion targets: slow 1-2 ∩ cpuset 0,2 ∩ tierd 0-2 = 2"
        result.checks.append(Check(name: "tierctl explain derives the partial group's demotion target from its cpuset", ok: partialWhy.ok && partialWhy.text.contains(targets),
                                   detail: partialWhy.text.split(separator: "\n").first { $0.hasPrefix("demotion targets") }.map(String.init) ?? partialWhy.text))
        result.checks += manualMovesKeepToTheCpuset(lab, tierd, partial: partial, confined: confined, dramOnly: dramOnly, filler: filler)
        if !result.passed { result.diagnostics = lab.describe([partial, confined, dramOnly]) + "\ntierd journal:\n" + tierd.tail() }
        return result
    }

    // MARK: faults in the middle of a move

    /// Faults while tierd is in the middle of a long demotion, on the real kernel: the group's
    /// cpuset loses slow node 1; one of its tasks is killed and its pid given to a new task of an
    /// unmanaged group (through `ns_last_pid`); a second opted-in group is removed with its task.
    /// Claims: no page of the group lands on node 1 after the change, nothing of the task that
    /// took the pid moves, and tierd stays up and goes on demoting.
    static func faultsMidMove(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "faults-mid-move", checks: [])
        let moving = "\(lab.labSlice)/moving", doomed = "\(lab.labSlice)/doomed", victim = "\(lab.labSlice)/victim"
        for group in [moving, doomed, victim] { lab.makeGroup(group, mems: "0-2") }
        let tierd = lab.startTierd("tierd-faults", policy: """
            controller: {interval: 1s, idle_interval: 1s, rate_limit: 24MiB/s, demotion_per_tick: 24MiB}
            workloads:
              - {name: moving, match: ["\(moving)"], demote: allowed, rate_limit: 12MiB/s}
              - {name: doomed, match: ["\(doomed)"], demote: allowed, rate_limit: 12MiB/s}
            """)
        // The first task listed is the one tierd moves first: it is the one killed mid-move.
        let killed = lab.load("faults-killed", group: moving, mib: 300, hotMiB: 0)
        _ = lab.waitFor(seconds: 60) { killed.allocatedAt() != nil }
        let stays = lab.load("faults-stays", group: moving, mib: 100, hotMiB: 0)
        let gone = lab.load("faults-doomed", group: doomed, mib: 100, hotMiB: 0)
        guard lab.waitFor(seconds: 120, { killed.allocatedAt() != nil && stays.allocatedAt() != nil && gone.allocatedAt() != nil }) else {
            result.checks.append(Check(name: "jobs allocated", ok: false, detail: lab.describe([moving, doomed])))
            return result
        }
        _ = lab.fillDram(leaveMiB: 20)
        let slow = { (group: String) in lab.numaStat(group).bytes(on: NodeSet([1, 2])) }
        let underWay = lab.waitFor(seconds: 30) { slow(moving) > 24 << 20 && slow(doomed) > 0 }
        result.checks.append(Check(name: "tierd was demoting both groups when the faults came", ok: underWay,
                                   detail: String(format: "%.0f MiB and %.0f MiB on the slow nodes", Double(slow(moving)) / mib, Double(slow(doomed)) / mib)))

        // 1. The cpuset loses node 1; the kernel moves what was there to the nodes left.
        lab.setFile(lab.cgroupDir(moving) + "/cpuset.mems", "0,2")
        let movedBeforeChange = tierd.movedBytes(group: moving, direction: "demote")
        let ticksAtFaults = tierd.metricsMoved()?.ticks ?? Int.max
        // 2. A task of the group is killed, its pid given to a new task of an unmanaged group.
        let reusedPid = killed.pid
        // A tick's moves reach the audit log when the tick ends: a move of the killed task in the
        // tick under way at the kill is logged after it. Moves of ticks up to that one count as
        // before the kill; any in a later tick, as after (seen on 7.3, one move logged late).
        let movesOfThePid = { (ticks: ClosedRange<Int>) in
            tierd.auditRecords().filter {
                ($0["pid"] as? Int) == Int(reusedPid) && ($0["moved"] as? Int ?? 0) > 0 && ticks.contains($0["tick"] as? Int ?? 0)
            }.count
        }
        lab.stop(killed.process, signal: SIGKILL)
        let tickUnderWayAtKill = (tierd.metricsMoved()?.ticks ?? 0) + 1
        let taker = takePid(reusedPid, lab: lab, group: victim)
        // 3. The second group goes, task and all.
        lab.stop(gone.process, signal: SIGKILL)
        lab.removeGroups(doomed)

        // The kernel moves the group's pages off node 1 itself (cgroup v2 migrates on a cpuset.mems write).
        let emptied = lab.waitFor(seconds: 15) { lab.numaStat(moving).bytes(on: 1) < 1 << 20 }
        var onNode1: [UInt64] = [], victimSlow: [UInt64] = []
        for _ in 0..<30 {
            onNode1.append(lab.numaStat(moving).bytes(on: 1))
            victimSlow.append(slow(victim))
            usleep(500_000)
        }
        let movesBeforeKill = movesOfThePid(0...tickUnderWayAtKill)
        let movesAfterKill = movesOfThePid((tickUnderWayAtKill + 1)...Int.max)
        let afterChange = tierd.movedBytes(group: moving, direction: "demote") - movedBeforeChange
        result.figures = ["moving_node1_bytes_after_change_max": Double(onNode1.max() ?? 0), "demoted_after_faults_bytes": Double(afterChange),
                          "victim_slow_bytes_max": Double(victimSlow.max() ?? 0)]
        let node1 = LabClaims.neverGrows(onNode1)
        result.checks.append(Check(name: "after its cpuset dropped node 1, no page of the group lands there", ok: emptied && node1.ok,
                                   detail: String(format: "node 1 %@ (%.1f MiB); then ", emptied ? "emptied by the kernel" : "never emptied",
                                                  Double(onNode1.first ?? 0) / mib) + node1.detail
                                       + "; \(tierd.taskResults("cpuset_changed")) task moves stopped as cpuset_changed"))
        let victimHeld = LabClaims.neverGrows(victimSlow)
        // Its own allocation may have spilled (DRAM is full): what counts is that nothing moves after.
        result.checks.append(Check(name: "the task given the killed task's pid is never moved", ok: taker != nil && victimHeld.ok && movesAfterKill == 0
                                   && movesBeforeKill > 0,
                                   detail: (taker.map { "pid \($0) taken by a task of \(victim); " } ?? "the pid could not be reused; ")
                                       + "\(movesBeforeKill) moves of that pid before the kill, \(movesAfterKill) after; victim's slow-node bytes: " + victimHeld.detail))
        // The killed task's DRAM comes free, so the demand may end: what must go on is the loop
        // (its idle interval is its interval here, so that the ticks count the loop's life).
        let ticksNow = tierd.metricsMoved()?.ticks ?? 0
        let ticksAfter = ticksNow - min(ticksAtFaults, ticksNow)
        result.checks.append(Check(name: "tierd stays up through the faults and goes on planning", ok: tierd.process.isRunning && ticksAfter >= 10,
                                   detail: String(format: "%d ticks in the 15 s after the faults; %.0f MiB demoted from the group after them; %d tasks counted exited, %d left their group",
                                                  ticksAfter, Double(afterChange) / mib, tierd.taskResults("exited"), tierd.taskResults("left_group"))))
        if !result.passed { result.diagnostics = lab.describe([moving, victim]) + "\ntierd journal:\n" + tierd.tail() }
        return result
    }

    /// tierd SIGKILLed in the middle of a long demotion, then started again: the job it was moving
    /// is whole and running, the new tierd finishes the demotion (DRAM free back at the high
    /// watermark), and the kernel's tiering settings are as they were before tierd first started.
    static func killedMidDemotion(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "killed-mid-demotion", checks: [])
        let batch = "\(lab.labSlice)/batch"
        lab.makeGroup(batch)
        let settingsBefore = lab.tieringSettings()
        let policy = """
            controller: {interval: 1s, rate_limit: 32MiB/s, demotion_per_tick: 32MiB}
            workloads:
              - {name: batch, match: ["\(batch)"], demote: allowed}
            """
        let job = lab.load("killed-batch", group: batch, mib: 500, hotMiB: 50)
        guard lab.waitFor(seconds: 120, { job.allocatedAt() != nil }) else {
            result.checks.append(Check(name: "job allocated", ok: false, detail: lab.describe([batch])))
            return result
        }
        let first = lab.startTierd("tierd-killed", policy: policy)
        _ = lab.fillDram(leaveMiB: 20)
        let underWay = lab.waitFor(seconds: 30) { lab.numaStat(batch).bytes(on: 1) > 64 << 20 }
        lab.stop(first.process, signal: SIGKILL)
        let slowAtKill = lab.numaStat(batch).bytes(on: 1)
        let settingsAfterKill = lab.tieringSettings()
        let reportsAtKill = job.samples().count
        let high = UInt64(Double(lab.dramTotalBytes()) * 0.2)
        result.checks.append(Check(name: "tierd was killed in the middle of the demotion", ok: underWay && lab.dramFreeBytes() < high,
                                   detail: String(format: "%.0f MiB of the job on the slow node, DRAM free %.0f MiB of a %.0f MiB target at the kill",
                                                  Double(slowAtKill) / mib, Double(lab.dramFreeBytes()) / mib, Double(high) / mib)))
        result.checks.append(Check(name: "the kernel's tiering settings are as tierd found them", ok: settingsAfterKill == settingsBefore,
                                   detail: "before: \(settingsBefore); after the kill: \(settingsAfterKill)"))
        let second = lab.startTierd("tierd-restarted", policy: policy)
        let finished = lab.waitFor(seconds: 60) { lab.dramFreeBytes() >= high * 95 / 100 }
        let demoted = second.movedBytes(group: batch, direction: "demote")
        result.figures = ["slow_bytes_at_kill": Double(slowAtKill), "restarted_demoted_bytes": Double(demoted),
                          "dram_free_at_end_bytes": Double(lab.dramFreeBytes())]
        result.checks.append(Check(name: "the restarted tierd finishes the demotion", ok: finished && demoted > 0 && second.process.isRunning,
                                   detail: String(format: "%.0f MiB demoted after the restart; DRAM free %.0f MiB (target %.0f MiB)",
                                                  Double(demoted) / mib, Double(lab.dramFreeBytes()) / mib, Double(high) / mib)))
        _ = lab.waitFor(seconds: 5) { job.samples().count > reportsAtKill }
        let stat = lab.numaStat(batch)
        result.checks.append(Check(name: "the job is whole and running", ok: job.process.isRunning && job.samples().count > reportsAtKill
                                   && stat.bytes(on: 0) + stat.bytes(on: 1) >= 500 << 20,
                                   detail: String(format: "running: %@; %d reports since the kill; %.0f MiB in DRAM, %.0f MiB on the slow node",
                                                  job.process.isRunning ? "yes" : "no", job.samples().count - reportsAtKill,
                                                  Double(stat.bytes(on: 0)) / mib, Double(stat.bytes(on: 1)) / mib)))
        if !result.passed { result.diagnostics = lab.describe([batch]) + "\ntierd journal:\n" + second.tail() }
        return result
    }

    /// The slow tier nearly full, and tierd's journal on a full disk. An unmanaged job bound to the
    /// slow node leaves it 48 MiB above the kernel's high watermark; DRAM pressure then asks tierd
    /// for far more. tierd must demote only into that room, keep the node above its watermark at
    /// every sample, skip with `slow_nodes_full` instead of trying again each tick, kill nothing,
    /// and demote again once the bound job ends. DRAM is filled to 60 MiB free: below tierd's low
    /// watermark, above the kernel's, so the kernel itself does not fall back to the slow node.
    /// All the while its journal sits on a 4 KiB tmpfs: it must keep managing memory and say once
    /// that it cannot write.
    static func slowTierFull(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "slow-tier-full", checks: [])
        let batch = "\(lab.labSlice)/batch", squatter = "\(lab.labSlice)/squatter"
        lab.makeGroup(batch); lab.makeGroup(squatter)
        let fullDisk = "/run/tierlab-full"
        mkdir(fullDisk, 0o755)
        let mount = lab.spawn(group: nil, ["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", fullDisk], output: lab.out + "/slow-full-mount.out")
        mount.waitUntilExit()
        defer { lab.spawn(group: nil, ["umount", "-l", fullDisk], output: lab.out + "/slow-full-umount.out").waitUntilExit() }
        let squatMiB = Int(lab.roomAboveHighWatermark(node: 1) >> 20) - 48
        let squat = lab.load("slow-full-squatter", group: squatter, mib: squatMiB, hotMiB: 0, prefix: ["numactl", "--membind=1"], interval: 5)
        let job = lab.load("slow-full-batch", group: batch, mib: 400, hotMiB: 0)
        guard lab.waitFor(seconds: 180, { squat.allocatedAt() != nil && job.allocatedAt() != nil }) else {
            result.checks.append(Check(name: "jobs allocated", ok: false, detail: lab.describe([batch, squatter])))
            return result
        }
        let tierd = lab.startTierd("tierd-slow-full", policy: """
            controller: {interval: 1s}
            workloads:
              - {name: batch, match: ["\(batch)"], demote: allowed}
            """, journalDirectory: fullDisk)
        _ = lab.fillDram(leaveMiB: 60)
        var room: [Int64] = []
        for _ in 0..<40 { room.append(lab.roomAboveHighWatermark(node: 1)); usleep(500_000) }
        let demotedWhileFull = tierd.metricsMoved()?.demote ?? 0
        let fullSkips = tierd.metric("tierd_skips_total", label: "reason=\"slow_nodes_full\"") ?? 0
        // Once full, neither a move nor a refused move: a try into the full node shows as either.
        let tries = { (tierd.metricsMoved()?.demote ?? 0, tierd.metric("tierd_move_failures_total") ?? 0) }
        let triesAtFull = tries()
        for _ in 0..<10 { room.append(lab.roomAboveHighWatermark(node: 1)); usleep(500_000) }
        let triesLater = tries()
        // Room appears: the bound job ends.
        lab.stop(squat.process, signal: SIGKILL)
        let resumed = lab.waitFor(seconds: 30) { (tierd.metricsMoved()?.demote ?? 0) > demotedWhileFull + (32 << 20) }
        let log = (try? String(contentsOfFile: lab.out + "/tierd-slow-full.log", encoding: .utf8)) ?? ""
        let saidOnce = log.split(separator: "\n").filter { $0.contains("cannot write") }.count
        let lowest = room.min() ?? -1
        result.figures = ["room_above_high_min_bytes": Double(lowest), "demoted_while_full_bytes": Double(demotedWhileFull),
                          "slow_nodes_full_skips": fullSkips]
        result.checks.append(Check(name: "tierd demoted into the room there was, and kept the slow node above its high watermark", ok: demotedWhileFull > 16 << 20 && lowest > 0,
                                   detail: String(format: "%.0f MiB demoted; the least room above the watermark in %d samples: %.1f MiB",
                                                  Double(demotedWhileFull) / mib, room.count, Double(lowest) / mib)))
        // kswapd frees some on the node now and then, and a boosted watermark decays: tierd takes
        // that room as it appears (within the watermark, checked above) and never tries a move
        // the node refuses.
        result.checks.append(Check(name: "then it skipped the full node with its reason, and no move into it failed", ok: fullSkips > 0 && triesLater.1 == triesAtFull.1,
                                   detail: "\(Int(fullSkips)) slow_nodes_full skips; over 5 s more, demoted bytes \(triesAtFull.0) then \(triesLater.0), failed moves \(Int(triesAtFull.1)) then \(Int(triesLater.1))"))
        result.checks.append(Check(name: "it demoted again once room appeared", ok: resumed,
                                   detail: String(format: "%.0f MiB demoted in all", Double(tierd.metricsMoved()?.demote ?? 0) / mib)))
        result.checks.append(Check(name: "nothing was killed: both jobs ran until the scenario stopped them", ok: job.process.isRunning && tierd.process.isRunning,
                                   detail: "batch job running: \(job.process.isRunning); tierd running: \(tierd.process.isRunning)"))
        result.checks.append(Check(name: "with its journal's disk full tierd kept managing memory and said so once", ok: saidOnce == 1 && resumed,
                                   detail: "\(saidOnce) 'cannot write' lines in tierd's log"))
        if !result.passed { result.diagnostics = lab.describe([batch, squatter]) + "\n" + log.split(separator: "\n").suffix(20).joined(separator: "\n") }
        return result
    }

    /// Churn beside a protected job and an opted-in one under DRAM pressure: for three minutes
    /// shells create cgroups under an opted-in slice, each with a short-lived task,
    /// and removes them. tierd must stay up with flat memory (RSS at the end within 10 % of after
    /// the first minute), never demote the protected job, and keep it in DRAM.
    static func churn(_ lab: GuestLab, seconds: Int = 180) -> ScenarioResult {
        var result = ScenarioResult(scenario: "churn", checks: [])
        let keep = "\(lab.labSlice)/keep", batch = "\(lab.labSlice)/batch", churned = "\(lab.labSlice)/churn"
        for group in [keep, batch, churned] { lab.makeGroup(group) }
        try? lab.files.write(lab.cgroupDir(churned) + "/cgroup.subtree_control", "+memory +cpuset")
        let protected = lab.load("churn-keep", group: keep, mib: 300, hotMiB: 50)
        let job = lab.load("churn-batch", group: batch, mib: 300, hotMiB: 0)
        guard lab.waitFor(seconds: 120, { protected.allocatedAt() != nil && job.allocatedAt() != nil }) else {
            result.checks.append(Check(name: "jobs allocated", ok: false, detail: lab.describe([keep, batch])))
            return result
        }
        let tierd = lab.startTierd("tierd-churn", policy: """
            controller: {interval: 1s}
            workloads:
              - {name: keep, match: ["\(keep)"], demote: never}
              - {name: batch, match: ["\(batch)", "\(churned)/**"], demote: allowed}
            """)
        _ = lab.fillDram(leaveMiB: 60)
        let dir = lab.cgroupDir(churned)
        // Three loops side by side: each makes eight groups a second, a task in each, and removes
        // them once the tasks are gone. Everything runs as the static busybox (provision.sh installs
        // busybox-static): under emulation an exec of a dynamically linked binary costs tens of
        // milliseconds, and with bash and coreutils the loops made 380 groups a minute on a good
        // day and 172 on a slow one, below the 300 the scenario needs.
        let script = """
            churn() {
              end=$(( $(busybox date +%s) + \(seconds) )); i=0; made=0
              while [ $(busybox date +%s) -lt $end ]; do
                for k in 1 2 3 4 5 6 7 8; do
                  d=\(dir)/$1$i; busybox mkdir $d && made=$((made + 1))
                  busybox sh -c "echo \\$\\$ > $d/cgroup.procs && exec busybox sleep 0.5" &
                  i=$((i + 1))
                done
                busybox sleep 1; wait
                for old in \(dir)/$1*; do busybox rmdir $old 2>/dev/null; done
              done
              echo "made $made"
            }
            churn a & churn b & churn c & wait
            """
        let churner = lab.spawn(group: nil, ["/bin/busybox", "sh", "-c", script], output: lab.out + "/churn.out")
        let started = monotonic()
        var rssAtMinute: Double?, slowKeep: [UInt64] = []
        while churner.isRunning {
            slowKeep.append(lab.numaStat(keep).bytes(on: 1))
            if rssAtMinute == nil, monotonic() - started >= 60 { rssAtMinute = lab.residentMiB(tierd.process.processIdentifier) }
            usleep(1_000_000)
        }
        let rssAtEnd = lab.residentMiB(tierd.process.processIdentifier)
        let elapsed = monotonic() - started
        let made = ((try? String(contentsOfFile: lab.out + "/churn.out", encoding: .utf8)) ?? "")
            .split(separator: "\n").filter { $0.hasPrefix("made ") }.compactMap { Int($0.dropFirst(5)) }.reduce(0, +)
        let perMinute = Double(made) / elapsed * 60
        result.figures = ["cgroups_made": Double(made), "cgroups_per_minute": perMinute, "seconds": elapsed,
                          "tierd_rss_mib_at_60s": rssAtMinute ?? .nan, "tierd_rss_mib_at_end": rssAtEnd ?? .nan]
        result.checks.append(Check(name: "at least 300 cgroups a minute came and went for three minutes", ok: perMinute >= 300 && elapsed >= Double(seconds) - 5,
                                   detail: String(format: "%d cgroups in %.0f s: %.0f a minute", made, elapsed, perMinute)))
        let flat = rssAtMinute.flatMap { first in rssAtEnd.map { $0 <= first * 1.1 } } ?? false
        result.checks.append(Check(name: "tierd stays up and its memory stays flat", ok: tierd.process.isRunning && flat,
                                   detail: String(format: "running: %@; RSS %.1f MiB after a minute, %.1f MiB at the end", tierd.process.isRunning ? "yes" : "no",
                                                  rssAtMinute ?? .nan, rssAtEnd ?? .nan)))
        let neverGrew = LabClaims.neverGrows(slowKeep)
        result.checks.append(Check(name: "the protected job is never demoted", ok: tierd.movedBytes(group: keep, direction: "demote") == 0 && neverGrew.ok,
                                   detail: neverGrew.detail))
        result.checks.append(Check(name: "the opted-in job was demoted under the pressure", ok: tierd.movedBytes(group: batch, direction: "demote") > 0,
                                   detail: String(format: "%.0f MiB demoted", Double(tierd.movedBytes(group: batch, direction: "demote")) / mib)))
        if !result.passed { result.diagnostics = lab.describe([keep, batch]) + "\ntierd journal:\n" + tierd.tail() }
        return result
    }

    /// Starts an idle task in `group` with `pid`, which has just been freed: the pid namespace's
    /// last pid is set just below it before each try (a fork elsewhere may take it first).
    static func takePid(_ pid: Int32, lab: GuestLab, group: String) -> Int32? {
        for attempt in 0..<5 {
            lab.setFile(KernelPaths.lastPid, String(pid - 1))
            let task = lab.load("faults-taker-\(attempt)", group: group, mib: 32, hotMiB: 0)
            if task.pid == pid {
                _ = lab.waitFor(seconds: 30) { task.allocatedAt() != nil }
                return pid
            }
            lab.stop(task.process, signal: SIGKILL)
        }
        return nil
    }

    /// `tierctl demote`/`promote` by hand, on the same groups: a move the cpuset rules out is refused
    /// with its reason, and a promotion of 64 MiB moves about that much, to DRAM only, audited as manual.
    static func manualMovesKeepToTheCpuset(_ lab: GuestLab, _ tierd: TierdRun, partial: String, confined: String, dramOnly: String,
                                           filler: Load?) -> [Check] {
        var checks: [Check] = []
        let dramOnlyBefore = lab.numaStat(dramOnly)
        let noSlow = tierd.tierctl(["demote", dramOnly], lab: lab, label: "cpuset-manual-demote-dram-only")
        let noDram = tierd.tierctl(["promote", confined], lab: lab, label: "cpuset-manual-promote-confined")
        let dramOnlyAfter = lab.numaStat(dramOnly)
        let slowOf = { (stat: NumaStat) in stat.bytes(on: 1) + stat.bytes(on: 2) }
        checks.append(Check(name: "tierctl demote refuses a group whose cpuset holds no slow node, and moves none of it",
                            ok: !noSlow.ok && noSlow.text.contains("refused (no_target_nodes)") && LabClaims.neverGrows([slowOf(dramOnlyBefore), slowOf(dramOnlyAfter)]).ok,
                            detail: noSlow.text.trimmingCharacters(in: .whitespacesAndNewlines)))
        checks.append(Check(name: "tierctl promote refuses a group confined to a slow node",
                            ok: !noDram.ok && noDram.text.contains("refused (no_target_nodes)") && lab.numaStat(confined).bytes(on: 0) < 1 << 20,
                            detail: noDram.text.trimmingCharacters(in: .whitespacesAndNewlines)))

        // DRAM made free, a manual promotion of part of what tierd demoted (tierd itself never promotes an opted-in job).
        filler?.process.terminate()
        filler?.process.waitUntilExit()
        let before = lab.numaStat(partial)
        let promoted = tierd.tierctl(["promote", partial, "--bytes", "64MiB"], lab: lab, label: "cpuset-manual-promote-partial")
        let after = lab.numaStat(partial)
        let gained = Int64(after.bytes(on: 0)) - Int64(before.bytes(on: 0))
        let left = Int64(before.bytes(on: 2)) - Int64(after.bytes(on: 2))
        let manualAudit = tierd.auditRecords().filter { ($0["reason"] as? String)?.hasPrefix("manual: tierctl promote") == true }
        let audited = manualAudit.reduce(0) { $0 + (($1["moved"] as? Int) ?? 0) }
        let near64: ClosedRange<Int64> = (56 << 20)...(66 << 20)
        checks.append(Check(name: "tierctl promote --bytes 64MiB moves about 64 MiB from the slow node to DRAM, audited as manual",
                            ok: promoted.ok && near64.contains(gained) && near64.contains(left) && after.bytes(on: 1) < 1 << 20
                                && near64.contains(Int64(audited)),
                            detail: String(format: "DRAM +%.1f MiB, node 2 -%.1f MiB, node 1 %.1f MiB; audit %.1f MiB in %d records; %@",
                                           Double(gained) / mib, Double(left) / mib, Double(after.bytes(on: 1)) / mib, Double(audited) / mib,
                                           manualAudit.count, promoted.text.split(separator: "\n").first.map(String.init) ?? promoted.text)))
        return checks
    }
}
