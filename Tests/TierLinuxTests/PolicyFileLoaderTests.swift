import Foundation
import Glibc
import Testing
import TierCore
import TierLinux

/// The policy file a root daemon obeys, on the real file system: only a regular file that no one
/// but root (or tierd's own user) owns or can write, in directories no one else can write to.
struct PolicyFileLoaderTests {
    let dir = NSTemporaryDirectory() + "tierd-loader-\(UUID().uuidString)"
    let policy = "workloads: []\n"

    init() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
    }

    func write(_ name: String, mode: mode_t = 0o644) throws -> String {
        let path = dir + "/" + name
        try policy.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, mode)
        return path
    }

    /// A directory below the test's own, with `mode`; the policy written into it as `file` if given.
    @discardableResult
    func makeDirectory(_ name: String, mode: mode_t, file: String? = nil) throws -> String {
        let path = dir + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, mode)
        if let file {
            try policy.write(toFile: path + "/" + file, atomically: false, encoding: .utf8)
            chmod(path + "/" + file, 0o644)
        }
        return path
    }

    func refusal(_ path: String) -> PolicyError? {
        do { _ = try PolicyFileLoader.load(path: path); return nil } catch let error as PolicyError { return error } catch { return nil }
    }

    @Test func aPrivateRegularFileLoads() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: Never.self) { try PolicyFileLoader.load(path: try write("tierd.yaml")) }
    }

    /// Before the fix, open(2) of a FIFO for reading waited for a writer: tierd hung at start or on
    /// a reload. The load runs on a thread of its own; past five seconds a writer unblocks it and
    /// the test fails.
    @Test func aFIFOIsRefusedAtOnceInsteadOfBlocking() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/tierd.yaml"
        #expect(mkfifo(fifo, 0o600) == 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var error: PolicyError?
        Thread.detachNewThread {
            error = refusal(fifo)
            done.signal()
        }
        let answered = done.wait(timeout: .now() + 5) == .success
        if !answered {
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)
            if writer >= 0 { close(writer) }
            done.wait()
        }
        #expect(answered, "loading a FIFO blocked")
        #expect(error?.message.contains("not a regular file (a FIFO)") == true, "\(String(describing: error))")
        #expect(error?.file == fifo && error?.line == 1)
    }

    @Test func aDirectoryIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(refusal(dir)?.message.contains("not a regular file (a directory)") == true)
    }

    @Test func aFileOthersCanWriteIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for mode: mode_t in [0o664, 0o646] {
            let error = refusal(try write("tierd.yaml", mode: mode))
            #expect(error?.message == "the file is writable by group or others (mode \(String(mode, radix: 8))): run chmod go-w on it")
        }
    }

    @Test func aDirectoryOthersCanWriteIsRefusedUnlessSticky() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try write("tierd.yaml")
        chmod(dir, 0o777)
        #expect(refusal(path)?.message == "its directory \(dir) is writable by group or others (mode 777): run chmod go-w on it")
        // Sticky, as /tmp and a ConfigMap volume's root are: others cannot replace a file they do not own.
        chmod(dir, 0o1777)
        #expect(refusal(path) == nil)
    }

    @Test func aSymlinkIsJudgedByWhatItNames() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let loose = try makeDirectory("open", mode: 0o777, file: "real.yaml")
        try FileManager.default.createSymbolicLink(atPath: dir + "/tierd.yaml", withDestinationPath: "open/real.yaml")
        #expect(refusal(dir + "/tierd.yaml")?.message.hasPrefix("its directory \(loose) is writable by group or others") == true)
    }

    /// Before the fix only the directories of the file the link named were judged: a link lying in
    /// a directory anyone can write to was obeyed, and anyone could point it at another file.
    @Test func aSymlinkInADirectoryOthersCanWriteIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try write("real.yaml")
        let loose = try makeDirectory("open", mode: 0o777)
        try FileManager.default.createSymbolicLink(atPath: loose + "/tierd.yaml", withDestinationPath: "../real.yaml")
        #expect(refusal(loose + "/tierd.yaml")?.message.hasPrefix("its directory \(loose) is writable by group or others") == true)
        // A chain through a trusted directory loads: as a ConfigMap volume's `..data` link does.
        try makeDirectory("..2026_12_07", mode: 0o755, file: "tierd.yaml")
        try FileManager.default.createSymbolicLink(atPath: dir + "/..data", withDestinationPath: "..2026_12_07")
        try FileManager.default.createSymbolicLink(atPath: dir + "/policy.yaml", withDestinationPath: "..data/tierd.yaml")
        chmod(dir, 0o1777)
        #expect(refusal(dir + "/policy.yaml") == nil)
        #expect(refusal(dir + "/./open/../policy.yaml") == nil)
    }

    @Test(.enabled(if: geteuid() == 0, "chown needs root"))
    func aFileOwnedByAnotherUserIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try write("tierd.yaml")
        #expect(chown(path, 4242, 4242) == 0)
        #expect(refusal(path)?.message == "the file is owned by uid 4242: a policy is obeyed only if it and its directories belong to root")
        #expect(chown(path, 0, 0) == 0)
        #expect(chown(dir, 4242, 4242) == 0)
        #expect(refusal(path)?.message.hasPrefix("its directory \(dir) is owned by uid 4242") == true)
    }
}
