import Foundation
import TierCore
import TierLinux
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One placement report line of tierload.
struct LoadSample {
    var t: Double
    var hot: [Int: Int]
    var cold: [Int: Int]
    func share(_ pages: [Int: Int], node: Int = 0) -> Double {
        let total = pages.values.reduce(0, +)
        return total == 0 ? 0 : Double(pages[node] ?? 0) / Double(total)
    }
    var hotShare: Double { share(hot) }
    var allShare: Double { share(hot.merging(cold, uniquingKeysWith: +)) }
}

/// A running tierload: its process and its report file.
struct Load {
    let process: Process
    let report: String
    var pid: Int32 { process.processIdentifier }

    func samples() -> [LoadSample] {
        guard let text = try? String(contentsOfFile: report, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["event"] as? String == "placement", let t = object["t"] as? Double else { return nil }
            func counts(_ key: String) -> [Int: Int] {
                ((object[key] as? [String: Any]) ?? [:]).reduce(into: [:]) { out, kv in
                    if let node = Int(kv.key), let n = kv.value as? Int { out[node] = n }
                }
            }
            return LoadSample(t: t, hot: counts("hot"), cold: counts("cold"))
        }
    }

    /// CLOCK_MONOTONIC time the allocation finished, once it has.
    func allocatedAt() -> Double? { event("allocated")?["t"] as? Double }

    /// The first report line of `kind` ("allocated", "phase"), once written.
    func event(_ kind: String) -> [String: Any]? {
        guard let text = try? String(contentsOfFile: report, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.contains("\"\(kind)\"") {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               object["event"] as? String == kind { return object }
        }
        return nil
    }
}

/// A tierd started by a scenario, with its journal.
struct TierdRun {
    let process: Process
    let journal: String
    let policyPath: String
    /// Its status socket and audit log.
    var socket: String = ""
    var audit: String = ""
    /// What runs `tierctl` as this daemon's own container would: nothing on a host; under a pod
    /// launch, the DaemonSet's seccomp profile (or strace, when its system calls are measured).
    var tierctlPrefix: (_ label: String) -> [String] = { _ in [] }

    /// GET `path` from the daemon's endpoint; nil if it did not answer 200.
    func get(_ path: String) -> [UInt8]? {
        guard let answer = try? LocalHTTPClient.get(path, from: .unix(path: socket, mode: 0o600)), answer.status == 200 else { return nil }
        return answer.body
    }

    /// The status's `dram.reserve_met`; nil if no answer or no reserve.
    func reserveMet() -> Bool? {
        guard let body = get("/status"),
              let document = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        return (document["dram"] as? [String: Any])?["reserve_met"] as? Bool
    }

    /// The sum of a `/metrics` family's series whose labels contain `label` (say `reason="x"`); nil if no answer.
    func metric(_ family: String, label: String = "") -> Double? {
        get("/metrics").map { MetricsText.sum(String(decoding: $0, as: UTF8.self), family: family, label: label) }
    }

    /// The bytes moved per direction as `/metrics` counts them, and the ticks they cover.
    func metricsMoved() -> (ticks: Int, demote: UInt64, promote: UInt64)? {
        guard let body = get("/metrics") else { return nil }
        var ticks: Int?, demote: UInt64 = 0, promote: UInt64 = 0
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            if parts[0] == "tierd_ticks_total" { ticks = Int(value) }
            if parts[0].hasPrefix("tierd_moved_bytes_total{direction=\"demote\"") { demote += UInt64(value) }
            if parts[0].hasPrefix("tierd_moved_bytes_total{direction=\"promote\"") { promote += UInt64(value) }
        }
        return ticks.map { ($0, demote, promote) }
    }

