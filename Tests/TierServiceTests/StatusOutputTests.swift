import Foundation
import Logging
import Testing
import TierCore
import TierLinux
import TierService
import TierTestSupport

/// `tierctl status` and `/status` byte for byte, on one tick over the captured guest tree: a batch
/// job demoted for the watermark, a protected job's slow pages promoted back, a skip with its
/// reason. Golden files in Tests/Fixtures/golden; `TIERD_UPDATE_GOLDEN=1 swift test` rewrites them.
struct StatusOutputTests {
    static let mib: UInt64 = 1 << 20
    static let golden = FixtureTree.fixtures + "/golden"

    static let policyText = """
    controller: {interval: 1s, parallel_moves: false}
    workloads:
      - name: db
        match: ["test.slice/db"]
        demote: never
      - name: batch
        match: ["test.slice/batch"]
        demote: allowed
        priority: 10
    """

    /// One tick, its status, and the metrics it recorded.
    static func tick() async throws -> (DaemonStatus, TierMetrics, TierController) {
        let tree = try FixtureTree()
        let syscalls = RecordingSyscalls()
        tree.setNode(0, freeBytes: 60 * mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 600 * mib])
        tree.addGroup("test.slice/db", pids: [900], anon: [1: 40 * mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 153_600])
        tree.addTask(900, group: "test.slice/db", pagesPerNode: [1: 10_240])
        syscalls.pageNode = { pid, _ in pid == 900 ? 1 : 0 }
        syscalls.afterMove = { [tree] _, pages, node in tree.accountMove(bytes: UInt64(pages) * 4096, from: node == 0 ? 1 : 0, to: node) }
        let path = tree.root + "/tierd.yaml"
        try policyText.write(toFile: path, atomically: true, encoding: .utf8)
        let collector = try SnapshotCollector(files: RootedHostFiles(root: tree.root))
        let controller = TierController(policy: try PolicyFileLoader.load(path: path), collector: collector,
                                        migrator: TaskMigrator(collector: collector, syscalls: syscalls, dryRun: false, selfPid: 1),
                                        logger: Logger(label: "test"), journal: try Journal(path: nil))
        let report = await controller.tick(now: Instant(.seconds(1)))
        let status = DaemonStatusBuilder.build(report: report, policy: controller.policy,
                                               policyState: .init(file: "/etc/tierd/tierd.yaml", generation: 1),
                                               carried: controller.carried, ledger: controller.ledger, tickSeconds: 0.25, dryRun: false)
        let metrics = TierMetrics()
        metrics.record(report, status: status, duration: .milliseconds(250))
        return (status, metrics, controller)
    }

    func compare(_ text: String, golden name: String) throws {
        let path = Self.golden + "/" + name
        if ProcessInfo.processInfo.environment["TIERD_UPDATE_GOLDEN"] == "1" {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == expected, "differs from \(name); TIERD_UPDATE_GOLDEN=1 rewrites it")
    }

    @Test func statusTextIsAsGolden() async throws {
        let (status, _, _) = try await Self.tick()
        try compare(StatusText.render(status), golden: "status.txt")
    }

    @Test func statusJSONIsAsGoldenAndRoundTrips() async throws {
        let (status, _, _) = try await Self.tick()
        let json = StatusBoard.encode(status)
        try compare(String(decoding: json, as: UTF8.self), golden: "status.json")
        #expect(try StatusBoard.decode(json) == status)
    }

    @Test func statusMatchesWhatTheTickDid() async throws {
        let (status, _, controller) = try await Self.tick()
        #expect(status.moved.demotedBytes == controller.ledger.total(.demote))
        #expect(status.moved.promotedBytes == controller.ledger.total(.promote))
        #expect(status.moved.demotedBytes > 0 && status.moved.promotedBytes > 0)
        let batch = try #require(status.groups.first { $0.path == "/test.slice/batch" })
        #expect(batch.workload == "batch" && batch.ruleSource == "matched here")
        #expect(batch.bytesPerNode["0"] == 600 * Self.mib)
        #expect(batch.actions.map(\.direction).allSatisfy { $0 == "demote" } && !batch.actions.isEmpty)
        #expect(batch.actions.compactMap(\.movedBytes).reduce(0, +) == status.moved.demotedBytes)
        #expect(status.workloads.first { $0.name == "batch" }?.demotedBytes == status.moved.demotedBytes)
    }

    @Test func metricsCountWhatMovedAndNameTheirSeries() async throws {
        let (status, metrics, _) = try await Self.tick()
        let text = metrics.text()
        #expect(text.contains("tierd_moved_bytes_total{direction=\"demote\",mode=\"task\",workload=\"batch\"} \(status.moved.demotedBytes)\n"))
        #expect(text.contains("tierd_moved_bytes_total{direction=\"promote\",mode=\"task\",workload=\"db\"} \(status.moved.promotedBytes)\n"))
        #expect(text.contains("tierd_ticks_total 1\n"))
        #expect(text.contains("# TYPE tierd_tick_duration_seconds histogram"))
        #expect(text.contains("tierd_workload_memory_bytes{workload=\"batch\",node=\"0\"} \(Double(600 * Self.mib))"))
        // A per-group series exists for the groups tierd moved memory of, and only for them.
        #expect(text.contains("tierd_group_memory_bytes{group=\"/test.slice/batch\""))
        #expect(!text.contains("tierd_group_memory_bytes{group=\"/batch.slice/job1\""))
    }

    /// What the lab and tierbench read of /metrics: a family summed over its series, or some of them.
    @Test func metricsTextSumsAFamilyOverTheSeriesAsked() async throws {
        let (status, metrics, _) = try await Self.tick()
        let text = metrics.text()
        let moved = Double(status.moved.demotedBytes + status.moved.promotedBytes)
        #expect(moved > 0)
        #expect(MetricsText.sum(text, family: "tierd_moved_bytes_total") == moved)
        #expect(MetricsText.sum(text, family: "tierd_moved_bytes_total", label: "direction=\"demote\"") == Double(status.moved.demotedBytes))
        #expect(MetricsText.sum(text, family: "tierd_ticks_total") == 1)
        // A family's name is matched whole: not a prefix of a longer one.
        #expect(MetricsText.sum(text, family: "tierd_moved") == 0)
    }

    @Test func aGroupThatGoesTakesItsSeriesWithIt() async throws {
        let (status, metrics, _) = try await Self.tick()
        var gone = status
        gone.groups.removeAll { $0.path == "/test.slice/batch" }
        metrics.setGauges(gone, movedGroups: [])
        #expect(!metrics.text().contains("group=\"/test.slice/batch\""))
        #expect(metrics.text().contains("group=\"/test.slice/db\""))
    }

    /// docs/REFERENCE.md names every metric: each one it lists is exposed, with that exact name,
    /// once a tick moved memory, a task move fell short, a reload was counted and a reserve set.
    @Test func everyDocumentedMetricIsExposedByThatName() async throws {
        var (status, metrics, _) = try await Self.tick()
        status.dram.reserveBytes = 400 << 20
        status.dram.reserveUnusedBytes = 100 << 20
        status.dram.reserveMet = true
        metrics.setGauges(status, movedGroups: [])
        let action = MigrationAction(group: CgroupPath("test.slice/batch"), workload: "batch", direction: .demote, pids: [800],
                                     from: NodeSet([0]), to: [1], bytes: 1 << 20, mempolicy: .respect, reason: "test")
        let short = TickReport(snapshot: nil, plan: MigrationPlan(), outcomes: [ActionOutcome(action: action, tasks: [(800, .exited)])])
        metrics.record(short, status: status, duration: .milliseconds(1))
        metrics.recordReload(ok: true, generation: 2)
        metrics.recordWriteFailures(["journal": 0, "audit": 1])
        let reference = try String(contentsOfFile: FixtureTree.fixtures + "/../../docs/REFERENCE.md", encoding: .utf8)
        let table = reference.split(separator: "\n").filter { $0.hasPrefix("| `tierd_") }
        let documented = table.flatMap { row in
            row.split(separator: "|")[0].split(separator: "`").filter { $0.hasPrefix("tierd_") }.map(String.init)
        }
        #expect(documented.count >= 15)
        let exposed = Set(metrics.text().split(separator: "\n").compactMap { line -> String? in
            line.hasPrefix("# TYPE ") ? String(line.split(separator: " ")[2]) : nil
        })
        #expect(StatusText.render(status).contains("reserve 400.0 MiB, 100.0 MiB of it unused and free"))
        for name in documented { #expect(exposed.contains(name), "\(name) is documented but not exposed") }
        for name in exposed { #expect(documented.contains(name), "\(name) is exposed but not documented") }
    }

    /// A group's last actions, task by task, outlive the quiet ticks after them, and the daemon's
    /// explanation names each task's result.
    @Test func lastActionsCarryOverAndExplainNamesEachTask() async throws {
        let (status, _, controller) = try await Self.tick()
        let quiet = TickReport(snapshot: controller.lastReport?.snapshot, plan: MigrationPlan(), outcomes: [])
        let next = DaemonStatusBuilder.build(report: quiet, policy: controller.policy, policyState: status.policy, carried: controller.carried,
                                             ledger: controller.ledger, tickSeconds: 0.1, dryRun: false, previous: status)
        let batch = try #require(next.groups.first { $0.path == "/test.slice/batch" })
        #expect(batch.actions.isEmpty)
        #expect(batch.lastActionsTick == 1 && batch.lastActions.count == 2)
        #expect(batch.lastActions.flatMap(\.tasks).allSatisfy { $0.pid == 800 && $0.result == "moved" })
        let view = DaemonView(collector: controller.collector)
        let context = DaemonView.Context(policy: controller.policy, carried: controller.carried, origin: .now, dramFallRate: 0)
        let text = try #require(view.explanation(of: CgroupPath("test.slice/batch"), context, last: batch)).text
        #expect(text.contains("last moved at tick 1: demote planned"))
        #expect(text.contains("  pid 800: moved "))
    }
}
