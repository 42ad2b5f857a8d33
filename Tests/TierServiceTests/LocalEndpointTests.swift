import Foundation
import Testing
import TierCore
import TierLinux
import TierService
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's local endpoint, end to end: the built `tierd` on a captured tree serves its status
/// and metrics on a root-only unix socket, `tierctl status` reads it, a non-root user is refused,
/// and no TCP port is open unless asked for.
struct LocalEndpointTests {
    let tree: FixtureTree
    let socket: String

    init() throws {
        tree = try FixtureTree()
        socket = tree.root + "/run/tierd.sock"
    }

    func binary(_ name: String) -> String { TierdExecutableTests.binDirectory.appendingPathComponent(name).path }

    func startDaemon(_ extra: [String] = []) throws -> Process { try startDaemon(extra, output: false).process }

    /// The daemon; with `output`, what it prints is kept in a pipe.
    func startDaemon(_ extra: [String], output: Bool) throws -> (process: Process, output: Pipe) {
        let config = tree.root + "/tierd.yaml"
        try "controller: {interval: 200ms, idle_interval: 200ms}\nworkloads:\n  - {name: batch, match: [batch.slice], demote: allowed}\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary("tierd"))
        process.arguments = ["--config", config, "--dry-run", "--root", tree.root, "--log-level", "error", "--socket", socket] + extra
        let pipe = Pipe()
        process.standardOutput = output ? pipe : FileHandle.nullDevice
        process.standardError = output ? pipe : FileHandle.nullDevice
        try process.run()
        return (process, pipe)
    }

    func waitUntilReady() async throws {
        for _ in 0..<100 {
            if let answer = try? LocalHTTPClient.get("/readyz", from: .unix(path: socket, mode: 0o600)), answer.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("the daemon was not ready within 5 s")
    }

    /// Runs a command, as `user` (via setpriv) when given; its status and what it printed.
    func run(_ argv: [String], as user: UInt32? = nil) throws -> (status: Int32, output: String) {
        try runCommand(user.map { ["/usr/bin/setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups"] + argv } ?? argv)
    }

    @Test func statusReportsTheTreeAsTheKernelWroteItToRootOnly() async throws {
        let daemon = try startDaemon()
        defer { daemon.terminate(); daemon.waitUntilExit() }
        try await waitUntilReady()
        var info = stat()
        #expect(stat(socket, &info) == 0 && info.st_mode & 0o777 == 0o600)

        let (status, output) = try run([binary("tierctl"), "status", "--json", "--socket", socket])
        #expect(status == 0)
        let decoded = try StatusBoard.decode(Array(output.utf8))
        // Every group's bytes per node are its memory.numa_stat, as the captured kernel wrote it.
        for group in decoded.groups {
            let text = try #require(tree.read("/sys/fs/cgroup" + group.path + "/memory.numa_stat"))
            let stat = KernelText.numaStat(text)
            #expect(group.bytesPerNode == Dictionary(uniqueKeysWithValues: stat.nodes.sorted.map { (String($0), stat.bytes(on: $0)) }),
                    "\(group.path)")
        }
        #expect(decoded.groups.first { $0.path == "/batch.slice/job1" }?.ruleSource == "inherited from /batch.slice")
        let (textStatus, text) = try run([binary("tierctl"), "status", "--socket", socket])
        #expect(textStatus == 0 && text.contains("/batch.slice/job1") && text.contains("WORKLOAD"))

        let metrics = try LocalHTTPClient.get("/metrics", from: .unix(path: socket, mode: 0o600))
        #expect(String(decoding: metrics.body, as: UTF8.self).contains("tierd_ticks_total"))

        // Not root: the socket's mode keeps the user out... (tierctl copied where any user may run it)
        let tierctl = tree.root + "/tierctl"
        try FileManager.default.copyItem(atPath: binary("tierctl"), toPath: tierctl)
        chmod(tierctl, 0o755)
        chmod(tree.root, 0o755)
        let refused = try run([tierctl, "status", "--socket", socket], as: 65534)
        #expect(refused.status == 1 && refused.output.contains("permission denied"), "\(refused.output)")
        // ...and with the mode opened up, tierd itself still refuses (SO_PEERCRED).
        chmod(socket, 0o666)
        chmod(tree.root + "/run", 0o755)
        let forbidden = try run([tierctl, "status", "--socket", socket], as: 65534)
        #expect(forbidden.status == 1 && forbidden.output.contains("answered 403"), "\(forbidden.output)")
    }

    @Test func topRedrawsTheStatusInPlace() async throws {
        let daemon = try startDaemon()
        defer { daemon.terminate(); daemon.waitUntilExit() }
        try await waitUntilReady()
        let (status, output) = try run([binary("tierctl"), "top", "--socket", socket, "--interval", "0.2", "--count", "3"])
        #expect(status == 0)
        let frames = output.components(separatedBy: "\u{1B}[H\u{1B}[2J").dropFirst()
        #expect(frames.count == 3)
        #expect(frames.allSatisfy { $0.hasPrefix("tierd: ") && $0.contains("WORKLOAD") })
        let (badStatus, badOutput) = try run([binary("tierctl"), "top", "--socket", socket, "--interval", "0"])
        #expect(badStatus == 64 && badOutput.contains("--interval must be between 0.1 and 3600 seconds"))
    }