    /// The audit log's moved bytes per direction over its task moves of ticks 1...`ticks`.
    func auditMoved(throughTick ticks: Int) -> (demote: UInt64, promote: UInt64) {
        let actions = auditRecords().filter { ($0["tick"] as? Int ?? Int.max) <= ticks }
        func sum(_ direction: String) -> UInt64 {
            actions.filter { $0["direction"] as? String == direction }.reduce(0) { $0 + UInt64(($1["moved"] as? Int) ?? 0) }
        }
        return (sum("demote"), sum("promote"))
    }

    /// The audit log's records, one per task move, oldest first: its rotated files (FILE.3 to
    /// FILE.1), then FILE.
    func auditRecords() -> [[String: Any]] {
        let files = ["\(audit).3", "\(audit).2", "\(audit).1", audit]
        let text = files.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }.joined()
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Replaces the policy file and sends SIGHUP; the reload shows in the journal once done.
    func requestReload(_ policy: String) {
        try? policy.write(toFile: policyPath, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
    }

    func events(_ kind: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: journal, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            guard let object = try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
                  object["event"] as? String == kind else { return nil }
            return object
        }
    }

    func movedBytes(group: String, direction: String) -> UInt64 {
        events("action").filter { $0["group"] as? String == "/" + group && $0["direction"] as? String == direction }
            .reduce(0) { $0 + UInt64(($1["moved"] as? Int) ?? 0) }
    }

