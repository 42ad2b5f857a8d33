import Testing
import TierCore

/// The fall rate the watch feeds the planner: over its window, never negative, forgetting old samples.
struct FreeMemoryTrendTests {
    static let mib: UInt64 = 1 << 20
    static let signedMiB: Int64 = 1 << 20
    func at(_ ms: Int) -> Instant { Instant(.milliseconds(ms)) }

    @Test func theRateSpansTheWindow() {
        var trend = FreeMemoryTrend(window: .milliseconds(500))
        #expect(trend.fallRate == 0 && trend.projectedFree(after: .seconds(1)) == nil)
        trend.add(freeBytes: 200 * Self.signedMiB, at: at(0))
        #expect(trend.fallRate == 0)
        for step in 1...5 { trend.add(freeBytes: (200 - Int64(step) * 10) * Self.signedMiB, at: at(step * 100)) }
        // 50 MiB in 0.5 s.
        #expect(trend.fallRate == 100 * Self.mib)
        #expect(trend.projectedFree(after: .seconds(1)) == 50 * Self.mib)
        #expect(trend.projectedFree(after: .seconds(2)) == 0)
    }

    @Test func anEndedFallIsForgottenAfterTheWindow() {
        var trend = FreeMemoryTrend(window: .milliseconds(500))
        trend.add(freeBytes: 300 * Self.signedMiB, at: at(0))
        trend.add(freeBytes: 100 * Self.signedMiB, at: at(200))
        #expect(trend.fallRate == 1000 * Self.mib)
        for ms in stride(from: 300, through: 900, by: 100) { trend.add(freeBytes: 100 * Self.signedMiB, at: at(ms)) }
        #expect(trend.fallRate == 0)
        #expect(trend.samples.count <= 7)
    }

    /// An allocation that ends stops counting once free DRAM has held for `settle`, well inside
    /// the window; one flat sample interval in a fall does not end it.
    @Test func aFallEndsOnceFreeHoldsForTheSettleTime() {
        var trend = FreeMemoryTrend(window: .milliseconds(500), settle: .milliseconds(200))
        for step in 0...3 { trend.add(freeBytes: (300 - Int64(step) * 10) * Self.signedMiB, at: at(step * 100)) }
        trend.add(freeBytes: 270 * Self.signedMiB, at: at(400))
        #expect(!trend.fallEnded && trend.fallRate == 75 * Self.mib)
        trend.add(freeBytes: 260 * Self.signedMiB, at: at(500))
        trend.add(freeBytes: 260 * Self.signedMiB, at: at(600))
        #expect(!trend.fallEnded && trend.fallRate > 0)
        trend.add(freeBytes: 261 * Self.signedMiB, at: at(700))
        #expect(trend.fallEnded && trend.fallRate == 0)
        #expect(trend.projectedFree(after: .seconds(1)) == 261 * Self.mib)
        trend.add(freeBytes: 250 * Self.signedMiB, at: at(800))
        #expect(!trend.fallEnded && trend.fallRate > 0)
    }

    /// A move counted when it returned is spread over the samples taken while it ran, by the
    /// time each was into it; samples before and after it are left as they are.
    @Test func aCountedMoveIsSpreadOverTheSamplesItRanThrough() {
        var trend = FreeMemoryTrend(window: .seconds(1))
        for ms in stride(from: 0, through: 500, by: 100) { trend.add(freeBytes: 300 * Self.signedMiB, at: at(ms)) }
        trend.spread(-30 * Self.signedMiB, from: at(100), to: at(400))
        #expect(trend.samples.map { $0.freeBytes / Self.signedMiB } == [300, 300, 290, 280, 300, 300])
        trend.spread(10 * Self.signedMiB, from: at(300), to: at(300))
        #expect(trend.samples.map { $0.freeBytes / Self.signedMiB } == [300, 300, 290, 280, 300, 300])
    }

    @Test func risingFreeIsNoFall() {
        var trend = FreeMemoryTrend()
        trend.add(freeBytes: 100 * Self.signedMiB, at: at(0))
        trend.add(freeBytes: 180 * Self.signedMiB, at: at(100))
        #expect(trend.fallRate == 0)
        #expect(trend.projectedFree(after: .seconds(1)) == 180 * Self.mib)
    }

    @Test func anInstantFromBeforeTheLastRestartsTheTrend() {
        var trend = FreeMemoryTrend()
        trend.add(freeBytes: 300 * Self.signedMiB, at: at(1000))
        trend.add(freeBytes: 100 * Self.signedMiB, at: at(500))
        #expect(trend.samples.count == 1 && trend.fallRate == 0)
    }

    /// The watch's samples are free DRAM less what tierd itself freed: they may be negative.
    @Test func aNegativeLevelStillFalls() {
        var trend = FreeMemoryTrend()
        trend.add(freeBytes: -100 * Self.signedMiB, at: at(0))
        trend.add(freeBytes: -150 * Self.signedMiB, at: at(100))
        #expect(trend.fallRate == 500 * Self.mib)
        #expect(trend.projectedFree(after: .seconds(1)) == 0)
    }
}
