import Foundation
import TierCore
import TierLinux
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

extension Scenarios {
    /// Issue 14, item 4: the kernel's default NUMA balancing (`kernel.numa_balancing=1`, as a
    /// booted Debian kernel has it on a NUMA machine) left on, with tierd's default settings
    /// (`numa_balancing: leave`, `cold` demotion). NUMA balancing pulls the pages a task touches
    /// toward its CPUs' node, so demoting pages the job still uses would have them pulled back and
    /// demoted again: in the lab, `task` mode moved 3.0 GiB for a 1.44 GiB demotion that way.
    /// Here a 700 MiB opted-in job (50 MiB hot) is demoted by `cold` until 40 % of DRAM is free and
    /// watched 45 s more. Every page the kernel migrated in that time (`pgmigrate_success`:
    /// tierd's moves, the kernel's demotions and NUMA balancing's pulls alike) must come to at
    /// most 1.2× what tierd moved; the job's hot set stays ≥ 95 % in DRAM at every report.
    /// `probe-numa-balancing-task` runs the same with `demotion_mode: task`, which demotes in
    /// address order, the hot set with the rest: what the checks would catch.
    static func numaBalancingDefault(_ lab: GuestLab, mode: DemotionMode = .cold) -> ScenarioResult {
        var result = ScenarioResult(scenario: mode == .cold ? "numa-balancing-default" : "probe-numa-balancing-task", checks: [])
        let batch = "\(lab.labSlice)/batch"
        lab.makeGroup(batch)
        lab.kernelTiering(demotion: true, numaBalancing: 1)
        let counters = ["pgmigrate_success", "numa_pages_migrated", "pgpromote_success", "pgdemote_kswapd", "pgdemote_direct", "pgdemote_proactive"]
        let before = lab.vmstat(counters)
        let tierd = lab.startTierd("tierd-numa-default", policy: """
            controller: {interval: 1s, dram: {low: 30%, high: 40%}, lru_gen_batch_clearing: off}
            workloads:
              - {name: batch, match: ["\(batch)"], demote: allowed, demotion_mode: \(mode.rawValue)}
            """)
        let job = lab.load("numa-default-batch", group: batch, mib: 700, hotMiB: 50, interval: 1, hotWhileAllocating: true)
        var modes: Set<String> = []
        let settled = lab.waitFor(seconds: 180, every: 0.5) {
            if let mode = lab.fileValue(KernelPaths.numaBalancing) { modes.insert(mode) }
            return job.allocatedAt() != nil && Double(lab.dramFreeBytes()) >= 0.38 * Double(lab.dramTotalBytes())
        }
        let watchUntil = monotonic() + 45
        while monotonic() < watchUntil {
            if let mode = lab.fileValue(KernelPaths.numaBalancing) { modes.insert(mode) }
            usleep(500_000)
        }
        let after = lab.vmstat(counters)
        lab.stop(tierd.process)
        func delta(_ name: String) -> UInt64 { UInt64(max(0, (after[name] ?? 0) - (before[name] ?? 0))) * 4096 }
        let migrated = delta("pgmigrate_success")
        let demoted = tierd.movedBytes(group: batch, direction: "demote"), promoted = tierd.movedBytes(group: batch, direction: "promote")
        let moved = demoted + promoted
        let ratio = moved > 0 ? Double(migrated) / Double(moved) : .infinity
        let allocated = job.allocatedAt() ?? .infinity
        let hot = LabClaims.holdsThroughout(job.samples().filter { $0.t >= allocated }
            .map { LabClaims.Sample(seconds: $0.t - allocated, share: $0.hotShare) }, threshold: 0.95)
        result.figures = ["migrated_bytes": Double(migrated), "tierd_demoted_bytes": Double(demoted), "tierd_promoted_bytes": Double(promoted),
                          "numa_balancing_migrated_bytes": Double(delta("numa_pages_migrated")),
                          "kswapd_demoted_bytes": Double(delta("pgdemote_kswapd")),
                          "migrated_per_tierd_moved": ratio]
        result.checks.append(Check(name: "kernel.numa_balancing stayed at the kernel's default 1 throughout", ok: modes == ["1"],
                                   detail: "read \(modes.sorted())"))
        result.checks.append(Check(name: "tierd demoted the job by \(mode.rawValue) to 38 % of DRAM free (at least 100 MiB)", ok: settled && demoted >= 100 << 20,
                                   detail: String(format: "%.0f MiB demoted, %.0f MiB promoted", Double(demoted) / mib, Double(promoted) / mib)))
        result.checks.append(Check(name: "pages migrated in all ≤ 1.2× what tierd moved (no ping-pong with NUMA balancing)", ok: moved > 0 && ratio <= 1.2,
                                   detail: String(format: "%.0f MiB migrated (NUMA balancing %.0f MiB) for %.0f MiB tierd moved: %.3f×",
                                                  Double(migrated) / mib, Double(delta("numa_pages_migrated")) / mib, Double(moved) / mib, ratio)))
        result.checks.append(Check(name: "the job's hot set ≥ 95 % in DRAM at every report", ok: hot.ok, detail: hot.detail))
        if !result.passed { result.diagnostics = lab.describe([batch]) + "\nvmstat: " + lab.vmstatDelta(counters, since: before) + "\ntierd journal:\n" + tierd.tail() }
        return result
    }
}

