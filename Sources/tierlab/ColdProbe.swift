import Foundation
import TierCore
import TierLinux

#if canImport(Glibc)
import Glibc
#endif

/// Which way of finding a group's cold pages `cold` demotion should take, measured on the kernel
/// the guest boots (`scripts/lab.sh probe --only probe-cold --kernels both`): the kernel's LRU
/// through cgroup `memory.reclaim` with demotion on, or tierd's own access tracking through the
/// idle page bitmap and `move_pages(2)` (where the kernel has it: Debian's 6.12 and 7.3 do not).
/// Each way demotes 380 MiB of a 900 MiB job whose first 50 MiB are hot; figures: seconds, bytes
/// that left DRAM, pages stolen but not demoted (discarded or swapped), and the hot set's share
/// still in DRAM after; then 64 MiB more with each anon-only argument the kernel may take.
extension Scenarios {
    static func probeCold(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "probe-cold", checks: [])
        let lruGen = lab.fileValue(KernelPaths.lruGenEnabled) ?? "absent"
        result.diagnostics += "lru_gen/enabled: \(lruGen); page_idle bitmap: \(lab.files.exists(KernelPaths.pageIdleBitmap) ? "present" : "absent")\n"
        let want: UInt64 = 380 << 20
        lab.kernelTiering(demotion: false, numaBalancing: 0)
        if let rate = lab.calibrateMigratepages(mib: 380)?.mibPerSecond { result.figures["migratepages_mib_per_s"] = rate }

        // 1. The kernel's LRU: memory.reclaim with demotion on.
        lab.kernelTiering(demotion: true, numaBalancing: 0)
        if let (job, group) = coldProbeJob(lab, name: "reclaim") {
            let stat = { lab.files.coldReclaimCounters(groupDirectory: lab.cgroupDir(group)) ?? ColdReclaim.Counters(stat: MemoryStat(), swapBytes: nil) }
            let before = stat(), dramBefore = lab.numaStat(group).bytes(on: 0)
            let rawBefore = coldProbeCounters(lab, group)
            let started = monotonic()
            var written = true
            do { try lab.files.write(lab.cgroupDir(group) + "/memory.reclaim", String(want)) } catch {
                written = false
                result.diagnostics += "memory.reclaim: \(error)\n"
            }
            let seconds = monotonic() - started
            let after = stat()
            result.diagnostics += "what the request changed (memory.stat, memory.numa_stat per node): "
                + coldProbeChanges(from: rawBefore, to: coldProbeCounters(lab, group)) + "\n"
            // Captured for the parser's fixtures: this kernel's memory.stat after a demoting reclaim.
            if let text = try? lab.files.read(lab.cgroupDir(group) + "/memory.stat") {
                try? text.write(toFile: lab.out + "/memory.stat-after-reclaim", atomically: true, encoding: .utf8)
            }
            let left = dramBefore - min(dramBefore, lab.numaStat(group).bytes(on: 0))
            result.figures["reclaim_seconds"] = seconds
            result.figures["reclaim_left_dram_bytes"] = Double(left)
            result.figures["reclaim_mib_per_s"] = Double(left) / 1048576 / max(seconds, 1e-6)
            let step = ColdReclaim.step(before: before, after: after)
            let notDemoted = step.lostPages + step.slowTierDroppedPages
            let demoted = step.demotedPages, stolen = step.demotedPages + notDemoted
            result.figures["reclaim_demoted_pages"] = Double(demoted)
            result.figures["reclaim_stolen_not_demoted_pages"] = Double(notDemoted)
            result.figures["reclaim_stolen_pages"] = Double(stolen)
            result.figures["reclaim_request_succeeded"] = written ? 1 : 0
            result.figures["reclaim_hot_share_after"] = coldProbeHotShare(job, after: monotonic(), lab) ?? -1
            let text = (try? lab.files.read(lab.cgroupDir(group) + "/memory.stat")) ?? ""
            let counters = text.split(separator: "\n").filter { $0.hasPrefix("pgdemote") || $0.hasPrefix("pgsteal") || $0.hasPrefix("pswp") }
            result.diagnostics += "memory.stat after reclaim: " + counters.joined(separator: ", ") + "\n"
            // Anon only: `swappiness=max` (6.15 on); 6.12 takes 0..200 and no `max`.
            for (label, argument) in [("max", "swappiness=max"), ("200", "swappiness=200")] {
                let before = stat()
                do { try lab.files.write(lab.cgroupDir(group) + "/memory.reclaim", "\(64 << 20) \(argument)") } catch {
                    result.diagnostics += "memory.reclaim with \(argument): \(error)\n"
                    result.figures["reclaim_swappiness_\(label)_accepted"] = 0
                    continue
                }
                let after = stat()
                let step = ColdReclaim.step(before: before, after: after)
                result.figures["reclaim_swappiness_\(label)_accepted"] = 1
                result.figures["reclaim_swappiness_\(label)_demoted_pages"] = Double(step.demotedPages)
                result.figures["reclaim_swappiness_\(label)_stolen_not_demoted_pages"] = Double(step.lostPages + step.slowTierDroppedPages)
            }
            result.figures["reclaim_hot_share_after_all"] = coldProbeHotShare(job, after: monotonic(), lab) ?? -1
            lab.stop(job.process, signal: SIGKILL)
            lab.removeGroups(group)
        }
        lab.kernelTiering(demotion: false, numaBalancing: 0)

