import Foundation
import TierCore
import TierLinux
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The lab's probes: investigations whose figures docs/BENCHMARKS.md and docs/DESIGN.md cite,
/// run only by `scripts/lab.sh probe --only NAME` (never by the test command). Each reports
/// figures and one "probe ran" check.
extension Scenarios {
    /// The probe named `name`, or nil when there is none.
    static func probe(_ name: String, in lab: GuestLab) -> ScenarioResult? {
        switch name {
        case "probe-moves": return probeMoves(lab)
        case "probe-split": return probeSplit(lab)
        case "probe-direct": return probeSplit(lab, rounds: 6, ways: ["migratepages", "one-thread"], name: "probe-direct")
        case "probe-syscalls": return probeSyscalls(lab)
        case "probe-thp": return probeHugePages(lab)
        case "probe-stacks": return probeStacks(lab)
        case "probe-cpus": return probeCpus(lab)
        case "probe-same-cpu": return probeSameCpu(lab)
        case "probe-parallel": return probeParallel(lab)
        case "probe-promote": return probePromote(lab)
        case "probe-cursor": return probeCursor(lab)
        case "probe-busy-thp": return probeBusyHugePages(lab)
        case "probe-cold": return probeCold(lab)
        case "probe-hot-aging": return probeHotAging(lab)
        case "probe-hot-aging-rmap": return probeHotAging(lab, settings: ["0x0005"], rounds: 6, name: "probe-hot-aging-rmap")
        case "probe-phase-change": return phaseChange(lab, mover: .kernelTiering)
        case "probe-numa-balancing-task": return numaBalancingDefault(lab, mode: .task)
        case "probe-hot-look-cost": return probeHotLookCost(lab)
        case "probe-ways":
            return probeWholeMoves(lab, rounds: 2, ways: ["migratepages", "in-process-move-all", "in-process", "in-process-after-numa-maps",
                                                          "tierd-unpinned", "tierd"], name: "probe-ways")
        default: return nil
        }
    }

    /// Not in a suite: whether a 512 MiB move's speed follows the task's huge-page backing rather
    /// than who makes the call. Each move records the task's AnonHugePages and the kernel's
    /// migration counters (run with `scripts/lab.sh probe --only probe-thp`).
    static func probeHugePages(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-thp", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let bootSetting = lab.hugePagesSetting ?? "never"
        let group = "\(lab.labSlice)/thp"
        lab.makeGroup(group)
        let counters = ["pgmigrate_success", "pgmigrate_fail", "thp_migration_success", "thp_migration_fail", "thp_migration_split",
                        "thp_split_page", "compact_stall", "thp_fault_alloc", "thp_fault_fallback"]
        func vmstat() -> [String: Int] { lab.vmstat(counters) }
        func hugeKiB(_ pid: Int32) -> Int {
            let text = (try? lab.files.read(KernelPaths.process(pid) + "/smaps_rollup")) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("AnonHugePages:") {
                return Int(line.split(separator: " ")[1]) ?? -1
            }
            return -1
        }
        var index = 0
        func move(_ label: String, thp: String, compact: Bool, by mover: String) {
            index += 1
            lab.sysctl(KernelPaths.transparentHugepages, thp)
            if compact { lab.sysctl(KernelPaths.compactMemory, "1") }
            let allocated = vmstat()
            let task = lab.load("thp-\(index)", group: group, mib: 512, hotMiB: 0, interval: 60)
            guard lab.waitFor(seconds: 120, { task.allocatedAt() != nil }) else { return }
            let huge = hugeKiB(task.pid)
            let before = vmstat(), inDram = lab.numaStat(group).bytes(on: 0)
            let started = monotonic()
            if mover == "tierd" {
                _ = lab.runTierdOnce("tierd-thp-\(index)", policy: wholeMovePolicy("thp", group: group))
            } else {
                lab.spawn(group: nil, ["migratepages", String(task.pid), "0", "1"], output: lab.out + "/thp-\(index).migratepages.out").waitUntilExit()
            }
            let seconds = monotonic() - started
            let moved = inDram - min(inDram, lab.numaStat(group).bytes(on: 0))
            let after = vmstat()
            let delta = counters.map { "\($0)=\((after[$0] ?? 0) - (before[$0] ?? 0))" }.joined(separator: " ")
            let faults = ["thp_fault_alloc", "thp_fault_fallback"].map { "\($0)=\((before[$0] ?? 0) - (allocated[$0] ?? 0))" }.joined(separator: " ")
            let key = "\(label)_\(mover)_\(index)"
            result.figures[key + "_mib_per_s"] = Double(moved) / mib / seconds
            result.figures[key + "_huge_mib"] = Double(huge) / 1024
            lab.log(String(format: "%@: %@ moved %.1f MiB in %.2f s (%.1f MiB/s); task AnonHugePages %d KiB; allocation: %@; move: %@",
                           key, mover, Double(moved) / mib, seconds, Double(moved) / mib / seconds, huge, faults, delta))
            discard(task, group: group, lab)
        }
        for _ in 1...2 {
            move("thp", thp: "always", compact: true, by: "migratepages")
            move("thp", thp: "always", compact: true, by: "tierd")
            move("base", thp: "never", compact: false, by: "tierd")
            move("base", thp: "never", compact: false, by: "migratepages")
            move("plain", thp: "always", compact: false, by: "tierd")
            move("plain", thp: "always", compact: false, by: "migratepages")
        }
        lab.sysctl(KernelPaths.transparentHugepages, bootSetting)
        return result
    }

