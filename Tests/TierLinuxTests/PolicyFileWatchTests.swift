import Foundation
import Testing
import TierLinux

/// The policy file's versions, as a ConfigMap volume and an editor make them, on the real file system.
struct PolicyFileWatchTests {
    let dir = NSTemporaryDirectory() + "tierd-watch-\(UUID().uuidString)"
    let fm = FileManager.default

    /// Lays the files out as the kubelet does: `..data` → a timestamped directory, and
    /// `tierd.yaml` → `..data/tierd.yaml`; an update writes a new directory and renames a new
    /// `..data` symlink over the old one.
    func publish(_ text: String, version: Int) throws {
        let versionDir = dir + "/..2026_12_01_\(version)"
        try fm.createDirectory(atPath: versionDir, withIntermediateDirectories: true)
        try text.write(toFile: versionDir + "/tierd.yaml", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: dir + "/..data_tmp", withDestinationPath: "..2026_12_01_\(version)")
        #expect(rename(dir + "/..data_tmp", dir + "/..data") == 0)
        if !fm.fileExists(atPath: dir + "/tierd.yaml") {
            try fm.createSymbolicLink(atPath: dir + "/tierd.yaml", withDestinationPath: "..data/tierd.yaml")
        }
    }

    @Test func aConfigMapUpdateIsOneNewVersion() throws {
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        try publish("workloads: []\n", version: 1)
        var watch = PolicyFileWatch(path: dir + "/tierd.yaml")
        let atStart = watch.changed()
        #expect(!atStart)
        // Same length and, within the file system's clock, possibly the same time: the inode differs.
        try publish("workloads: []\n", version: 2)
        let updated = watch.changed()
        #expect(updated)
        let again = watch.changed()
        #expect(!again)
    }

    @Test func anEditInPlaceIsANewVersionAndAMissingFileIsNot() throws {
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let path = dir + "/tierd.yaml"
        try "workloads: []\n".write(toFile: path, atomically: false, encoding: .utf8)
        var watch = PolicyFileWatch(path: path)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("# tuned\n".utf8))
        try handle.close()
        let changed = watch.changed()
        #expect(changed)
        try fm.removeItem(atPath: path)
        let unchanged = watch.changed()
        #expect(!unchanged)
    }
}
