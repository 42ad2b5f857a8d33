import Foundation
import Testing
import TierCore
import TierLinux
import TierService
import TierTestSupport

/// Every tierctl command's output, text and JSON, byte for byte from the built binary, on a
/// fixture tree built on the captured guest: a batch job in a full DRAM (demoted for the
/// watermark), a protected job with slow pages (promoted back), one group left alone. The fixture
/// directory shows as `<root>`. Golden files in Tests/Fixtures/golden/tierctl;
/// `TIERD_UPDATE_GOLDEN=1 swift test` rewrites them. (`status` and `top`'s frame are the status
/// goldens, rendered in-process from a tick that moved memory.)
@Suite(.serialized) struct TierctlGoldenTests {
    static let mib: UInt64 = 1 << 20
    static let golden = FixtureTree.fixtures + "/golden/tierctl"
    static let policy = """
    controller: {interval: 200ms}
    workloads:
      - {name: db, match: [test.slice/db], demote: never, promote: true}
      - {name: batch, match: [test.slice/batch], demote: allowed, priority: 10, dram_floor: 16MiB}
      - {name: guarded, match: [test.slice/guarded], demote: allowed, pressure_guard: {some_avg10: 10%}}
    """

    let tree: FixtureTree
    let config: String
    let socket: String

    init() throws {
        tree = try FixtureTree()
        tree.setNode(0, freeBytes: 60 * Self.mib)
        tree.addGroup("test.slice/batch", pids: [800], anon: [0: 600 * Self.mib])
        tree.addTask(800, group: "test.slice/batch", pagesPerNode: [0: 153_600])
        tree.addGroup("test.slice/db", pids: [900], anon: [0: 100 * Self.mib, 1: 40 * Self.mib])
        tree.addTask(900, group: "test.slice/db", pagesPerNode: [0: 25_600, 1: 10_240])
        tree.addGroup("test.slice/guarded", pids: [950], anon: [0: 50 * Self.mib], someAvg10: 0.4)
        tree.addTask(950, group: "test.slice/guarded", pagesPerNode: [0: 12_800])
        config = tree.root + "/tierd.yaml"
        try Self.policy.write(toFile: config, atomically: true, encoding: .utf8)
        socket = tree.root + "/tierd.sock"
    }

    func tierctl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let (status, output) = try runCommand([TierdExecutableTests.binDirectory.appendingPathComponent("tierctl").path] + arguments)
        return (status, output.replacingOccurrences(of: tree.root, with: "<root>"))
    }

    func compare(_ output: String, golden name: String) throws {
        let path = Self.golden + "/" + name
        if ProcessInfo.processInfo.environment["TIERD_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(atPath: Self.golden, withIntermediateDirectories: true)
            try output.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOfFile: path, encoding: .utf8)
        #expect(output == expected, "differs from \(name); TIERD_UPDATE_GOLDEN=1 rewrites it")
    }

    var offline: [String] { ["--offline", "--config", config, "--root", tree.root] }

    @Test func planAndExplainOffline() throws {
        for (arguments, name) in [(["plan"], "plan"), (["explain", "test.slice/batch"], "explain-batch"),
                                  (["explain", "test.slice/db"], "explain-db"), (["explain", "test.slice/guarded"], "explain-guarded")] {
            let text = try tierctl(arguments + offline)
            #expect(text.status == 0, "\(arguments): \(text.output)")
            try compare(text.output, golden: name + ".txt")
            let json = try tierctl(arguments + offline + ["--json"])
            #expect(json.status == 0)
            try compare(json.output, golden: name + ".json")
        }
        let plan: PlanDocument = try StatusBoard.decodeJSON(Array(try tierctl(["plan", "--json"] + offline).output.utf8))
        #expect(plan.actions.map(\.detail.direction).contains("demote") && plan.actions.map(\.detail.direction).contains("promote"))
        #expect(plan.skips.contains { $0.code == "pressure_guard" })
    }

    @Test func validate() throws {
        let bad = FixtureTree.fixtures + "/bad-policy.yaml"
        let copy = tree.root + "/bad.yaml"
        try FileManager.default.copyItem(atPath: bad, toPath: copy)
        let text = try tierctl(["validate", config, copy])
        #expect(text.status == 2)
        try compare(text.output, golden: "validate.txt")
        let json = try tierctl(["validate", "--json", config, copy])
        #expect(json.status == 2)
        try compare(json.output, golden: "validate.json")
        #expect(try tierctl(["validate", config]).status == 0)
    }

    /// The commands that ask a running (dry-run) daemon.
    @Test func daemonCommands() async throws {
        let daemon = Process()
        daemon.executableURL = TierdExecutableTests.binDirectory.appendingPathComponent("tierd")
        daemon.arguments = ["--config", config, "--dry-run", "--root", tree.root, "--log-level", "error", "--socket", socket]
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer { daemon.terminate(); daemon.waitUntilExit() }
        for _ in 0..<100 {
            if let answer = try? LocalHTTPClient.get("/readyz", from: .unix(path: socket, mode: 0o600)), answer.status == 200 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let at = ["--socket", socket]
        let cases: [([String], String, Int32)] = [
            (["demote", "test.slice/batch", "--bytes", "64MiB"], "demote", 0),
            (["promote", "test.slice/db"], "promote", 0),
            (["demote", "test.slice/db"], "demote-refused", 1),
            (["health"], "health", 0),
            (["health", "--ready"], "health-ready", 0),
        ]
        for (arguments, name, expected) in cases {
            let text = try tierctl(arguments + at)
            #expect(text.status == expected, "\(arguments): \(text.output)")
            try compare(text.output, golden: name + ".txt")
            let json = try tierctl(arguments + at + ["--json"])
            #expect(json.status == expected, "\(arguments) --json: \(json.output)")
            // Request ids count up: the JSON goldens hold the second of each pair.
            try compare(json.output, golden: name + ".json")
        }
        let frames = try tierctl(["top", "--json", "--count", "2", "--interval", "0.2"] + at)
        #expect(frames.status == 0)
        let lines = frames.output.split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines { #expect(try StatusBoard.decode(Array(line.utf8)).groups.contains { $0.path == "/test.slice/batch" }) }
        // plan and explain through the daemon: the same document as offline, the daemon being idle in a dry run.
        let viaDaemon = try tierctl(["explain", "test.slice/guarded", "--json"] + at)
        let alone = try tierctl(["explain", "test.slice/guarded", "--json"] + offline)
        #expect(viaDaemon.status == 0 && viaDaemon.output == alone.output, "\(viaDaemon.output)\n---\n\(alone.output)")
    }
}