    /// `tierctl demote` and `promote` through a dry-run daemon on the captured tree: the request is
    /// queued, run by the control loop under the placement rules, and read back; refusals exit 1.
    @Test func manualMovesGoThroughTheDaemonsLoop() async throws {
        let daemon = try startDaemon()
        defer { daemon.terminate(); daemon.waitUntilExit() }
        try await waitUntilReady()
        let tierctl = binary("tierctl")
        let demoted = try run([tierctl, "demote", "batch.slice/job1", "--bytes", "64MiB", "--socket", socket])
        #expect(demoted.status == 0, "\(demoted.output)")
        #expect(demoted.output.hasPrefix("dry run: would have demoted /batch.slice/job1 (asked 64.0 MiB, planned 64.0 MiB), nodes 0 -> 1-2\n"),
                "\(demoted.output)")
        #expect(demoted.output.contains("  pid 172: would move"))

        let json = try run([tierctl, "demote", "batch.slice/job1", "--bytes", "4096", "--json", "--socket", socket])
        let result: ManualResult = try StatusBoard.decodeJSON(Array(json.output.utf8))
        #expect(result.state == .done && result.dryRun && result.plannedBytes == 4096 && result.request.bytes == 4096)

        let optedOut = try run([tierctl, "demote", "system.slice", "--socket", socket])
        #expect(optedOut.status == 1)
        #expect(optedOut.output.hasPrefix("demote /system.slice refused (opted_out): workload default is not opted in"), "\(optedOut.output)")
        let missing = try run([tierctl, "promote", "no/such", "--socket", socket])
        #expect(missing.status == 1 && missing.output.contains("refused (no_such_group)"))
        let badSize = try run([tierctl, "demote", "batch.slice/job1", "--bytes", "64M", "--socket", socket])
        #expect(badSize.status == 64 && badSize.output.contains("--bytes 64M: a positive size, such as 64MiB"))
    }

    @Test func noDaemonIsAClearError() throws {
        let (status, output) = try run([binary("tierctl"), "status", "--socket", socket])
        #expect(status == 1)
        #expect(output.contains("no tierd is running: nothing listens on \(socket)"))
    }

    /// The inodes of the TCP sockets in LISTEN state in this network namespace.
    func listeningTCPInodes() -> Set<String> {
        var inodes: Set<String> = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            for line in ((try? String(contentsOfFile: table, encoding: .utf8)) ?? "").split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                if fields.count > 9, fields[3] == "0A" { inodes.insert(String(fields[9])) }
            }
        }
        return inodes
    }

    /// The socket inodes among a process's open files.
    func socketInodes(of pid: Int32) -> Set<String> {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return Set(fds.compactMap { fd in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                  target.hasPrefix("socket:[") else { return nil }
            return String(target.dropFirst("socket:[".count).dropLast())
        })
    }

    @Test func aTCPPortIsOpenOnlyWhenAskedFor() async throws {
        let quiet = try startDaemon()
        try await waitUntilReady()
        #expect(socketInodes(of: quiet.processIdentifier).isDisjoint(with: listeningTCPInodes()))
        quiet.terminate(); quiet.waitUntilExit()

        let port = 20_000 + Int.random(in: 0..<20_000)
        let scraped = try startDaemon(["--metrics-address", "127.0.0.1:\(port)"])
        defer { scraped.terminate(); scraped.waitUntilExit() }
        try await waitUntilReady()
        #expect(!socketInodes(of: scraped.processIdentifier).isDisjoint(with: listeningTCPInodes()))
        let answer = try LocalHTTPClient.get("/metrics", from: .tcp(host: "127.0.0.1", port: UInt16(port)))
        #expect(answer.status == 200)
        #expect(String(decoding: answer.body, as: UTF8.self).contains("# TYPE tierd_ticks_total counter"))
    }

    /// The textfile holds the same Prometheus text, rewritten whole after each tick (never half a
    /// file: no temporary is left, the tick counter only grows); a path node_exporter would not read
    /// is refused at start.
    @Test func theMetricsTextfileIsRewrittenWholeEachTick() async throws {
        let directory = tree.root + "/textfile"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let textfile = directory + "/tierd.prom"
        let daemon = try startDaemon(["--metrics-textfile", textfile])
        defer { daemon.terminate(); daemon.waitUntilExit() }
        try await waitUntilReady()
        func ticks() throws -> Double? {
            let text = try String(contentsOfFile: textfile, encoding: .utf8)
            return text.split(separator: "\n").first { $0.hasPrefix("tierd_ticks_total ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        var seen: [Double] = []
        for _ in 0..<10 {
            seen.append(try #require(try ticks()))
            try await Task.sleep(for: .milliseconds(150))
        }
        #expect(seen == seen.sorted() && seen.last! > seen.first!, "\(seen)")
        var info = stat()
        #expect(stat(textfile, &info) == 0 && info.st_mode & 0o777 == 0o644)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["tierd.prom"])
        let text = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(text.contains("# TYPE tierd_ticks_total counter") && text.contains("tierd_node_free_bytes{"))

        for (path, why) in [(directory + "/tierd.txt", "reads only files named *.prom"), (tree.root + "/nowhere/tierd.prom", "does not exist")] {
            let (status, output) = try run([binary("tierd"), "--config", tree.root + "/tierd.yaml", "--root", tree.root, "--dry-run",
                                            "--socket", "none", "--metrics-textfile", path])
            #expect(status == 2 && output.contains("--metrics-textfile: \(path)") && output.contains(why), "\(output)")
        }
    }

    @Test func aBadMetricsAddressExitsTwo() throws {
        let config = tree.root + "/tierd.yaml"
        try "workloads: []\n".write(toFile: config, atomically: true, encoding: .utf8)
        let (status, output) = try run([binary("tierd"), "--config", config, "--root", tree.root, "--dry-run", "--socket", "none",
                                        "--metrics-address", "localhost:9477"])
        #expect(status == 2)
        #expect(output.contains("--metrics-address: 'localhost:9477' is not a numeric address"))
    }
}

/// `tierctl plan` and `explain` through the daemon: its view, not a fresh controller's.
struct DaemonViewTests {
    static let mib: UInt64 = 1 << 20

    /// Free DRAM between the watermarks (150 MiB of 1006 MiB; low 10 %, high 20 %) and an opted-in
    /// batch job in DRAM: a tierd that is reclaiming goes on demoting until high, one that is not
    /// leaves it alone (hysteresis). Only the daemon's carried state tells which. (A controller with
    /// no tick behind it, as after a restart, finishes a reclaim below high.)
    @Test func theDaemonsViewPlansWithItsCarriedState() throws {
        let tree = try FixtureTree()
        tree.setNode(0, freeBytes: 150 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 400 * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 102_400])
        let policy = try PolicyCompiler.compile(yaml: "workloads:\n  - {name: batch, match: [test.slice/batch], demote: allowed}\n", file: "t.yaml")
        let view = DaemonView(collector: try SnapshotCollector(files: RootedHostFiles(root: tree.root)))
        let origin = ContinuousClock.now
        var idle = ControllerState()
        idle.lastTick = Instant(.zero)
        var reclaiming = idle
        reclaiming.reclaiming = true
        let daemons = view.plan(.init(policy: policy, carried: reclaiming, origin: origin, dramFallRate: 0))
        let notReclaiming = view.plan(.init(policy: policy, carried: idle, origin: origin, dramFallRate: 0))
        let fresh = view.plan(.init(policy: policy, carried: ControllerState(), origin: origin, dramFallRate: 0))
        #expect(daemons.plan.actions.contains { $0.direction == .demote && $0.group == CgroupPath("test.slice/batch") })
        #expect(notReclaiming.plan.actions.isEmpty)
        #expect(fresh.plan.actions.contains { $0.direction == .demote })
        #expect(view.planDocument(.init(policy: policy, carried: reclaiming, origin: origin, dramFallRate: 0)).text.contains("reclaiming true"))
    }

    @Test func queriesAreDecoded() {
        let (route, query) = StatusBoard.split("/explain?group=batch.slice%2Fjob%201&x")
        #expect(route == "/explain" && query["group"] == "batch.slice/job 1" && query["x"] == "")
    }

    @Test func explainAndPlanThroughTheDaemonAgreeWithOfflineOnAnIdleHost() async throws {
        let endpoint = try LocalEndpointTests()
        let daemon = try endpoint.startDaemon()
        defer { daemon.terminate(); daemon.waitUntilExit() }
        try await endpoint.waitUntilReady()
        let tierctl = endpoint.binary("tierctl")
        let offline = ["--offline", "--config", endpoint.tree.root + "/tierd.yaml", "--root", endpoint.tree.root]
        let viaDaemon = try endpoint.run([tierctl, "explain", "batch.slice/job1", "--socket", endpoint.socket])
        let alone = try endpoint.run([tierctl, "explain", "batch.slice/job1"] + offline)
        #expect(viaDaemon.status == 0 && alone.status == 0)
        #expect(viaDaemon.output.contains("workload: batch (inherited from /batch.slice)"))
        #expect(viaDaemon.output == alone.output)
        let plan = try endpoint.run([tierctl, "plan", "--socket", endpoint.socket])
        #expect(plan.status == 0 && plan.output.contains("topology: fast 0 slow 1-2"))
        let missing = try endpoint.run([tierctl, "explain", "no/such", "--socket", endpoint.socket])
        #expect(missing.status == 1 && missing.output.contains("no cgroup /no/such under the cgroup root"))
    }
}