        // 2. tierd's own tracking: mark every page of the job idle, wait, read back, move the idle ones.
        if lab.files.exists(KernelPaths.pageIdleBitmap), let (job, group) = coldProbeJob(lab, name: "idle") {
            let dramBefore = lab.numaStat(group).bytes(on: 0)
            var t = monotonic()
            let pages = IdlePages.pages(of: job.pid, lab: lab)
            result.figures["idle_pages_mapped"] = Double(pages.count)
            result.figures["idle_read_pagemap_seconds"] = monotonic() - t
            t = monotonic()
            IdlePages.markIdle(pages.map(\.pfn), lab: lab)
            result.figures["idle_mark_seconds"] = monotonic() - t
            sleep(3)
            t = monotonic()
            let idle = IdlePages.stillIdle(pages.map(\.pfn), lab: lab)
            result.figures["idle_read_seconds"] = monotonic() - t
            let hotEnd = (pages.first?.address ?? 0) + (50 << 20)
            let idleHot = zip(pages, idle).filter { $0.1 && $0.0.address < hotEnd }.count
            let idleCold = zip(pages, idle).filter { $0.1 && $0.0.address >= hotEnd }.count
            result.figures["idle_hot_pages_seen_idle"] = Double(idleHot)
            result.figures["idle_cold_pages_seen_idle"] = Double(idleCold)
            let toMove = zip(pages, idle).filter { $0.1 }.map(\.0.address).prefix(Int(want >> 12))
            t = monotonic()
            var moved = 0
            for chunk in stride(from: toMove.startIndex, to: toMove.endIndex, by: 16384) {
                let slice = Array(toMove[chunk..<min(chunk + 16384, toMove.endIndex)])
                if case .success(let status) = LibnumaSyscalls().movePages(pid: job.pid, addresses: slice, to: 1) {
                    moved += status.filter { $0 == 1 }.count
                }
            }
            let seconds = monotonic() - t
            let left = dramBefore - min(dramBefore, lab.numaStat(group).bytes(on: 0))
            result.figures["idle_move_seconds"] = seconds
            result.figures["idle_moved_pages"] = Double(moved)
            result.figures["idle_left_dram_bytes"] = Double(left)
            result.figures["idle_move_mib_per_s"] = Double(left) / 1048576 / max(seconds, 1e-6)
            result.figures["idle_hot_share_after"] = coldProbeHotShare(job, after: monotonic(), lab) ?? -1
            lab.stop(job.process, signal: SIGKILL)
            lab.removeGroups(group)
        }
        result.checks.append(Check(name: "probe ran", ok: result.figures["reclaim_seconds"] != nil,
                                   detail: "lru_gen \(lruGen)"))
        return result
    }

    /// Whether the kernel's LRU keeps a continuously written hot set through many small requests
    /// (`scripts/lab.sh probe --only probe-hot-aging`): the batch of `late-protected-cold`, 640 MiB
    /// asked in 32 MiB requests half a second apart, with the multi-generational LRU as the kernel
    /// boots (`lru_gen/enabled` 0x0007) and without its batched clearing of accessed bits by page
    /// table walks and look-around (0x0005: only the reverse map checks a page, and clears only its
    /// own bit). Figures: the hot set's lowest share in DRAM from the first request on, and what
    /// left DRAM; each setting three times, alternating (`probe-hot-aging-rmap`: 0x0005 six times).
    static func probeHotAging(_ lab: GuestLab, settings: [String] = ["0x0007", "0x0005"], rounds: Int = 3,
                              name: String = "probe-hot-aging") -> ScenarioResult {
        var result = ScenarioResult(scenario: name, checks: [])
        lab.kernelTiering(demotion: true, numaBalancing: 0)
        let booted = lab.fileValue(KernelPaths.lruGenEnabled) ?? "absent"
        result.diagnostics += "lru_gen/enabled as booted: \(booted)\n"
        for (round, setting) in (1...rounds).flatMap({ round in settings.map { (round, $0) } }) {
            let label = "lru_gen_\(setting.dropFirst(2))_\(round)"
            lab.sysctl(KernelPaths.lruGenEnabled, setting == "0x0007" ? "7" : "5")
            result.diagnostics += "\(label): lru_gen/enabled \(lab.fileValue(KernelPaths.lruGenEnabled) ?? "unread")\n"
            guard let (job, group) = coldProbeJob(lab, name: "aging-\(round)-\(setting)") else {
                result.diagnostics += "\(label): the job did not allocate\n"
                continue
            }
            let dramBefore = lab.numaStat(group).bytes(on: 0)
            let started = monotonic()
            for _ in 0..<20 {
                try? lab.files.write(lab.cgroupDir(group) + "/memory.reclaim", "\(32 << 20) \(Planner.anonFirstArgument)")
                usleep(500_000)
            }
            sleep(3)
            let shares = job.samples().filter { $0.t >= started }.map(\.hotShare)
            result.figures["\(label)_hot_share_lowest"] = shares.min() ?? -1
            result.figures["\(label)_left_dram_mib"] = Double(dramBefore - min(dramBefore, lab.numaStat(group).bytes(on: 0))) / 1048576
            lab.stop(job.process, signal: SIGKILL)
            lab.removeGroups(group)
        }
        lab.sysctl(KernelPaths.lruGenEnabled, "7")
        lab.kernelTiering(demotion: false, numaBalancing: 0)
        result.checks.append(Check(name: "probe ran", ok: result.figures.count == 2 * rounds * settings.count,
                                   detail: "\(result.figures.count) of \(2 * rounds * settings.count) figures"))
        return result
    }

    /// A 900 MiB job with its first 50 MiB hot, allocated and reporting, in a group of its own.
    static func coldProbeJob(_ lab: GuestLab, name: String) -> (Load, String)? {
        let group = "\(lab.labSlice)/cold-\(name)"
        lab.makeGroup(group)
        let job = lab.load("cold-\(name)", group: group, mib: 900, hotMiB: 50, interval: 1)
        guard lab.waitFor(seconds: 180, { job.allocatedAt() != nil }) else { return nil }
        sleep(3)
        return (job, group)
    }

    /// Every counter of the group's `memory.stat` and, per node (`key@N`), of its
    /// `memory.numa_stat`: where the pages a request took came from, and where they went.
    static func coldProbeCounters(_ lab: GuestLab, _ group: String) -> [String: Int64] {
        var counters: [String: Int64] = [:]
        for line in ((try? lab.files.read(lab.cgroupDir(group) + "/memory.stat")) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let value = Int64(fields[1]) { counters[String(fields[0])] = value }
        }
        for line in ((try? lab.files.read(lab.cgroupDir(group) + "/memory.numa_stat")) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let key = fields.first else { continue }
            for field in fields.dropFirst() {
                let parts = field.split(separator: "=")
                if parts.count == 2, let value = Int64(parts[1]) { counters["\(key)@\(parts[0].dropFirst())"] = value }
            }
        }
        return counters
    }

    /// The counters that changed, `key: before -> after (delta)`, in name order.
    static func coldProbeChanges(from before: [String: Int64], to after: [String: Int64]) -> String {
        after.keys.sorted().compactMap { key in
            let old = before[key] ?? 0, new = after[key]!
            return old == new ? nil : "\(key) \(new - old)"
        }.joined(separator: ", ")
    }

    /// The hot set's share in DRAM from the job's first report after `after`.
    static func coldProbeHotShare(_ job: Load, after: Double, _ lab: GuestLab) -> Double? {
        var share: Double?
        _ = lab.waitFor(seconds: 20) {
            share = job.samples().first { $0.t > after }?.hotShare
            return share != nil
        }
        return share
    }
}

