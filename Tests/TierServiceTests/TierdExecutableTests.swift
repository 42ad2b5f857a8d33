import Foundation
import Testing
import TierTestSupport

/// The built `tierd` binary, run as an operator would: bad policies exit 2 with a precise message,
/// `--once --dry-run` on a captured kernel tree prints the plan with its reasons, and the daemon
/// wakes on free DRAM falling.
struct TierdExecutableTests {
    static var binDirectory: URL {
        // Tests run from the package's build products directory, beside the executables.
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? "")
        while url.path != "/" && !FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("tierd").path) {
            url.deleteLastPathComponent()
        }
        return url
    }

    func run(_ arguments: [String]) throws -> (status: Int32, output: String) { try runBinary("tierd", arguments) }

    /// Runs one of the built executables; its status and everything it printed.
    func runBinary(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try runCommand([Self.binDirectory.appendingPathComponent(name).path] + arguments)
    }

    func policyFile(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "tierd-exe-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: [
        ("workloads:\n  - name: a\n    match: [x]\n    demote: maybe\n", "4:13: workloads[0].demote: 'maybe' is not `allowed` or `never`"),
        ("controller:\n  rate_limit: 1GB/s\n", "2:15: controller.rate_limit: '1GB' is not a size"),
        ("bogus: true\n", "1:1: bogus: unknown key"),
    ])
    func aBadPolicyExitsTwoNamingLineColumnAndField(yaml: String, message: String) throws {
        let path = try policyFile(yaml)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, output) = try run(["--config", path, "--once", "--dry-run", "--root", FixtureTree.capturedGuest])
        #expect(status == 2)
        #expect(output.contains("tierd: \(path):\(message)"))
    }

    /// The daemon on a writable copy of the captured tree, its timer far off (30 s): node 0's
    /// MemFree falling 60 MiB every 100 ms must wake a tick through the free-DRAM watch, and
    /// that tick must reclaim on the projected free while free itself is still above `low`.
    @Test func fallingFreeDramWakesATickBeforeTheTimer() async throws {
        let tree = try FixtureTree()
        let mib: UInt64 = 1 << 20
        tree.setNode(0, freeBytes: 700 * mib)
        let config = try policyFile("controller: {interval: 30s, dram: {low: 10%, high: 20%, watch: 50ms, lookahead: 1s}}\nworkloads: []\n")
        let journal = tree.root + "/journal.jsonl"
        defer { try? FileManager.default.removeItem(atPath: config) }
        let process = Process()
        process.executableURL = Self.binDirectory.appendingPathComponent("tierd")
        process.arguments = ["--config", config, "--dry-run", "--root", tree.root, "--journal", journal, "--log-level", "error", "--socket", "none"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() }; process.waitUntilExit() }
        func events() -> [[String: Any]] {
            (tree.read("/journal.jsonl") ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
        try await Task.sleep(for: .seconds(1))   // the first tick, then the watch is armed
        var wakes: [[String: Any]] = []
        for step in 1...50 where wakes.isEmpty {
            tree.setNode(0, freeBytes: (700 - UInt64(min(step, 10)) * 60) * mib)
            try await Task.sleep(for: .milliseconds(100))
            wakes = events().filter { $0["event"] as? String == "wake" && $0["cause"] as? String == "dram" }
        }
        #expect(wakes.count >= 1, "no wake by the free-DRAM watch within 5 s")
        let rate = try #require(wakes.first?["dram_fall_rate"] as? Int)
        #expect(rate > 100 << 20)
        try await Task.sleep(for: .milliseconds(500))
        let woken = try #require(events().first { $0["event"] as? String == "tick" && ($0["dram_fall_rate"] as? Int ?? 0) > 0 })
        #expect(woken["reclaiming"] as? Bool == true)
        let free = try #require(woken["dram_free"] as? Int), total = try #require(woken["dram_total"] as? Int)
        #expect(free > total / 10, "reclaiming on the projection, with free still above low")
    }

    @Test func onceDryRunPrintsThePlanWithReasons() throws {
        let path = try policyFile("workloads: []\ndefault: {demote: never, promote: true}\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, output) = try run(["--config", path, "--once", "--dry-run", "--root", FixtureTree.capturedGuest, "--log-level", "error"])
        #expect(status == 0)
        #expect(output.contains("topology: fast 0 slow 1-2 (kernel memory tiers)"))
        #expect(output.contains("skip /batch.slice/job2 [default]: cpuset.mems.effective is 1, no DRAM node: never promoted"))
        #expect(output.contains("(dry run: nothing was moved)"))
    }

    /// Before the fix `--once` without `--dry-run` printed its fatal findings and exited 1 only
    /// after its tick had moved pages. Here tierd lacks CAP_SYS_NICE (the tree's CapEff is 0) and
    /// DRAM is short: the plan is shown, nothing is moved, and the exit status is 1.
    @Test func onceWithAFatalFindingMovesNothing() throws {
        let tree = try FixtureTree()
        let status = try #require(tree.read("/proc/self/status"))
        tree.write("/proc/self/status", status.replacing(/CapEff:\t[0-9a-f]+/, with: "CapEff:\t0000000000000000"))
        tree.setNode(0, freeBytes: 1 << 20)
        let path = try policyFile("controller: {dram: {low: 50%, high: 60%}}\nworkloads:\n  - {name: batch, match: [batch.slice], demote: allowed}\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = tree.root + "/journal.jsonl"
        let (exit, output) = try run(["--config", path, "--once", "--root", tree.root, "--journal", journal, "--log-level", "error"])
        #expect(exit == 1)
        #expect(output.contains("# fatal: tierd lacks CAP_SYS_NICE"))
        #expect(output.contains("action 1: demote /batch.slice/"), "\(output)")
        #expect(output.contains("(dry run: nothing was moved)"))
        let results = (tree.read("/journal.jsonl") ?? "").split(separator: "\n").flatMap { line in
            line.matches(of: /"result": ?"([a-z_]+)"/).map { String($0.output.1) }
        }
        // A task of the captured tree with no /proc entry here counts as exited; none may be moved or tried.
        #expect(results.contains("would_move") && results.allSatisfy { ["would_move", "exited"].contains($0) }, "task results: \(results)")
    }

    /// A policy mounted from a ConfigMap is replaced by swapping its `..data` symlink: the daemon
    /// reloads it without a signal, refuses a version that does not compile and keeps running.
    /// Nothing is to be done on the fixture host, so tierd is in an idle pause (an hour long here)
    /// whenever a version lands: the file is still looked at every interval.
    @Test func aChangedPolicyFileIsReloadedWithoutASignal() async throws {
        let tree = try FixtureTree()
        let dir = tree.root + "/configmap"
        try FileManager.default.createDirectory(atPath: dir + "/..v1", withIntermediateDirectories: true)
        try "controller: {interval: 200ms, idle_interval: 1h}\nworkloads: []\n".write(toFile: dir + "/..v1/tierd.yaml", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/..data", withDestinationPath: "..v1")
        try FileManager.default.createSymbolicLink(atPath: dir + "/tierd.yaml", withDestinationPath: "..data/tierd.yaml")
        func publish(_ name: String, _ text: String) throws {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
            try text.write(toFile: dir + "/\(name)/tierd.yaml", atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: dir + "/..data_tmp", withDestinationPath: name)
            #expect(rename(dir + "/..data_tmp", dir + "/..data") == 0)
        }
        let process = Process()
        process.executableURL = Self.binDirectory.appendingPathComponent("tierd")
        process.arguments = ["--config", dir + "/tierd.yaml", "--dry-run", "--root", tree.root, "--journal", tree.root + "/journal.jsonl",
                             "--log-level", "error", "--socket", "none"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() }; process.waitUntilExit() }
        func reloads() -> [Bool] {
            (tree.read("/journal.jsonl") ?? "").split(separator: "\n").compactMap {
                guard let event = try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
                      event["event"] as? String == "reload", event["cause"] as? String == "file_changed" else { return nil }
                return event["ok"] as? Bool
            }
        }
        func waitFor(_ count: Int) async throws {
            for _ in 0..<50 where reloads().count < count { try await Task.sleep(for: .milliseconds(100)) }
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(reloads().isEmpty, "no reload before the file changes")
        try publish("..v2", "controller: {interval: 200ms, idle_interval: 1h}\nworkloads:\n  - {name: batch, match: [batch.slice], demote: allowed}\n")
        try await waitFor(1)
        try publish("..v3", "controller: {interval: 200ms}\nbogus: true\n")
        try await waitFor(2)
        #expect(reloads() == [true, false])
        #expect(process.isRunning, "a refused version leaves tierd running on the last good policy")
    }

    /// The built daemon, started as systemd starts a Type=notify unit with a watchdog: READY=1 after
    /// its first cycle, then WATCHDOG=1 at half the interval, and STOPPING=1 on SIGTERM.
    @Test func theDaemonSaysReadyFeedsTheWatchdogAndSaysStopping() async throws {
        let name = "@tierd-daemon-\(UUID().uuidString.prefix(8))"
        let manager = try ServiceManagerStub(name)
        let tree = try FixtureTree()
        let root = tree.root
        try "controller: {interval: 200ms}\nworkloads: []\n".write(toFile: root + "/tierd.yaml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = Self.binDirectory.appendingPathComponent("tierd")
        process.arguments = ["--config", root + "/tierd.yaml", "--root", root, "--dry-run", "--socket", "none", "--log-level", "error"]
        process.environment = ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ready = manager.receive()
        #expect(ready?.hasPrefix("READY=1\nSTATUS=managing ") == true, "\(ready ?? "nothing")")
        #expect(manager.receive() == "WATCHDOG=1")
        #expect(manager.receive() == "WATCHDOG=1")
        process.terminate()
        process.waitUntilExit()
        var last: String?
        while let message = manager.receive() { last = message; if message == "STOPPING=1" { break } }
        #expect(last == "STOPPING=1")
    }
}
