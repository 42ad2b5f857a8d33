import ArgumentParser
import Foundation
import TierCore
import TierLinux
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's own cost on a host where nothing needs moving: tierd runs as deployed (default
/// interval, free-DRAM watch, status socket) against a fixture tree of many groups and tasks, and
/// its CPU time and resident memory are read from the kernel while it runs.
struct Idle: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "tierd's CPU time and memory over minutes with nothing to move.")

    @Option(help: "The tierd binary (a release build).") var tierd: String = ".build/release/tierd"
    @Option(help: "Groups in the fixture tree.") var groups: Int = 1000
    @Option(help: "Tasks per group.") var tasks: Int = 10
    @Option(help: "How long tierd runs, in seconds.") var seconds: Int = 600
    @Option(help: "Directory for the fixture tree (a tmpfs).") var directory: String = "/dev/shm"

    /// Memory is judged from this point on: start-up has allocated what a steady daemon keeps.
    static let settled = 60.0

    func run() throws {
        let tree = try FixtureTree(parent: directory)
        Cycle.build(tree, groups: groups, tasks: tasks)
        // DRAM well above the high watermark and no opt-out group: every tick plans nothing.
        tree.setNode(0, freeBytes: 600 << 20)
        let policyPath = tree.root + "-policy.yaml"
        try """
        workloads:
          - {name: batch, match: ["bench.slice"], demote: allowed, priority: 10}
        """.write(toFile: policyPath, atomically: true, encoding: .utf8)
        chmod(policyPath, 0o644)
        defer { unlink(policyPath) }
        let journal = tree.root + "-journal.jsonl"
        defer { unlink(journal) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: tierd)
        let socket = tree.root + "-tierd.sock"
        process.arguments = ["--config", policyPath, "--root", tree.root, "--dry-run", "--log-level", "warning",
                             "--socket", socket, "--journal", journal]
        try process.run()
        // Every way out, a refusal below included, ends the daemon it started.
        defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
        let pid = process.processIdentifier
        let clock = ContinuousClock(), started = clock.now
        var atSettled: Usage?, last: Usage?
        while (clock.now - started).seconds < Double(seconds), process.isRunning {
            sleep(5)
            guard let usage = Usage.read(pid) else { break }
            if atSettled == nil, (clock.now - started).seconds >= Self.settled { atSettled = usage }
            last = usage
        }
        let elapsed = (clock.now - started).seconds
        guard process.isRunning, let settled = atSettled, let end = last else {
            throw ValidationError("tierd exited or could not be read before \(Int(Self.settled)) s (status \(process.terminationStatus))")
        }
        let ticks = Self.counter("tierd_ticks_total", socket: socket)
        process.terminate()
        process.waitUntilExit()
        let actions = (try? String(contentsOfFile: journal, encoding: .utf8))?.split(separator: "\n").filter { $0.contains("\"event\":\"action\"") }.count ?? 0
        let cpuShare = (end.cpuSeconds - settled.cpuSeconds) / (elapsed - Self.settled)
        print("| groups | tasks | run | ticks | actions | CPU, one core (after \(Int(Self.settled)) s) | CPU (whole run) | RSS at \(Int(Self.settled)) s | RSS at end | peak RSS |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(String(format: "| %d | %d | %.0f s | %@ | %d | %.3f %% | %.3f %% | %.1f MiB | %.1f MiB | %.1f MiB |",
                     groups, groups * tasks, elapsed, ticks.map { String(Int($0)) } ?? "?", actions, cpuShare * 100, end.cpuSeconds / elapsed * 100,
                     settled.rssMiB, end.rssMiB, end.peakMiB))
        print(String(format: "goals: CPU < 0.5 %% of a core: %@; RSS < 30 MiB: %@; RSS at end within 10 %% of at %d s: %@",
                     cpuShare < 0.005 ? "met" : "not met", end.peakMiB < 30 ? "met" : "not met", Int(Self.settled),
                     end.rssMiB <= settled.rssMiB * 1.1 ? "met" : "not met"))
    }
}

extension Idle {
    /// A counter from the daemon's own `/metrics`, read over its status socket.
    static func counter(_ name: String, socket: String) -> Double? {
        guard let answer = try? LocalHTTPClient.get("/metrics", from: .unix(path: socket, mode: 0o600)), answer.status == 200 else { return nil }
        return MetricsText.sum(String(decoding: answer.body, as: UTF8.self), family: name)
    }
}

/// A process's CPU time and memory as the kernel reports them (`/proc/PID/stat`, `status`).
struct Usage {
    var cpuSeconds: Double
    var rssMiB: Double
    var peakMiB: Double

    static func read(_ pid: Int32) -> Usage? {
        let files = RootedHostFiles(root: "/")
        guard let stat = try? files.read(KernelPaths.process(pid) + "/stat"),
              let fields = KernelText.processStat(stat)?.fields, fields.count > 12,
              let user = Double(fields[11]), let system = Double(fields[12]),
              let status = try? files.read(KernelPaths.process(pid) + "/status"),
              let rss = KernelText.statusKiB(status, key: "VmRSS"), let peak = KernelText.statusKiB(status, key: "VmHWM") else { return nil }
        let hertz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return Usage(cpuSeconds: (user + system) / hertz, rssMiB: Double(rss) / 1024, peakMiB: Double(peak) / 1024)
    }
}