extension Scenarios {
    /// What looking for written hot pages costs tierd (`scripts/lab.sh probe --only
    /// probe-hot-look-cost`): an idle 512 MiB opted-in job moved whole to the slow node, so that
    /// every tick with `hot_pages: written` reads its pagemap and clears its bits, and finds
    /// nothing written. tierd's CPU time over 30 s of 1 s ticks with the looks and, in the same
    /// boot, without them (`hot_pages: off`): the ratio is the figure (the emulator inflates both).
    static func probeHotLookCost(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-hot-look-cost", checks: [])
        lab.kernelTiering(demotion: false, numaBalancing: 0)
        let batch = "\(lab.labSlice)/batch"
        lab.makeGroup(batch)
        let job = lab.load("look-batch", group: batch, mib: 512, hotMiB: 0, interval: GuestLab.quietInterval)
        guard lab.waitFor(seconds: 120, { job.allocatedAt() != nil }),
              let (moved, _) = lab.migratepages(job.pid, from: 0, to: 1, group: batch, pinned: false), moved >= 400 << 20 else {
            result.checks.append(Check(name: "the idle job sits on the slow node", ok: false, detail: "it did not allocate, or migratepages moved under 400 MiB"))
            return result
        }
        func cpuSeconds(_ pid: Int32) -> (user: Double, system: Double)? {
            guard let ticks = lab.processTicks(pid) else { return nil }
            let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
            return (Double(ticks.user) / tick, Double(ticks.system) / tick)
        }
        var shares: [String: Double] = [:]
        for finder in ["written", "off"] {
            let tierd = lab.startTierd("tierd-look-\(finder)", policy: """
                controller: {interval: 1s, hot_pages: \(finder)}
                workloads:
                  - {name: batch, match: ["\(batch)"], demote: allowed}
                """)
            sleep(5)
            let pid = tierd.process.processIdentifier
            let before = cpuSeconds(pid), started = monotonic()
            sleep(30)
            let after = cpuSeconds(pid), elapsed = monotonic() - started
            let slow = lab.numaStat(batch).bytes(on: 1)
            let movedByTierd = tierd.movedBytes(group: batch, direction: "promote") + tierd.movedBytes(group: batch, direction: "demote")
            lab.stop(tierd.process)
            guard let before, let after else {
                result.checks.append(Check(name: "tierd's CPU time read (\(finder))", ok: false, detail: "its /proc stat could not be read"))
                continue
            }
            let user = after.user - before.user, system = after.system - before.system
            shares[finder] = (user + system) / elapsed
            result.figures["cpu_share_hot_pages_\(finder)"] = (user + system) / elapsed
            result.figures["cpu_user_share_hot_pages_\(finder)"] = user / elapsed
            result.checks.append(Check(name: "hot_pages \(finder): the job stayed on the slow node and tierd moved nothing", ok: slow >= 400 << 20 && movedByTierd == 0,
                                       detail: String(format: "%.0f MiB on node 1 at the end, %.1f MiB moved; tierd used %.3f s of CPU in %.1f s",
                                                      Double(slow) / mib, Double(movedByTierd) / mib, user + system, elapsed)))
        }
        if let looking = shares["written"], let quiet = shares["off"], quiet > 0 {
            result.figures["cpu_ratio_written_to_off"] = looking / quiet
        }
        result.figures["slow_bytes_looked_at"] = Double(lab.numaStat(batch).bytes(on: 1))
        return result
    }
}