    /// `tierctl ARGS --socket` this daemon's socket, its output kept in `label`'s file: whether it
    /// exited 0, and what it printed.
    func tierctl(_ arguments: [String], lab: GuestLab, label: String) -> (ok: Bool, text: String) {
        let output = lab.out + "/\(label).txt"
        let process = lab.spawn(group: nil, tierctlPrefix(label) + [lab.bin + "/tierctl"] + arguments + ["--socket", socket], output: output)
        process.waitUntilExit()
        return (process.terminationStatus == 0, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// `tierctl explain GROUP` asked of this daemon.
    func explain(_ group: String, lab: GuestLab, label: String) -> (ok: Bool, text: String) {
        tierctl(["explain", group], lab: lab, label: label + "-explain")
    }

    /// How many task moves of all actions ended with `code` (a `TaskResult` code such as "left_group").
    func taskResults(_ code: String) -> Int {
        events("action").reduce(0) { count, action in
            count + ((action["tasks"] as? [[String: Any]]) ?? []).filter { $0["result"] as? String == code }.count
        }
    }

    /// The last journal lines, for a failure report.
    func tail(_ count: Int = 25) -> String {
        let text = (try? String(contentsOfFile: journal, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(count).joined(separator: "\n")
    }
}

/// The guest side of the lab: cgroups, workloads, tierd and sysctls, through TierLinux's kernel paths.
final class GuestLab {
    let out: String
    let bin: String
    /// The project's checkout, which the guest sees at the host's path.
    let project: String
    let files = RootedHostFiles()
    let collector: SnapshotCollector
    var processes: [Process] = []
    var migratepagesMiBPerSecond: Double?
    let labSlice = "lab.slice"

    init(out: String, bin: String, project: String) throws {
        self.out = out
        self.bin = bin
        self.project = project
        collector = try SnapshotCollector(files: files)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    }

    func log(_ message: String) {
        let line = String(format: "[%8.1f] ", monotonic()) + message + "\n"
        if let handle = FileHandle(forWritingAtPath: out + "/guest.log") {
            handle.seekToEndOfFile(); handle.write(Data(line.utf8)); handle.closeFile()
        } else {
            _ = FileManager.default.createFile(atPath: out + "/guest.log", contents: Data(line.utf8))
        }
    }

    func runAll(_ names: [String]) {
        let release = fileValue(KernelPaths.kernelRelease) ?? "unknown"
        log("guest up: kernel \(release); scenarios \(names.joined(separator: ", ")); transparent huge pages: \(hugePagesSetting ?? "unknown"); kernel defaults: \(tieringSettings())")
        print("tierlab guest: kernel \(release)")
        if let problem = verifyTiers() {
            print("tierlab guest: FAILED: \(problem)")
            for name in names { record(ScenarioResult(scenario: name, checks: [Check(name: "slow nodes in a lower memory tier", ok: false, detail: problem)])) }
            return
        }
        do { try files.write(collector.cgroupMount + "/cgroup.subtree_control", "+memory +cpuset") } catch { log("subtree_control: \(error)") }
        for name in names {
            log("scenario \(name): start")
            let result = Scenarios.run(name, in: self)
            cleanUp()
            record(result)
            log("scenario \(name): \(result.passed ? "passed" : "FAILED")")
        }
    }

    /// The lab is only meaningful if the kernel put the CPU-less nodes in a lower memory tier.
    func verifyTiers() -> String? {
        guard let topology = try? collector.topology(selection: .auto) else { return "cannot read the topology" }
        guard topology.source == .memoryTiers, !topology.slow.isEmpty else {
            return "the kernel did not put the slow nodes in a lower memory tier (split from \(topology.source.rawValue): fast \(topology.fast), slow \(topology.slow)); check the HMAT options"
        }
        log("tiers: fast \(topology.fast) slow \(topology.slow)")
        return nil
    }

    func record(_ result: ScenarioResult) {
        guard let data = try? JSONEncoder().encode(result) else { return }
        let path = out + "/results.jsonl"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile(); handle.write(data + Data("\n".utf8)); handle.closeFile()
        }
    }

    // MARK: cgroups

    func cgroupDir(_ group: String) -> String { collector.cgroupMount + "/" + group }

    func makeGroup(_ group: String, mems: String? = nil, memoryHigh: String? = nil) {
        let parts = group.split(separator: "/").map(String.init)
        var path = ""
        for (index, part) in parts.enumerated() {
            path = path.isEmpty ? part : path + "/" + part
            mkdir(cgroupDir(path), 0o755)
            if index < parts.count - 1 { try? files.write(cgroupDir(path) + "/cgroup.subtree_control", "+memory +cpuset") }
        }
        if let mems { setFile(cgroupDir(group) + "/cpuset.mems", mems) }
        if let memoryHigh { setFile(cgroupDir(group) + "/memory.high", memoryHigh) }
    }

    func setFile(_ path: String, _ value: String) {
        do { try files.write(path, value) } catch { log("write \(value) to \(path): \(error)") }
    }

    func numaStat(_ group: String) -> NumaStat {
        (try? files.read(cgroupDir(group) + "/memory.numa_stat")).map(KernelText.numaStat) ?? NumaStat()
    }

    func memoryStat(_ group: String) -> MemoryStat? {
        (try? files.read(cgroupDir(group) + "/memory.stat")).map(KernelText.memoryStat)
    }

    func kernelMovedPages(_ group: String) -> (demoted: UInt64, promoted: UInt64) {
        let stat = memoryStat(group) ?? MemoryStat()
        return (stat.pagesDemotedByKernel, stat.pagesPromotedByKernel)
    }

    /// Free bytes on `node` above the kernel's high watermark for it, as the kernel counts it
    /// (without the per-CPU lists tierd keeps free on top); negative: below it.
    func roomAboveHighWatermark(node: Int) -> Int64 {
        guard let memory = (try? collector.topology(selection: .auto))?.node(node) else { return 0 }
        return Int64(memory.freeBytes) - Int64(memory.highWatermark ?? 0)
    }

    /// A process's resident memory (VmRSS), in MiB.
    func residentMiB(_ pid: Int32) -> Double? {
        (try? files.read(KernelPaths.process(pid) + "/status")).flatMap { KernelText.statusKiB($0, key: "VmRSS") }.map { Double($0) / 1024 }
    }

    func dramTotalBytes() -> UInt64 { dramMeminfo()?.total ?? 0 }

    /// The kernel's tiering settings as text, to show tierd left them as it found them.
    func tieringSettings() -> String {
        [KernelPaths.demotionEnabled, KernelPaths.numaBalancing].map { path in
            "\(path)=" + (fileValue(path) ?? "?")
        }.joined(separator: " ")
    }

    func dramFreeBytes() -> UInt64 { dramMeminfo()?.free ?? 0 }

    private func dramMeminfo() -> (total: UInt64, free: UInt64)? {
        (try? files.read(KernelPaths.node(0) + "/meminfo")).flatMap(KernelText.nodeMeminfo)
    }

    func sysctl(_ path: String, _ value: String) { setFile(path, value) }

    /// A one-value file (a kernel setting, a cgroup's memory.low) as it reads now, trimmed; nil if unreadable.
    func fileValue(_ path: String) -> String? { (try? files.read(path))?.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Transparent huge pages' mode now: the bracketed word of "always madvise [never]".
    var hugePagesSetting: String? {
        guard let text = try? files.read(KernelPaths.transparentHugepages),
              let open = text.firstIndex(of: "["), let close = text.firstIndex(of: "]"), open < close else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    /// Kernel-only behaviour for the demo's baselines; everything off for tierd's own runs.
    func kernelTiering(demotion: Bool, numaBalancing: Int) {
        sysctl(KernelPaths.demotionEnabled, demotion ? "true" : "false")
        sysctl(KernelPaths.numaBalancing, String(numaBalancing))
    }

    // MARK: processes

    func spawn(group: String?, _ argv: [String], output: String) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        let join = group.map { "echo $$ > \(cgroupDir($0))/cgroup.procs && " } ?? ""
        process.arguments = ["-c", join + "exec \"$@\"", "sh"] + argv
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let handle = FileHandle(forWritingAtPath: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { log("spawn \(argv): \(error)") }
        processes.append(process)
        return process
    }

    /// An idle 512 MiB task pinned to `measuringCPU`, alone in the group `name` with kernel tiering
    /// off, as the move probes time it; `body` runs once it has allocated, and the task and its
    /// group are gone after. False: it did not allocate within two minutes.
    @discardableResult
    func withPinnedIdleTask(_ name: String, _ body: (Load, String) -> Void) -> Bool {
        kernelTiering(demotion: false, numaBalancing: 0)
        let group = "\(labSlice)/\(name)"
        makeGroup(group)
        let task = load(name, group: group, mib: 512, hotMiB: 0, prefix: Self.pinned, interval: Self.quietInterval)
        defer { stop(task.process, signal: SIGKILL); removeGroups(group) }
        guard waitFor(seconds: 120, { task.allocatedAt() != nil }) else { return false }
        body(task, group)
        return true
    }

    func load(_ name: String, group: String, mib: Int, hotMiB: Int, prefix: [String] = [], interval: Double = 1,
              shared: (file: String, mib: Int)? = nil, hotWhileAllocating: Bool = false,
              phaseNode: Int? = nil) -> Load {
        let report = out + "/\(name).jsonl"
        try? FileManager.default.removeItem(atPath: report)
        let argv = prefix + [bin + "/tierload", "--mib", String(mib), "--hot-mib", String(hotMiB), "--report", report,
                             "--interval", String(interval)] + (shared.map { ["--shared-file", $0.file, "--shared-mib", String($0.mib)] } ?? [])
            + (hotWhileAllocating ? ["--hot-while-allocating"] : [])
            + (phaseNode.map { ["--phase-node", String($0)] } ?? [])
        return Load(process: spawn(group: group, argv, output: out + "/\(name).out"), report: report)
    }

    /// Fills DRAM with an unmanaged job until its free memory is about `leaveMiB`.
    func fillDram(leaveMiB: Int, name: String = "filler") -> Load? {
        let freeMiB = Int(dramFreeBytes() >> 20)
        guard freeMiB > leaveMiB + 8 else { return nil }
        makeGroup("\(labSlice)/\(name)")
        let filler = load(name, group: "\(labSlice)/\(name)", mib: freeMiB - leaveMiB, hotMiB: 0, interval: 5)
        _ = waitFor(seconds: 120) { filler.allocatedAt() != nil }
        return filler
    }

    /// How tierd is started: as a host service, or as the Kubernetes DaemonSet runs it.
    enum TierdLaunch {
        case host
        /// In a cgroup of its own (three levels down, as a pod's container is), in a private cgroup
        /// namespace rooted there, its own mount namespace holding the runtime's namespaced cgroup2
        /// mount at /sys/fs/cgroup with the host's cgroupfs bind-mounted over it (the hostPath volume),
        /// under the DaemonSet's seccomp profile with refusals logged (``seccompPrefix``).
        case pod
        /// As `pod`, but under `strace -f` instead of the profile: what the profile must allow,
        /// measured (``Scenarios/probeSyscalls(_:)``).
        case podTraced
    }

    /// The seccomp profile the DaemonSet ships, applied by scripts/seccomp-exec.py as a container
    /// runtime applies it; the kernel logs each refused call (audit type 1326).
    var seccompPrefix: [String] {
        ["/usr/bin/python3", project + "/scripts/seccomp-exec.py", project + "/deploy/kubernetes/tierd-seccomp.json", "--"]
    }

    /// `strace -f` writing every system call of the command and its threads to `file`; the tracer
    /// runs detached (`-D`), so the command keeps the pid a signal is sent to, and the file ends
    /// with a `+++ exited` line once the command's last thread has gone.
    static func stracePrefix(_ file: String) -> [String] { ["strace", "-f", "-D", "-q", "-o", file] }

    /// tierd's cgroup when launched `.pod`.
    var podGroup: String { "\(labSlice)/kubepods-podtierd.slice/cri-containerd-tierd.scope" }

    /// - Parameter journalDirectory: where the journal goes (default: the lab's output directory).
    func startTierd(_ name: String, policy: String, cpu: Int? = nil, launch: TierdLaunch = .host, journalDirectory: String? = nil) -> TierdRun {
        let policyPath = out + "/\(name).yaml"
        let journal = (journalDirectory ?? out) + "/\(name).journal.jsonl"
        try? policy.write(toFile: policyPath, atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: journal)
        let pin = cpu.map { ["taskset", "-c", String($0)] } ?? []
        let socket = "/run/tierd-lab/\(name).sock"
        let audit = out + "/\(name).audit.jsonl"
        try? FileManager.default.removeItem(atPath: audit)
        let argv = pin + [bin + "/tierd", "--config", policyPath, "--journal", journal, "--socket", socket, "--audit-log", audit,
                          "--state-file", out + "/\(name).kernel-settings.json"]
        let process: Process
        var tierctlPrefix: (String) -> [String] = { _ in [] }
        switch launch {
        case .host:
            process = spawn(group: nil, argv, output: out + "/\(name).log")
        case .pod, .podTraced:
            let confinement = launch == .pod ? seccompPrefix : Self.stracePrefix(out + "/\(name).strace")
            // The rarer paths a pod's life takes, under the same confinement: audit log rotation, the textfile.
            let rarePaths = ["--audit-log-max-size", "32KiB", "--metrics-textfile", out + "/\(name).prom"]
            tierctlPrefix = launch == .pod ? { [seccompPrefix] _ in seccompPrefix } : { [out] label in Self.stracePrefix(out + "/\(label).strace") }
            makeGroup(podGroup)
            // A fresh /sys/fs stands in for the container's own sysfs, which has no cgroup mount yet.
            let mounts = "mkdir -p /run/hostcg && mount --bind /sys/fs/cgroup /run/hostcg"
                + " && mount -t tmpfs tmpfs /sys/fs && mkdir /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup"
                + " && mount --bind /run/hostcg /sys/fs/cgroup && umount -l /run/hostcg && exec \"$@\""
            process = spawn(group: podGroup, ["unshare", "--cgroup", "--mount", "--propagation", "private", "sh", "-c", mounts, "sh"] + confinement + argv + rarePaths,
                            output: out + "/\(name).log")
        }
        _ = waitFor(seconds: 30) { FileManager.default.fileExists(atPath: journal) && !(try! String(contentsOfFile: journal, encoding: .utf8)).isEmpty }
        return TierdRun(process: process, journal: journal, policyPath: policyPath, socket: socket, audit: audit, tierctlPrefix: tierctlPrefix)
    }

    /// One real tick of tierd (`--once`, not a dry run), waited for without polling; with `cpu`,
    /// pinned to that vCPU.
    func runTierdOnce(_ name: String, policy: String, cpu: Int? = nil) -> TierdRun {
        let policyPath = out + "/\(name).yaml"
        let journal = out + "/\(name).journal.jsonl"
        try? policy.write(toFile: policyPath, atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: journal)
        let pin = cpu.map { ["taskset", "-c", String($0)] } ?? []
        let process = spawn(group: nil, pin + [bin + "/tierd", "--once", "--config", policyPath, "--journal", journal], output: out + "/\(name).log")
        process.waitUntilExit()
        return TierdRun(process: process, journal: journal, policyPath: policyPath)
    }

    func stop(_ process: Process, signal: Int32 = SIGTERM) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, signal)
        _ = waitFor(seconds: 15) { !process.isRunning }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    /// Stops every process a scenario started, removes its cgroups and restores kernel defaults.
    func cleanUp() {
        for process in processes.reversed() { stop(process, signal: SIGKILL) }
        processes = []
        removeGroups(labSlice)
        kernelTiering(demotion: false, numaBalancing: 0)
        sysctl(KernelPaths.dropCaches, "3")
        sleep(1)
    }

    func removeGroups(_ group: String) {
        let dir = cgroupDir(group)
        for child in (try? files.subdirectories(dir)) ?? [] { removeGroups(group + "/" + child) }
        if let pids = try? files.read(dir + "/cgroup.procs") {
            for pid in KernelText.pids(pids) { kill(pid, SIGKILL) }
        }
        for _ in 0..<50 where rmdir(dir) != 0 && errno == EBUSY { usleep(100_000) }
    }

    func waitFor(seconds: Double, every: Double = 0.25, _ condition: () -> Bool) -> Bool {
        let deadline = monotonic() + seconds
        while monotonic() < deadline {
            if condition() { return true }
            usleep(UInt32(every * 1e6))
        }
        return condition()
    }

    /// The vCPU an idle task and whatever moves it share in throughput measurements. Under TCG, a
    /// move made from the other vCPU than the one the task runs on is slowed up to sevenfold by
    /// spells of the emulator's cross-vCPU cost, whoever moves (docs/BENCHMARKS.md).
    static let measuringCPU = 0
    static var pinned: [String] { ["taskset", "-c", String(measuringCPU)] }

    /// The report interval of a task whose moves are timed: one report when it has allocated,
    /// none while it is moved. A report queries every page of the task (0.3 s of CPU on the
    /// measuring vCPU for 512 MiB) and a move it overlaps took up to 3 s longer.
    static let quietInterval = 3600.0

    /// Throughput of migratepages(8) on an idle task in this guest, task and mover on one vCPU:
    /// the floor scenarios compare against.
    func calibrateMigratepages(mib: Int = 512) -> (mibPerSecond: Double, movedBytes: UInt64, seconds: Double)? {
        let group = "\(labSlice)/calibrate"
        makeGroup(group)
        let task = load("calibrate", group: group, mib: mib, hotMiB: 0, prefix: Self.pinned, interval: Self.quietInterval)
        guard waitFor(seconds: 120, { task.allocatedAt() != nil }) else { return nil }
        let dramFree = dramFreeBytes(), reclaimBefore = vmstat(Self.reclaimCounters)
        let (moved, seconds) = migratepages(task.pid, from: 0, to: 1, group: group, pinned: true) ?? (0, 0)
        stop(task.process, signal: SIGKILL)
        removeGroups(group)
        guard moved > 0, seconds > 0 else { return nil }
        let rate = Double(moved) / 1048576 / seconds
        migratepagesMiBPerSecond = rate
        log(String(format: "migratepages: %.1f MiB in %.2f s = %.1f MiB/s; DRAM free before %.0f MiB; reclaim %@",
                   Double(moved) / 1048576, seconds, rate, Double(dramFree) / 1048576, vmstatDelta(Self.reclaimCounters, since: reclaimBefore)))
        return (rate, moved, seconds)
    }

    /// Runs `migratepages PID from to` (pinned to `measuringCPU` if asked) and times the command;
    /// moved bytes are what left `from` in the group's memory.numa_stat.
    func migratepages(_ pid: Int32, from: Int, to: Int, group: String, pinned: Bool) -> (movedBytes: UInt64, seconds: Double)? {
        let before = numaStat(group).bytes(on: from)
        let started = monotonic()
        let process = spawn(group: nil, (pinned ? Self.pinned : []) + ["migratepages", String(pid), String(from), String(to)],
                            output: out + "/migratepages.out")
        process.waitUntilExit()
        let seconds = monotonic() - started
        guard process.terminationStatus == 0 else { return nil }
        return (before - min(before, numaStat(group).bytes(on: from)), seconds)
    }

    /// Bytes per node of the pages `pid` maps from `file`, from its numa_maps.
    func mappedBytes(_ pid: Int32, file: String) -> [Int: UInt64] {
        let entries = KernelText.numaMaps((try? files.read(KernelPaths.process(pid) + "/numa_maps")) ?? "")
        return entries.filter { $0.file == file }.reduce(into: [:]) { out, entry in
            for (node, pages) in entry.pagesPerNode { out[node, default: 0] += pages * entry.pageSize }
        }
    }

    static let reclaimCounters = ["pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "allocstall_movable", "compact_stall", "thp_migration_split"]

    /// The named /proc/vmstat counters.
    func vmstat(_ names: [String]) -> [String: Int] {
        var values: [String: Int] = [:]
        for line in ((try? files.read(KernelPaths.vmstat)) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, names.contains(String(parts[0])) { values[String(parts[0])] = Int(parts[1]) }
        }
        return values
    }

    func vmstatDelta(_ names: [String], since before: [String: Int]) -> String {
        let now = vmstat(names)
        return names.map { "\($0)=\((now[$0] ?? 0) - (before[$0] ?? 0))" }.joined(separator: " ")
    }

    /// CPU time by CPU (/proc/stat) and by live process (/proc/PID/stat), in clock ticks: what
    /// ran beside a timed move, beyond the mover itself.
    struct CPUTimes {
        static let columns = ["user", "nice", "system", "idle", "iowait", "irq", "softirq"]
        var cpus: [String: [Int]] = [:]
        var processes: [Int32: (name: String, ticks: Int)] = [:]
    }

    func cpuTimes() -> CPUTimes {
        var times = CPUTimes()
        for line in ((try? files.read(KernelPaths.cpuTimes)) ?? "").split(separator: "\n") where line.hasPrefix("cpu") {
            let fields = line.split(separator: " ")
            guard let name = fields.first, name != "cpu" else { continue }
            times.cpus[String(name)] = fields.dropFirst().prefix(CPUTimes.columns.count).compactMap { Int($0) }
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: KernelPaths.processRoot)) ?? [] {
            guard let pid = Int32(entry), let (command, user, system) = processTicks(pid) else { continue }
            times.processes[pid] = (command, user + system)
        }
        return times
    }

    /// A live process's command and its user and system CPU time in clock ticks, from /proc/PID/stat.
    func processTicks(_ pid: Int32) -> (command: String, user: Int, system: Int)? {
        // utime and stime are fields 14 and 15, `fields[11]` and `fields[12]`.
        guard let text = try? files.read(KernelPaths.process(pid) + "/stat"), let (command, fields) = KernelText.processStat(text),
              fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return (String(command), user, system)
    }

    /// Each CPU's time by kind since `before`, and the processes that used the most CPU meanwhile
    /// (a process that exited meanwhile, such as a timed mover, is not among them).
    func cpuActivity(since before: CPUTimes) -> String {
        let now = cpuTimes()
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let cpus = now.cpus.keys.sorted().map { cpu in
            let deltas = zip(now.cpus[cpu] ?? [], before.cpus[cpu] ?? []).map { Double($0 - $1) / hz }
            return cpu + " " + zip(CPUTimes.columns, deltas).filter { $0.1 > 0 }.map { String(format: "%@ %.2f", $0.0, $0.1) }.joined(separator: " ")
        }
        let busiest = now.processes.compactMap { pid, entry -> (String, Int)? in
            let used = entry.ticks - (before.processes[pid]?.ticks ?? 0)
            return used > 0 ? ("\(entry.name)[\(pid)]", used) : nil
        }.sorted { $0.1 > $1.1 }.prefix(5)
        return cpus.joined(separator: "; ") + "; busiest: " + (busiest.isEmpty ? "none" : busiest.map { String(format: "%@ %.2f", $0.0, Double($0.1) / hz) }.joined(separator: ", "))
    }

    func describe(_ groups: [String]) -> String {
        groups.map { group in
            let stat = numaStat(group)
            let nodes = stat.nodes.sorted.map { "N\($0)=\(stat.bytes(on: $0) >> 20)MiB" }.joined(separator: " ")
            return "\(group): \(nodes)"
        }.joined(separator: "\n") + String(format: "\nDRAM free %.0f MiB", Double(dramFreeBytes()) / 1048576)
    }
}

func monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Node 0's free memory, the groups' bytes on each node and the kernel's reclaim counters, every
/// half second, as deltas from the first sample: what the kernel was doing while a scenario's job
/// allocated and came back, printed into the guest log for diagnosis.
final class KernelTrace {
    static let counters = ["pgscan_kswapd", "pgscan_direct", "allocstall_movable", "pgsteal_kswapd", "pgsteal_direct",
                           "workingset_refault_file", "pgmajfault", "pgmigrate_success", "pgmigrate_fail"]
    let lab: GuestLab, groups: [String], started = monotonic()
    private let first: [String: Int]
    private var lines: [String] = []
    private var last = -Double.infinity
    /// Each group's bytes on the slow node, one entry per sample.
    private(set) var slowBytes: [String: [UInt64]] = [:]
    var sampleCount: Int { lines.count }

    init(_ lab: GuestLab, groups: [String]) {
        self.lab = lab
        self.groups = groups
        first = lab.vmstat(Self.counters)
    }

    func sample() {
        let now = monotonic()
        guard now - last >= 0.5 else { return }
        last = now
        let counts = lab.vmstat(Self.counters)
        let deltas = Self.counters.map { "\((counts[$0] ?? 0) - (first[$0] ?? 0))" }.joined(separator: " ")
        let placement = groups.map { group in
            let stat = lab.numaStat(group)
            slowBytes[group, default: []].append(stat.bytes(on: 1))
            return "\(stat.bytes(on: 0) >> 20)/\(stat.bytes(on: 1) >> 20)"
        }.joined(separator: " ")
        lines.append(String(format: "%6.1f %5d ", now - started, lab.dramFreeBytes() >> 20) + placement + " " + deltas)
    }

    var text: String {
        "  t  free0 " + groups.map { ($0.split(separator: "/").last.map(String.init) ?? $0) + "(N0/N1)" }.joined(separator: " ")
            + " " + Self.counters.joined(separator: " ") + "\n" + lines.joined(separator: "\n")
    }
}
