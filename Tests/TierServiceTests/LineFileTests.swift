import Foundation
import Synchronization
import Testing
import TierCore
import TierLinux
import TierService
import TierTestSupport

/// The journal's and the audit log's file: rotation, reopening, and a full disk, on the real file system.
struct LineFileTests {
    let dir = NSTemporaryDirectory() + "tierd-lines-\(UUID().uuidString.prefix(8))"

    init() throws { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func itRotatesBySizeKeepingThree() throws {
        let path = dir + "/audit.jsonl"
        let file = try LineFile(path: path, maxBytes: 100, keep: 3)
        for index in 0..<20 { #expect(file.append("line \(index) " + String(repeating: "x", count: 30))) }
        // 40-byte lines, at most 100 bytes a file: two lines each; the newest in `path`.
        #expect(lines(path).last?.hasPrefix("line 19 ") == true)
        #expect(lines(path + ".1").last?.hasPrefix("line 17 ") == true)
        #expect(FileManager.default.fileExists(atPath: path + ".3"))
        #expect(!FileManager.default.fileExists(atPath: path + ".4"))
        for name in [path, path + ".1", path + ".2", path + ".3"] { #expect(lines(name).count == 2, "\(name)") }
    }

    @Test func reopenFollowsLogrotate() throws {
        let path = dir + "/journal.jsonl"
        let file = try LineFile(path: path)
        file.append("before")
        #expect(rename(path, path + ".old") == 0)
        file.append("still to the moved file")
        file.reopen()
        file.append("after")
        #expect(lines(path + ".old") == ["before", "still to the moved file"])
        #expect(lines(path) == ["after"])
    }

    @Test func aFullDiskIsCountedAndSaidOnce() throws {
        let said = Mutex<[String]>([])
        let file = try LineFile(path: "/dev/full") { message in said.withLock { $0.append(message) } }
        #expect(!file.append("one"))
        #expect(!file.append("two"))
        #expect(file.failedWrites == 2)
        #expect(said.withLock { $0.count } == 1)
        #expect(said.withLock { $0.first?.contains("No space left on device") } == true)
    }

    @Test func aFileThatCannotBeOpenedIsAClearError() {
        #expect { try LineFile(path: dir + "/missing/dir/file") } throws: { "\($0)".contains("missing/dir/file: No such file or directory") }
    }

    /// One audit line per task move of a real tick, with what the operator asks of it.
    @Test func theAuditLogHasALinePerTaskMove() async throws {
        let (_, _, controller) = try await StatusOutputTests.tick()
        let outcomes = try #require(controller.lastReport?.outcomes)
        let lines = AuditLog.lines(outcomes, tick: 1, time: "2026-12-01T00:00:00Z")
        #expect(lines.count == outcomes.reduce(0) { $0 + $1.tasks.count })
        let firstLine = try #require(lines.first)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(firstLine.utf8)) as? [String: Any])
        for key in ["time", "tick", "group", "pid", "from", "to", "mode", "asked", "moved", "result", "pages_left", "action_pages_left_by_error"] {
            #expect(first[key] != nil, "\(key)")
        }
        let moved = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.reduce(0) { $0 + ($1["moved"] as? Int ?? 0) }
        #expect(UInt64(moved) == controller.ledger.total(.demote) + controller.ledger.total(.promote))
    }

    /// The daemon with its journal and audit log on a full disk keeps managing memory, counts the
    /// lines it lost and says so once.
    @Test func theDaemonSurvivesAFullDisk() async throws {
        let endpoint = try LocalEndpointTests()
        let daemon = try endpoint.startDaemon(["--journal", "/dev/full", "--audit-log", "/dev/full"], output: true)
        defer { if daemon.process.isRunning { daemon.process.terminate() }; daemon.process.waitUntilExit() }
        try await endpoint.waitUntilReady()
        // Two policy changes: two reload events the journal cannot write.
        for version in 1...2 {
            try "controller: {interval: 200ms}\nworkloads: []\n# v\(version)\n".write(toFile: endpoint.tree.root + "/tierd.yaml", atomically: true, encoding: .utf8)
            try await Task.sleep(for: .milliseconds(600))
        }
        #expect(daemon.process.isRunning)
        let metrics = try LocalHTTPClient.get("/metrics", from: .unix(path: endpoint.socket, mode: 0o600))
        let text = String(decoding: metrics.body, as: UTF8.self)
        let journalFailures = text.split(separator: "\n").first { $0.hasPrefix("tierd_log_write_failures_total{file=\"journal\"}") }
        #expect(journalFailures.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 > 0 } == true, "\(journalFailures ?? "none")")
        daemon.process.terminate()
        daemon.process.waitUntilExit()
        let said = String(decoding: daemon.output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(said.components(separatedBy: "journal: /dev/full: cannot write").count == 2, "\(said)")
    }
}