/// The idle page bitmap, as the probe drives it: a page's frame from /proc/PID/pagemap, one bit
/// per frame in the bitmap (set: mark idle; still set later: not accessed since).
enum IdlePages {
    struct Page { var address: UInt64; var pfn: UInt64 }

    /// The present pages of the task's largest private anonymous mapping, in address order.
    static func pages(of pid: Int32, lab: GuestLab) -> [Page] {
        guard let maps = try? lab.files.read(KernelPaths.process(pid) + "/maps") else { return [] }
        var best: (UInt64, UInt64) = (0, 0)
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 5, fields[1] == "rw-p" else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16) else { continue }
            if end - start > best.1 - best.0 { best = (start, end) }
        }
        let fd = open(KernelPaths.process(pid) + "/pagemap", O_RDONLY)
        guard fd >= 0, best.1 > best.0 else { return [] }
        defer { close(fd) }
        let count = Int((best.1 - best.0) >> 12)
        var entries = [UInt64](repeating: 0, count: count)
        let read = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(best.0 >> 12) * 8) }
        guard read == count * 8 else { return [] }
        return entries.enumerated().compactMap { index, entry in
            entry & (1 << 63) != 0 ? Page(address: best.0 + UInt64(index) << 12, pfn: entry & ((1 << 55) - 1)) : nil
        }
    }

    static func markIdle(_ pfns: [UInt64], lab: GuestLab) {
        let fd = open(KernelPaths.pageIdleBitmap, O_RDWR)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var words: [UInt64: UInt64] = [:]
        for pfn in pfns { words[pfn / 64, default: 0] |= 1 << (pfn % 64) }
        for (word, bits) in words {
            var value = bits
            _ = pwrite(fd, &value, 8, off_t(word * 8))
        }
    }

    static func stillIdle(_ pfns: [UInt64], lab: GuestLab) -> [Bool] {
        let fd = open(KernelPaths.pageIdleBitmap, O_RDONLY)
        guard fd >= 0 else { return pfns.map { _ in false } }
        defer { close(fd) }
        var cache: [UInt64: UInt64] = [:]
        return pfns.map { pfn in
            let word = pfn / 64
            if cache[word] == nil {
                var value: UInt64 = 0
                _ = pread(fd, &value, 8, off_t(word * 8))
                cache[word] = value
            }
            return cache[word]! & (1 << (pfn % 64)) != 0
        }
    }
}