    /// Not in a suite: whole-task moves by migratepages, by tierd, and by migratepages right after
    /// a dry-run tierd (tierd's effect on the guest without its move), with IPI counters around each.
    static func probeStacks(_ lab: GuestLab, rounds: Int = 4) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-stacks", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let group = "\(lab.labSlice)/stacks"
        lab.makeGroup(group)
        func interrupts() -> [String: Int] {
            var values: [String: Int] = [:]
            for line in ((try? lab.files.read(KernelPaths.interrupts)) ?? "").split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard let name = fields.first, ["CAL:", "TLB:", "RES:", "LOC:"].contains(String(name)) else { continue }
                values[String(name.dropLast())] = fields.dropFirst().prefix(2).compactMap { Int($0) }.reduce(0, +)
            }
            return values
        }
        for round in 1...rounds {
            for mover in ["migratepages", "tierd", "migratepages-after-tierd"] {
                let task = lab.load("stacks-\(round)-\(mover)", group: group, mib: 512, hotMiB: 0, interval: 60)
                guard lab.waitFor(seconds: 120, { task.allocatedAt() != nil }) else { continue }
                let inDram = lab.numaStat(group).bytes(on: 0)
                let policy = lab.out + "/stacks.yaml"
                try? wholeMovePolicy("stacks", group: group).write(toFile: policy, atomically: true, encoding: .utf8)
                if mover == "migratepages-after-tierd" {
                    // Everything a tierd run does to the guest except the move itself.
                    lab.spawn(group: nil, [lab.bin + "/tierd", "--once", "--dry-run", "--config", policy], output: lab.out + "/stacks-dry.log").waitUntilExit()
                }
                let before = interrupts(), started = monotonic()
                let process: Process
                if mover == "tierd" {
                    process = lab.spawn(group: nil, [lab.bin + "/tierd", "--once", "--config", policy], output: lab.out + "/stacks-tierd.log")
                } else {
                    process = lab.spawn(group: nil, ["migratepages", String(task.pid), "0", "1"], output: lab.out + "/stacks-mp.out")
                }
                process.waitUntilExit()
                let seconds = monotonic() - started
                let after = interrupts()
                let moved = inDram - min(inDram, lab.numaStat(group).bytes(on: 0))
                let ipis = ["CAL", "TLB", "RES", "LOC"].map { "\($0)=\((after[$0] ?? 0) - (before[$0] ?? 0))" }.joined(separator: " ")
                lab.log(String(format: "%@ round %d: %.1f MiB in %.2f s (%.1f MiB/s); %@", mover, round,
                               Double(moved) / mib, seconds, Double(moved) / mib / seconds, ipis))
                result.figures["\(mover)_round\(round)_mib_per_s"] = Double(moved) / mib / seconds
                discard(task, group: group, lab)
            }
        }
        return result
    }

    /// Not in a suite: whether a whole-task move's speed follows the vCPU it runs on relative to
    /// the one that allocated the task (the task is pinned to CPU 0; the mover to CPU 0 or 1).
    static func probeCpus(_ lab: GuestLab, rounds: Int = 3) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-cpus", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let group = "\(lab.labSlice)/cpus"
        lab.makeGroup(group)
        let policy = lab.out + "/cpus.yaml"
        try? wholeMovePolicy("cpus", group: group).write(toFile: policy, atomically: true, encoding: .utf8)
        for round in 1...rounds {
            for (mover, cpu) in [("migratepages", "0"), ("tierd", "0"), ("migratepages", "1"), ("tierd", "1")] {
                let task = lab.load("cpus-\(round)", group: group, mib: 512, hotMiB: 0, prefix: ["taskset", "-c", "0"], interval: 60)
                guard lab.waitFor(seconds: 120, { task.allocatedAt() != nil }) else { continue }
                let inDram = lab.numaStat(group).bytes(on: 0)
                let started = monotonic()
                let argv = mover == "tierd" ? [lab.bin + "/tierd", "--once", "--config", policy] : ["migratepages", String(task.pid), "0", "1"]
                lab.spawn(group: nil, ["taskset", "-c", cpu] + argv, output: lab.out + "/cpus-\(mover).out").waitUntilExit()
                let seconds = monotonic() - started
                let moved = inDram - min(inDram, lab.numaStat(group).bytes(on: 0))
                lab.log(String(format: "round %d: %@ on CPU %@ (task allocated on CPU 0): %.1f MiB in %.2f s (%.1f MiB/s)",
                               round, mover, cpu, Double(moved) / mib, seconds, Double(moved) / mib / seconds))
                result.figures["\(mover)_cpu\(cpu)_round\(round)_mib_per_s"] = Double(moved) / mib / seconds
                discard(task, group: group, lab)
            }
        }
        return result
    }

    /// Not in a suite: whether moving a task's pages from the vCPU the task runs on beats moving
    /// them from the other vCPU (no TLB-shootdown IPIs to the task's CPU). The task is pinned to
    /// vCPU 1 and first put on the slow node; migratepages brings it back, pinned to 1 or 0.
    static func probeSameCpu(_ lab: GuestLab, rounds: Int = 3) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-same-cpu", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let group = "\(lab.labSlice)/samecpu"
        lab.makeGroup(group)
        for hot in [256, 0] {
            let task = lab.load("samecpu-\(hot)", group: group, mib: 256, hotMiB: hot, prefix: ["taskset", "-c", "1"], interval: 30)
            guard lab.waitFor(seconds: 120, { task.allocatedAt() != nil }) else { continue }
            for round in 1...rounds {
                for cpu in round % 2 == 1 ? ["1", "0"] : ["0", "1"] {
                    lab.spawn(group: nil, ["migratepages", String(task.pid), "0", "1"], output: lab.out + "/samecpu.out").waitUntilExit()
                    let before = lab.numaStat(group).bytes(on: 1)
                    let started = monotonic()
                    lab.spawn(group: nil, ["taskset", "-c", cpu, "migratepages", String(task.pid), "1", "0"], output: lab.out + "/samecpu.out").waitUntilExit()
                    let seconds = monotonic() - started
                    let moved = before - min(before, lab.numaStat(group).bytes(on: 1))
                    let label = hot > 0 ? "hot" : "idle"
                    lab.log(String(format: "round %d: %@ task on CPU 1, mover on CPU %@: %.1f MiB in %.2f s (%.1f MiB/s)",
                                   round, label, cpu, Double(moved) / mib, seconds, Double(moved) / mib / seconds))
                    result.figures["\(label)_mover_cpu\(cpu)_round\(round)_mib_per_s"] = Double(moved) / mib / seconds
                }
            }
            lab.stop(task.process, signal: SIGKILL)
            sleep(2)
        }
        lab.removeGroups(group)
        return result
    }

    /// Not in a suite: what the per-task scan cursor saves. An idle 512 MiB task is demoted in
    /// eight 64 MiB moves of part of it, as eight ticks would, by one migrator (whose cursor
    /// resumes each move where the last stopped) or by a fresh one per move (each scan starts
    /// at the lowest address again); the two alternate, migratepages bringing the task back.
    static func probeCursor(_ lab: GuestLab, rounds: Int = 3) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-cursor", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        lab.withPinnedIdleTask("cursor") { task, group in
            func migrator() -> TaskMigrator { TaskMigrator(collector: lab.collector, syscalls: LibnumaSyscalls(), dryRun: false, selfPid: getpid()) }
            for round in 1...rounds {
                for mode in round % 2 == 1 ? ["cursor", "fresh"] : ["fresh", "cursor"] {
                    _ = lab.migratepages(task.pid, from: 1, to: 0, group: group, pinned: true)
                    let shared = migrator()
                    var moved: UInt64 = 0
                    let started = monotonic()
                    for _ in 0..<8 {
                        let outcome = (mode == "cursor" ? shared : migrator()).execute(MigrationAction(
                            group: CgroupPath(group), workload: "probe", direction: .demote, pids: [task.pid],
                            from: NodeSet([0]), to: [1], bytes: 64 << 20, mempolicy: .respect, reason: "probe"))
                        moved += outcome.movedBytes
                    }
                    let seconds = monotonic() - started
                    // What the kernel says is left in DRAM, beside what the moves reported.
                    let left = Double(lab.numaStat(group).bytes(on: 0)) / mib
                    lab.log(String(format: "round %d: %@ scans: %.1f MiB in 8 moves, %.2f s (%.1f MiB/s); %.1f MiB of the group left on node 0",
                                   round, mode, Double(moved) / mib, seconds, Double(moved) / mib / seconds, left))
                    result.figures["\(mode)_round\(round)_left_in_dram_mib"] = left
                    result.figures["\(mode)_round\(round)_mib_per_s"] = Double(moved) / mib / seconds
                }
            }
        }
        return result
    }

    /// Not in a suite: how fast a busy job's pages leave DRAM in 64 MiB partial demotions (the
    /// watermark's batches) when they are huge pages and when they are base pages. The job keeps
    /// 50 MiB hot, as the headline's batch job does, beside a second job writing 64 MiB on the
    /// other vCPU; THP `always` and `never` alternate.
    static func probeBusyHugePages(_ lab: GuestLab, rounds: Int = 2) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-busy-thp", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let bootSetting = lab.hugePagesSetting ?? "never"
        lab.kernelTiering(demotion: false, numaBalancing: 0)
        let group = "\(lab.labSlice)/busy", other = "\(lab.labSlice)/other"
        lab.makeGroup(group)
        lab.makeGroup(other)
        let companion = lab.load("busy-other", group: other, mib: 64, hotMiB: 64, interval: 30)
        defer { lab.stop(companion.process, signal: SIGKILL); lab.removeGroups(group); lab.removeGroups(other) }
        for round in 1...rounds {
            for mode in round % 2 == 1 ? ["always", "heads", "never"] : ["never", "heads", "always"] {
                let thp = mode == "never" ? "never" : "always"
                lab.sysctl(KernelPaths.transparentHugepages, thp)
                let task = lab.load("busy-\(mode)-\(round)", group: group, mib: 512, hotMiB: 50, interval: 30)
                guard lab.waitFor(seconds: 120, { task.allocatedAt() != nil }) else { continue }
                sleep(1)
                let migrator = TaskMigrator(collector: lab.collector, syscalls: LibnumaSyscalls(), dryRun: false, selfPid: getpid())
                var rates: [String] = []
                // One address per 2 MiB-aligned block of the task's big mapping: a huge page listed once.
                let entries = KernelText.numaMaps((try? lab.files.read(KernelPaths.process(task.pid) + "/numa_maps")) ?? "")
                let big = KernelText.mapRanges((try? lab.files.read(KernelPaths.process(task.pid) + "/maps")) ?? "")
                    .filter { range in entries.contains { $0.start == range.lowerBound && $0.bytes(on: NodeSet([0])) > 256 << 20 } }
                var heads = big.flatMap { range in
                    stride(from: (range.lowerBound + (2 << 20) - 1) & ~UInt64((2 << 20) - 1), to: range.upperBound, by: 2 << 20).map { $0 }
                }
                for move in 1...4 where mode == "heads" {
                    let batch = Array(heads.prefix(32))
                    heads.removeFirst(min(32, heads.count))
                    guard let cpu = KernelText.lastCPU(stat: (try? lab.files.read(KernelPaths.process(task.pid) + "/stat")) ?? "") else { break }
                    let inDram = lab.numaStat(group).bytes(on: 0)
                    let before = lab.vmstat(["thp_migration_success", "pgmigrate_success"])
                    let started = monotonic()
                    _ = ThreadPlacement.onCPU(cpu) { ThreadPriority.withNice(-10) { LibnumaSyscalls().movePages(pid: task.pid, addresses: batch, to: 1) } }
                    let seconds = monotonic() - started
                    let moved = inDram - min(inDram, lab.numaStat(group).bytes(on: 0))
                    let rate = Double(moved) / mib / seconds
                    result.figures["heads_round\(round)_move\(move)_mib_per_s"] = rate
                    rates.append(String(format: "%.1f MiB in %.2f s (%.1f MiB/s; %@)", Double(moved) / mib, seconds, rate,
                                        lab.vmstatDelta(["thp_migration_success", "pgmigrate_success"], since: before)))
                }
                for move in 1...4 where mode != "heads" {
                    var action = MigrationAction(group: CgroupPath(group), workload: "probe", direction: .demote, pids: [task.pid],
                                                 from: NodeSet([0]), to: [1], bytes: 64 << 20, mempolicy: .respect, reason: "probe")
                    action.onTaskCPU = true
                    let before = lab.vmstat(["thp_migration_success", "pgmigrate_success"])
                    let started = monotonic()
                    let outcome = ThreadPriority.withNice(-10) { migrator.execute(action) }.result
                    let seconds = monotonic() - started
                    let rate = Double(outcome.movedBytes) / mib / seconds
                    result.figures["\(mode)_round\(round)_move\(move)_mib_per_s"] = rate
                    rates.append(String(format: "%.1f MiB in %.2f s (%.1f MiB/s; %@)", Double(outcome.movedBytes) / mib, seconds, rate,
                                        lab.vmstatDelta(["thp_migration_success", "pgmigrate_success"], since: before)))
                }
                lab.log("probe-busy-thp round \(round) \(mode): " + rates.joined(separator: "; "))
                lab.stop(task.process, signal: SIGKILL)
                _ = lab.waitFor(seconds: 10) { lab.numaStat(group).bytes(on: 0) + lab.numaStat(group).bytes(on: 1) < 8 << 20 }
            }
        }
        lab.sysctl(KernelPaths.transparentHugepages, bootSetting)
        return result
    }

    /// Not in a suite: what makes one whole-task demotion slower than another when no spell hits.
    /// An idle 512 MiB task pinned to vCPU 0, brought back by migratepages before every timed
    /// move, then moved by: migratepages at once; `tierd --once` (the action's time); migratepages
    /// right after a dry-run `tierd --once` (tierd's effect on the guest without its move);
    /// `tierd --once` not pinned by taskset (its moving thread still moves from the task's CPU);
    /// migrate_pages(2) from this process with `CAP_SYS_NICE` lowered and at nice -10, as tierd
    /// calls it; and the same with `CAP_SYS_NICE` kept (the kernel then moves shared pages too,
    /// as for migratepages); `probe-maps-first` adds the call made right after reading the task's
    /// numa_maps from the same thread, as tierd's checks do. The ways rotate round by round; each
    /// move's CPU time by CPU and the busiest other processes are logged. Figures only.
    static func probeWholeMoves(_ lab: GuestLab, rounds: Int = 6,
                                ways: [String] = ["migratepages", "tierd", "tierd-unpinned", "migratepages-after-dry-tierd", "in-process", "in-process-move-all"],
                                name: String = "probe-whole") -> ScenarioResult {
        var result = ScenarioResult(scenario: name, checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        lab.withPinnedIdleTask("whole") { task, group in
            let policy = lab.out + "/whole.yaml"
            try? wholeMovePolicy("whole", group: group).write(toFile: policy, atomically: true, encoding: .utf8)
            // As tierd does right before its call with `readingMapsFirst`: the task's numa_maps, read from the moving thread.
            func inProcess(_ shared: SharedPages, readingMapsFirst: Bool = false) -> Double? {
                timedBareCall(lab, task: task, group: group, shared: shared, readingMapsFirst: readingMapsFirst)?.seconds
            }
            var seconds: [String: [Double]] = [:]
            for round in 1...rounds {
                let order = Array(ways[(round - 1) % ways.count..<ways.count] + ways[0..<(round - 1) % ways.count])
                for way in order {
                    _ = lab.migratepages(task.pid, from: 1, to: 0, group: group, pinned: true)
                    if way == "migratepages-after-dry-tierd" {
                        // Everything a tierd run does to the guest except the move itself.
                        lab.spawn(group: nil, GuestLab.pinned + [lab.bin + "/tierd", "--once", "--dry-run", "--config", policy],
                                  output: lab.out + "/whole-dry.log").waitUntilExit()
                    }
                    let activity = lab.cpuTimes()
                    var took: Double?, mover = ""
                    switch way {
                    case "migratepages", "migratepages-after-dry-tierd":
                        took = lab.migratepages(task.pid, from: 0, to: 1, group: group, pinned: true)?.seconds
                    case "in-process": took = inProcess(.leave)
                    case "in-process-move-all": took = inProcess(.include)
                    case "in-process-after-numa-maps": took = inProcess(.leave, readingMapsFirst: true)
                    default:
                        // Unpinned, tierd's moving thread still moves from the task's CPU; its other threads run anywhere.
                        let tierd = lab.runTierdOnce("\(way)-whole-\(round)", policy: wholeMovePolicy("whole", group: group),
                                                     cpu: way == "tierd" ? GuestLab.measuringCPU : nil)
                        let action = tierd.events("action").first
                        took = action?["seconds"] as? Double
                        mover = String(format: " (moving thread: %.2f s of CPU, %d involuntary switches)",
                                       (action?["cpu_seconds"] as? Double) ?? .nan, (action?["involuntary_switches"] as? Int) ?? -1)
                    }
                    lab.log(String(format: "%@ round %d: %@ %.2f s%@; %@", name, round, way, took ?? .nan, mover, lab.cpuActivity(since: activity)))
                    guard let took else { continue }
                    seconds[way, default: []].append(took)
                    result.figures["\(way)_round\(round)_seconds"] = took
                }
            }
            lab.log("\(name): seconds per way (a 512 MiB move each): " + ways.map { way in
                "\(way) " + (seconds[way] ?? []).map { String(format: "%.2f", $0) }.joined(separator: " ")
                    + String(format: " (median %.2f)", median(seconds[way] ?? []))
            }.joined(separator: "; "))
        }
        return result
    }

    /// Not in a suite: whether one task's pages move faster from both vCPUs at once. An idle
    /// 512 MiB task pinned to vCPU 0 is demoted (a) by migratepages from vCPU 0, (b) by one
    /// thread calling move_pages(2) over all its anonymous pages from vCPU 0, (c) by two such
    /// threads, one per vCPU, each over half; the ways rotate round by round, migratepages
    /// bringing the task back (untimed) before each. Figures only.
    /// `probe-direct` compares only (a) and (b), over more rounds.
    static func probeSplit(_ lab: GuestLab, rounds: Int = 3, ways: [String] = ["migratepages", "one-thread", "two-threads"],
                           name: String = "probe-split") -> ScenarioResult {
        var result = ScenarioResult(scenario: name, checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        lab.withPinnedIdleTask("split") { task, group in
            // The pages of the mappings numa_maps shows anonymous pages of the task in.
            let entries = KernelText.numaMaps((try? lab.files.read(KernelPaths.process(task.pid) + "/numa_maps")) ?? "")
            let starts = Set(entries.filter { $0.file == nil && $0.bytes(on: NodeSet([0, 1])) > 1 << 20 }.map(\.start))
            let ranges = KernelText.mapRanges((try? lab.files.read(KernelPaths.process(task.pid) + "/maps")) ?? "")
                .filter { starts.contains($0.lowerBound) }
            let pages = ranges.flatMap { stride(from: $0.lowerBound, to: $0.upperBound, by: 4096).map { $0 } }
            lab.log("probe-split: \(pages.count) pages in \(ranges.count) mappings")
            let pid = task.pid
            @Sendable func movePages(_ addresses: ArraySlice<UInt64>, cpu: Int) {
                _ = ThreadPlacement.onCPU(cpu) {
                    ThreadPriority.withNice(-10) {
                        let syscalls = LibnumaSyscalls()
                        var index = addresses.startIndex
                        while index < addresses.endIndex {
                            let end = min(index + 16384, addresses.endIndex)
                            _ = syscalls.movePages(pid: pid, addresses: Array(addresses[index..<end]), to: 1)
                            index = end
                        }
                    }
                }
            }
            for round in 1...rounds {
                for offset in 0..<ways.count {
                    let way = ways[(round + offset) % ways.count]
                    _ = lab.migratepages(task.pid, from: 1, to: 0, group: group, pinned: true)
                    let before = lab.numaStat(group).bytes(on: 0)
                    let started = monotonic()
                    switch way {
                    case "migratepages": _ = lab.migratepages(task.pid, from: 0, to: 1, group: group, pinned: true)
                    case "one-thread": movePages(pages[...], cpu: 0)
                    default:
                        let half = pages.count / 2
                        let done = DispatchSemaphore(value: 0)
                        Thread { movePages(pages[half...], cpu: 1); done.signal() }.start()
                        movePages(pages[..<half], cpu: 0)
                        done.wait()
                    }
                    let seconds = monotonic() - started
                    let moved = before - min(before, lab.numaStat(group).bytes(on: 0))
                    lab.log(String(format: "round %d: %@ %.1f MiB in %.2f s (%.1f MiB/s)", round, way, Double(moved) / mib, seconds, Double(moved) / mib / seconds))
                    result.figures["\(way)_round\(round)_mib_per_s"] = Double(moved) / mib / seconds
                }
            }
        }
        return result
    }

    /// Not in a suite: whether a demotion and a promotion run side by side (one mover per vCPU)
    /// finish sooner than one after the other. An idle 256 MiB task is demoted while a hot 200 MiB
    /// task is promoted, both movers at nice -10 as tierd's are; serial and parallel alternate.
    static func probeParallel(_ lab: GuestLab, rounds: Int = 3) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-parallel", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let group = "\(lab.labSlice)/parallel"
        lab.makeGroup(group)
        let idle = lab.load("parallel-idle", group: group, mib: 256, hotMiB: 0, prefix: ["taskset", "-c", "0"], interval: 30)
        let hot = lab.load("parallel-hot", group: group, mib: 200, hotMiB: 200, prefix: ["taskset", "-c", "1"], interval: 30)
        defer { lab.stop(idle.process, signal: SIGKILL); lab.stop(hot.process, signal: SIGKILL); lab.removeGroups(group) }
        guard lab.waitFor(seconds: 120, { idle.allocatedAt() != nil && hot.allocatedAt() != nil }) else { return result }
        func mover(_ pid: Int32, _ from: Int, _ to: Int, cpu: Int) -> Process {
            lab.spawn(group: nil, ["taskset", "-c", String(cpu), "nice", "-n", "-10", "migratepages", String(pid), String(from), String(to)],
                      output: lab.out + "/parallel.out")
        }
        for round in 1...rounds {
            for way in round % 2 == 1 ? ["serial", "parallel"] : ["parallel", "serial"] {
                // Start: the idle task in DRAM, the hot one on the slow node.
                mover(idle.pid, 1, 0, cpu: 0).waitUntilExit()
                mover(hot.pid, 0, 1, cpu: 1).waitUntilExit()
                let started = monotonic()
                if way == "serial" {
                    mover(idle.pid, 0, 1, cpu: 0).waitUntilExit()
                    mover(hot.pid, 1, 0, cpu: 1).waitUntilExit()
                } else {
                    let a = mover(idle.pid, 0, 1, cpu: 0), b = mover(hot.pid, 1, 0, cpu: 1)
                    a.waitUntilExit(); b.waitUntilExit()
                }
                let seconds = monotonic() - started
                let stat = lab.numaStat(group)
                lab.log(String(format: "round %d: %@ demote idle + promote hot: %.2f s (group now %.0f MiB on node 0, %.0f on node 1)",
                               round, way, seconds, Double(stat.bytes(on: 0)) / mib, Double(stat.bytes(on: 1)) / mib))
                result.figures["\(way)_round\(round)_seconds"] = seconds
            }
        }
        return result
    }

    /// Not in a suite: how fast a task writing every page comes back from the slow node, by
    /// migratepages and by tierd's paced path (move_pages in 2,048-page batches, as a promotion
    /// beside a demotion runs), each from the task's vCPU (1) and from the other (0), at nice -10.
    static func probePromote(_ lab: GuestLab, rounds: Int = 2) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-promote", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let group = "\(lab.labSlice)/promote"
        lab.makeGroup(group)
        let hot = lab.load("promote-hot", group: group, mib: 200, hotMiB: 200, prefix: ["taskset", "-c", "1"], interval: 30)
        defer { lab.stop(hot.process, signal: SIGKILL); lab.removeGroups(group) }
        guard lab.waitFor(seconds: 120, { hot.allocatedAt() != nil }) else { return result }
        let migrator = TaskMigrator(collector: lab.collector, syscalls: LibnumaSyscalls(), dryRun: false, selfPid: getpid())
        var ways = [("migratepages", 1), ("paced", 1), ("migratepages", 0), ("paced", 0)]
        for round in 1...rounds {
            for (way, cpu) in ways {
                _ = lab.migratepages(hot.pid, from: 0, to: 1, group: group, pinned: false)
                let before = lab.numaStat(group).bytes(on: 1)
                let started = monotonic()
                if way == "migratepages" {
                    lab.spawn(group: nil, ["taskset", "-c", String(cpu), "nice", "-n", "-10", "migratepages", String(hot.pid), "1", "0"],
                              output: lab.out + "/promote.out").waitUntilExit()
                } else {
                    var action = MigrationAction(group: CgroupPath(group), workload: "probe", direction: .promote, pids: [hot.pid],
                                                 from: NodeSet([1]), to: [0], bytes: before, mempolicy: .respect, reason: "probe")
                    action.step = .promoteIntoRoomMade(keepFree: 32 << 20)
                    let pacer = RoomPacer()
                    pacer.finish()
                    _ = ThreadPlacement.onCPU(cpu) { ThreadPriority.withNice(-10) { migrator.execute(action, pacer: pacer) } }
                }
                let seconds = monotonic() - started
                let moved = before - min(before, lab.numaStat(group).bytes(on: 1))
                lab.log(String(format: "round %d: %@ from CPU %d (task on CPU 1, writing every page): %.1f MiB in %.2f s (%.1f MiB/s)",
                               round, way, cpu, Double(moved) / mib, seconds, Double(moved) / mib / seconds))
                result.figures["\(way)_cpu\(cpu)_round\(round)_mib_per_s"] = Double(moved) / mib / seconds
            }
            ways.reverse()
        }
        return result
    }

    /// Not in a suite: compares ways of moving part of a task (run with --only probe-moves).
    static func probeMoves(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-moves", checks: [Check(name: "probe ran", ok: true, detail: "figures only")])
        let group = "\(lab.labSlice)/probe"
        lab.makeGroup(group)
        func measure(_ label: String, _ body: (Load) -> Void) {
            let task = lab.load("probe-\(label)", group: group, mib: 256, hotMiB: 0, interval: 60)
            guard lab.waitFor(seconds: 60, { task.allocatedAt() != nil }) else { return }
            let before = lab.numaStat(group).bytes(on: 0)
            let started = monotonic()
            body(task)
            let seconds = monotonic() - started
            let moved = before - min(before, lab.numaStat(group).bytes(on: 0))
            result.figures["\(label)_mib_per_s"] = Double(moved) / mib / seconds
            lab.log(String(format: "probe %@: %.1f MiB in %.2f s", label, Double(moved) / mib, seconds))
            lab.stop(task.process, signal: SIGKILL)
            sleep(1)
        }
        func chunked(_ chunk: Int) -> (Load) -> Void {
            { task in
                var migrator = TaskMigrator(collector: lab.collector, syscalls: LibnumaSyscalls(), dryRun: false, selfPid: getpid())
                migrator.chunkPages = chunk
                _ = migrator.execute(MigrationAction(group: CgroupPath(group), workload: "probe", direction: .demote, pids: [task.pid],
                                                     from: NodeSet([0]), to: [1], bytes: 230 << 20, mempolicy: .respect, reason: "probe"))
            }
        }
        let migratepages: (Load) -> Void = { task in
            lab.spawn(group: nil, ["migratepages", String(task.pid), "0", "1"], output: lab.out + "/probe.out").waitUntilExit()
        }
        let direct: (Load) -> Void = { task in
            let ranges = KernelText.mapRanges((try? lab.files.read(KernelPaths.process(task.pid) + "/maps")) ?? "")
            let syscalls = LibnumaSyscalls()
            for range in ranges where range.count >= 64 << 20 {
                var address = range.lowerBound
                while address < range.upperBound {
                    let count = min(UInt64(65536), (range.upperBound - address) / 4096)
                    _ = syscalls.movePages(pid: task.pid, addresses: (0..<count).map { address + $0 * 4096 }, to: 1)
                    address += count * 4096
                }
            }
        }
        // tierd's whole-task demotion: TaskMigrator, through migrate_pages(2) with CAP_SYS_NICE lowered.
        let viaMigrator: (Load) -> Void = { task in
            let migrator = TaskMigrator(collector: lab.collector, syscalls: LibnumaSyscalls(), dryRun: false, selfPid: getpid())
            let source = lab.numaStat(group).bytes(on: 0)
            let outcome = migrator.execute(MigrationAction(group: CgroupPath(group), workload: "probe", direction: .demote, pids: [task.pid],
                                                           from: NodeSet([0]), to: [1], bytes: source, mempolicy: .respect, reason: "probe"))
            lab.log("probe outcome: \(outcome.tasks.map { "\($0.result)" }) in \(outcome.syscallDuration)")
        }
        // migrate_pages(2) through libnuma from this (Swift) process, as migratepages(8) calls it.
        let swiftMigratePages: (Load) -> Void = { task in
            _ = LibnumaSyscalls().migratePages(pid: task.pid, from: NodeSet([0]), to: NodeSet([1]), sharedPages: .include)
        }
        for round in 1...2 {
            measure("r\(round)_migratepages", migratepages)
            measure("r\(round)_swift_migrate_pages", swiftMigratePages)
            measure("r\(round)_tierd_demotion", viaMigrator)
            measure("r\(round)_chunk64k", chunked(65536))
            measure("r\(round)_direct", direct)
        }
        return result
    }

    /// What tierd and tierctl call in a pod's life (the headline under `strace -f`, the probe,
    /// a reload, a manual move): the system call names, each with its count, into
    /// `tierd-syscalls.txt`, and the profile that allows them into `tierd-seccomp.json`.
    static func probeSyscalls(_ lab: GuestLab) -> ScenarioResult {
        var result = lateProtected(lab, mode: .tierd, launch: .podTraced)
        result.scenario = "probe-syscalls"
        let traces = ((try? FileManager.default.contentsOfDirectory(atPath: lab.out)) ?? []).filter { $0.hasSuffix(".strace") }
        let complete = lab.waitFor(seconds: 30) {
            traces.allSatisfy { ((try? String(contentsOfFile: lab.out + "/" + $0, encoding: .utf8)) ?? "").hasSuffix("+++\n") }
        }
        result.checks.append(Check(name: "every trace ran to its command's exit", ok: complete, detail: traces.joined(separator: ", ")))
        var counts: [String: Int] = [:]
        for trace in traces {
            let text = (try? String(contentsOfFile: lab.out + "/" + trace, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                guard let name = SeccompProfile.syscallName(inTraceLine: line) else { continue }
                counts[name, default: 0] += 1
            }
        }
        let listing = counts.keys.sorted().map { "\($0) \(counts[$0]!)" }.joined(separator: "\n") + "\n"
        try? listing.write(toFile: lab.out + "/tierd-syscalls.txt", atomically: true, encoding: .utf8)
        try? SeccompProfile.document(allowing: Set(counts.keys)).write(toFile: lab.out + "/tierd-seccomp.json", atomically: true, encoding: .utf8)
        result.figures["syscalls_traced"] = Double(counts.count)
        result.figures["trace_files"] = Double(traces.count)
        result.checks.append(Check(name: "system calls traced", ok: counts["move_pages"] != nil || counts["migrate_pages"] != nil,
                                   detail: "\(counts.count) distinct calls in \(traces.count) traces"))
        return result
    }
}
