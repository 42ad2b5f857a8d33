import Testing
import TierCore
import TierLinux
import TierTestSupport

/// The watch reads the fast nodes' MemFree from a captured kernel tree and alerts once, when
/// armed, as free DRAM is about to cross the low watermark.
struct FreeMemoryWatchTests {
    static let mib: UInt64 = 1 << 20
    let tree: FixtureTree
    let watch: FreeMemoryWatch

    init() throws {
        tree = try FixtureTree()
        watch = FreeMemoryWatch(collector: try SnapshotCollector(files: RootedHostFiles(root: tree.root)),
                                period: .milliseconds(100), lookahead: .seconds(1))
        watch.track(nodes: [0])
    }

    func sample(free: UInt64, at ms: Int) {
        tree.setNode(0, freeBytes: free * Self.mib)
        watch.sample(at: Instant(.milliseconds(ms)))
    }

    @Test func alertsOnceWhenAFallWillCrossLowWithinTheLookahead() async {
        watch.arm(below: 100 * Self.mib)
        sample(free: 400, at: 0)
        sample(free: 390, at: 100)   // 100 MiB/s: 290 MiB in a second, above low
        #expect(watch.fallRate == 100 * Self.mib)
        sample(free: 350, at: 200)   // 250 MiB/s: 100 MiB in a second, not below
        sample(free: 300, at: 300)   // 333 MiB/s: below low within the second
        sample(free: 250, at: 400)   // disarmed by the first alert
        watch.stop()
        var alerts: [FreeMemoryWatch.Alert] = []
        for await alert in watch.alerts { alerts.append(alert) }
        #expect(alerts.count == 1)
        #expect(alerts.first?.freeBytes == 300 * Self.mib)
        #expect(alerts.first.map { $0.fallRate / Self.mib } == 333)
    }

    /// A watch of node 0 told of tierd's own moves.
    func countingWatch(_ own: OwnMoves) throws -> FreeMemoryWatch {
        let counted = FreeMemoryWatch(collector: try SnapshotCollector(files: RootedHostFiles(root: tree.root)),
                                      period: .milliseconds(100), lookahead: .seconds(1), ownMoves: own)
        counted.track(nodes: [0])
        return counted
    }

    /// tierd promoting 50 MiB in 100 ms makes free DRAM fall at 500 MiB/s: a watch that does not
    /// know its own promotions reads that as an allocation (and the next tick demotes for it).
    /// Told what tierd promoted, the watch sees no fall, yet a real allocation beside it still shows.
    @Test func tierdsOwnPromotionIsNotAFall() async throws {
        let own = OwnMoves()
        let counted = try countingWatch(own)
        defer { counted.stop() }
        for watched in [watch, counted] {
            tree.setNode(0, freeBytes: 400 * Self.mib)
            watched.sample(at: Instant(.milliseconds(0)))
        }
        own.add(50 * Self.mib, .promote)
        tree.setNode(0, freeBytes: 350 * Self.mib)
        for watched in [watch, counted] { watched.sample(at: Instant(.milliseconds(100))) }
        #expect(watch.fallRate == 500 * Self.mib)
        #expect(counted.fallRate == 0)
        // An allocation of 20 MiB in the next 100 ms: 100 MiB/s over the 200 ms window.
        tree.setNode(0, freeBytes: 330 * Self.mib)
        counted.sample(at: Instant(.milliseconds(200)))
        #expect(counted.fallRate == 100 * Self.mib)
        // Its alert judges the real free DRAM: 330 MiB less 100 MiB in the lookahead.
        counted.arm(below: 240 * Self.mib)
        tree.setNode(0, freeBytes: 320 * Self.mib)
        counted.sample(at: Instant(.milliseconds(300)))
        #expect(counted.fallRate == 100 * Self.mib)
        counted.stop()
        var alerts: [FreeMemoryWatch.Alert] = []
        for await alert in counted.alerts { alerts.append(alert) }
        #expect(alerts == [FreeMemoryWatch.Alert(freeBytes: 320 * Self.mib, fallRate: 100 * Self.mib)])
    }

    /// tierd demoting 50 MiB in 100 ms while a job allocates 50 MiB leaves free DRAM flat: a watch
    /// that counted only promotions saw no fall, and the alert that starts a demotion early for a
    /// fast allocation never came once tierd stopped. Demotions larger than free DRAM stay signed.
    @Test func tierdsOwnDemotionDoesNotHideAnAllocation() async throws {
        let own = OwnMoves()
        let counted = try countingWatch(own)
        defer { counted.stop() }
        own.add(900 * Self.mib, .demote)
        for watched in [watch, counted] {
            tree.setNode(0, freeBytes: 400 * Self.mib)
            watched.sample(at: Instant(.milliseconds(0)))
        }
        own.add(50 * Self.mib, .demote)
        for watched in [watch, counted] { watched.sample(at: Instant(.milliseconds(100))) }
        #expect(watch.fallRate == 0)
        #expect(counted.fallRate == 500 * Self.mib)
        #expect(own.netIntoDRAM == -950 * Int64(Self.mib))
    }

    /// A `cold` request frees DRAM as it runs and is counted when it returns: read as it was,
    /// free DRAM rose while it ran and fell by all of it at its count, and a window starting on
    /// the rise measured a fall nearly twice the allocation's. Spread over the samples it ran
    /// through, a job allocating 100 MiB/s throughout reads as 100 MiB/s.
    @Test func tierdsOwnMoveIsSpreadOverTheSamplesItRanThrough() async throws {
        let own = OwnMoves()
        let origin = ContinuousClock.now
        let counted = FreeMemoryWatch(collector: try SnapshotCollector(files: RootedHostFiles(root: tree.root)),
                                      period: .milliseconds(100), lookahead: .seconds(1), origin: origin, ownMoves: own)
        counted.track(nodes: [0])
        defer { counted.stop() }
        func sample(rawMiB: UInt64, at ms: Int) {
            tree.setNode(0, freeBytes: rawMiB * Self.mib)
            counted.sample(at: Instant(.milliseconds(ms)))
        }
        // 48 MiB demoted from 50 to 250 ms: 12 MiB freed by 100 ms, 36 MiB by 200 ms.
        sample(rawMiB: 400, at: 0)
        sample(rawMiB: 390 + 12, at: 100)
        sample(rawMiB: 380 + 36, at: 200)
        own.add(48 * Self.mib, .demote, since: origin + .milliseconds(50), until: origin + .milliseconds(250))
        for (index, ms) in [300, 400, 500, 600, 700].enumerated() { sample(rawMiB: 370 - UInt64(index) * 10 + 48, at: ms) }
        #expect((99 * Self.mib...101 * Self.mib).contains(counted.fallRate))
        #expect(own.takeSpans().isEmpty)
    }

    @Test func freeAlreadyBelowLowAlertsWithoutAFall() async {
        watch.arm(below: 100 * Self.mib)
        sample(free: 80, at: 0)
        watch.stop()
        var alerts: [FreeMemoryWatch.Alert] = []
        for await alert in watch.alerts { alerts.append(alert) }
        #expect(alerts == [FreeMemoryWatch.Alert(freeBytes: 80 * Self.mib, fallRate: 0)])
    }

    @Test func aDisarmedWatchOnlyMeasures() async {
        watch.arm(below: 100 * Self.mib)
        watch.disarm()
        sample(free: 400, at: 0)
        sample(free: 50, at: 100)
        #expect(watch.fallRate == 3500 * Self.mib)
        watch.stop()
        var count = 0
        for await _ in watch.alerts { count += 1 }
        #expect(count == 0)
    }
}
