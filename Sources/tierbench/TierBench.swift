import ArgumentParser
import Foundation
import TierCore
import TierLinux
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// tierd's costs on fixture trees of many cgroups: one control cycle against a floor measured in
/// the same run (`cycle`), and the running daemon's CPU time and memory over minutes (`idle`).
@main
struct TierBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tierbench", abstract: "Benchmark what tierd costs the host.",
        subcommands: [Cycle.self, Idle.self], defaultSubcommand: Cycle.self)
}

/// Times one collect+plan cycle over fixture trees of many cgroups on a tmpfs, beside the floor
/// measured in the same run: a plain loop that only opens and reads the same per-group files.
struct Cycle: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One collect+plan cycle against a plain read-the-files floor.")

    @Option(help: "Group counts to measure (comma-separated).") var groups: String = "100,1000,10000"
    @Option(help: "Tasks per group.") var tasks: Int = 10
    @Option(help: "Directory for the fixture trees (a tmpfs).") var directory: String = "/dev/shm"
    @Option(help: "Timed repetitions per size (the median is reported).") var repetitions: Int = 15

    /// What a planning tick reads per group (SnapshotCollector.Depth.planning).
    static let perGroupFiles = ["memory.numa_stat", "memory.pressure", "cpuset.mems.effective", "cgroup.procs"]

    func run() throws {
        print("| groups | files read | floor (plain open+read) | collect+plan (collect, plan) | ratio | per group | numa_maps reads |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        var previous: (groups: Int, cycle: Double)?
        for count in groups.split(separator: ",").compactMap({ Int($0) }) {
            let tree = try FixtureTree(parent: directory)
            build(tree, groups: count)
            let policy = try PolicyCompiler.compile(yaml: """
                controller: {interval: 2s}
                workloads:
                  - {name: protected, match: ["bench.slice/g*5"], demote: never}
                  - {name: batch, match: ["bench.slice"], demote: allowed, priority: 10}
                """, file: "bench.yaml")
            let paths = (0..<count).flatMap { g in Self.perGroupFiles.map { tree.root + tree.cgroupMount + "/bench.slice/g\(g)/" + $0 } }
            let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root))
            let counting = CountingHostFiles(RootedHostFiles(root: tree.root))
            let countingCollector = try SnapshotCollector(files: counting)
            let reps = count >= 10000 ? max(3, repetitions / 3) : repetitions
            var state = ControllerState()
            var step = 0
            // Floor and cycle alternate, one sample each per round, so that a noisy spell on the
            // machine affects both alike; medians are compared.
            let (floor, cycle) = alternatingMedians(reps, { plainRead(paths) }) {
                step += 1
                let snapshot = try! collector.collect(selection: policy.tiers)
                let (plan, next) = Planner.plan(snapshot: snapshot, policy: policy, state: state, now: Instant(.seconds(step)))
                state = next
                precondition(!plan.actions.isEmpty, "the benchmark policy must make the planner work")
            }
            var snapshotForPlan: HostSnapshot?
            let collectOnly = median(reps) { snapshotForPlan = try! collector.collect(selection: policy.tiers) }
            let planOnly = median(reps) { _ = Planner.plan(snapshot: snapshotForPlan!, policy: policy, state: state, now: Instant(.seconds(step))) }
            counting.reset()
            _ = Planner.plan(snapshot: try countingCollector.collect(selection: policy.tiers), policy: policy, state: state, now: Instant(.seconds(step + 1)))
            let numaMapsReads = counting.reads(named: "numa_maps")
            print(String(format: "| %d | %d | %.2f ms | %.2f ms (collect %.2f, plan %.2f) | %.2f× | %.1f µs | %d |", count, paths.count, floor * 1e3, cycle * 1e3,
                         collectOnly * 1e3, planOnly * 1e3, cycle / floor, cycle / Double(count) * 1e6, numaMapsReads))
            if let previous {
                let growth = (cycle / previous.cycle) / (Double(count) / Double(previous.groups))
                print(String(format: "|  | cost growth from %d to %d groups, relative to linear: %.2f |  |  |  |  |  |", previous.groups, count, growth))
            }
            previous = (count, cycle)
        }
    }

    func build(_ tree: FixtureTree, groups: Int) { Self.build(tree, groups: groups, tasks: tasks) }

    /// One group per cgroup, `tasks` pids each, every file in the kernel's format, and a
    /// /proc/PID tree per task so that any numa_maps read would be real (and counted).
    static func build(_ tree: FixtureTree, groups: Int, tasks: Int) {
        tree.setNode(0, freeBytes: 40 << 20)
        tree.addGroup("bench.slice", anon: [0: 1 << 30])
        for g in 0..<groups {
            let pids = (0..<tasks).map { Int32(10_000 + g * tasks + $0) }
            tree.addGroup("bench.slice/g\(g)", pids: pids, anon: [0: 64 << 20, 1: UInt64(g % 7) << 20], file: [0: 1 << 20],
                          someAvg10: Double(g % 13) / 100, someTotal: UInt64(g) * 1000)
            for pid in pids { tree.addTask(pid, group: "bench.slice/g\(g)", pagesPerNode: [0: 16_384]) }
        }
    }

    func plainRead(_ paths: [String]) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        for path in paths {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            while read(fd, &buffer, buffer.count) > 0 {}
            close(fd)
        }
    }

    func alternatingMedians(_ repetitions: Int, _ first: () -> Void, _ second: () -> Void) -> (Double, Double) {
        first(); second()
        var a: [Double] = [], b: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<repetitions {
            var start = clock.now
            first()
            a.append((clock.now - start).seconds)
            start = clock.now
            second()
            b.append((clock.now - start).seconds)
        }
        return (a.sorted()[a.count / 2], b.sorted()[b.count / 2])
    }

    func median(_ repetitions: Int, _ body: () -> Void) -> Double {
        body()
        var samples: [Double] = []
        for _ in 0..<repetitions {
            let clock = ContinuousClock()
            let start = clock.now
            body()
            samples.append((clock.now - start).seconds)
        }
        return samples.sorted()[samples.count / 2]
    }
}
