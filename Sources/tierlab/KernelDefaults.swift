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
