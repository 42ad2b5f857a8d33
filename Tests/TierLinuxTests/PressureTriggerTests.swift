import Foundation
import Testing
import TierCore
import TierLinux
import TierTestSupport

/// The PSI trigger watcher's bookkeeping. Arming itself needs the kernel's cgroup2 files and is
/// checked in the lab (`pressure-guard`: a wake-up, and a SIGHUP that changes the trigger); here,
/// on a fixture tree, every arm is refused and said so, and a new trigger is taken.
struct PressureTriggerTests {
    @Test func theTriggerTextIsTheKernelsMicroseconds() {
        #expect(PressureTriggerWatcher.trigger(stall: .milliseconds(150), window: .seconds(1)) == "some 150000 1000000")
        #expect(PressureTriggerWatcher.trigger(stall: .milliseconds(200), window: .seconds(2)) == "some 200000 2000000")
    }

    @Test func aChangedTriggerIsTakenAndASameOneIsNot() {
        let watcher = PressureTriggerWatcher(files: RootedHostFiles(root: FixtureTree.capturedGuest), stall: .milliseconds(150), window: .seconds(1))
        defer { watcher.stop() }
        #expect(!watcher.configure(stall: .milliseconds(150), window: .seconds(1)))
        #expect(watcher.configure(stall: .milliseconds(200), window: .seconds(2)))
        #expect(watcher.trigger == "some 200000 2000000")
    }

    /// A fixture's memory.pressure is a plain file: written a trigger, it would lose its figures.
    @Test func aPlainFileIsNeverArmed() throws {
        let tree = try FixtureTree()
        let before = tree.read("/sys/fs/cgroup/batch.slice/memory.pressure")
        let watcher = PressureTriggerWatcher(files: RootedHostFiles(root: tree.root), stall: .milliseconds(150), window: .seconds(1))
        defer { watcher.stop() }
        let failed = watcher.watch([CgroupPath("batch.slice"): "/sys/fs/cgroup/batch.slice"])
        #expect(failed[CgroupPath("batch.slice")] == "not a cgroup2 file: no trigger")
        #expect(watcher.watchedCount == 0)
        #expect(tree.read("/sys/fs/cgroup/batch.slice/memory.pressure") == before)
    }
}
