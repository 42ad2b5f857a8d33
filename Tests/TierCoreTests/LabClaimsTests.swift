import Testing
import TierTestSupport

/// The lab's claims reject a series that breaks them once, and missing data, so that a lab pass
/// means what it says.
struct LabClaimsTests {
    func series(_ shares: [Double]) -> [LabClaims.Sample] {
        shares.enumerated().map { LabClaims.Sample(seconds: Double($0.offset) * 0.5, share: $0.element) }
    }

    @Test func aShareReachedAndHeldPassesWithItsTime() {
        let (verdict, reached) = LabClaims.reachesAndHolds(series([0.2, 0.6, 0.99, 0.995, 1.0]), threshold: 0.99)
        #expect(verdict.ok && reached == 1.0)
    }

    @Test func oneSampleBelowTheShareAfterReachingItFails() {
        let (verdict, reached) = LabClaims.reachesAndHolds(series([0.2, 0.99, 1.0, 0.985, 1.0]), threshold: 0.99)
        #expect(!verdict.ok && reached == 0.5)
        #expect(verdict.detail.contains("98.5%"))
    }

    @Test func aShareNeverReachedOrNotSampledFails() {
        #expect(!LabClaims.reachesAndHolds(series([0.2, 0.98]), threshold: 0.99).0.ok)
        #expect(!LabClaims.reachesAndHolds(series([1.0]), threshold: 0.99).0.ok)
        #expect(!LabClaims.reachesAndHolds([], threshold: 0.99).0.ok)
    }

    @Test func aShareReachedWithinItsTimePassesAndLateOrUnsampledFails() {
        // Reports every 2 s from the phase change: 95 % at 8 s is in time for 10 s, not for 6 s.
        let samples = [0.0, 0.3, 0.6, 0.8, 0.95, 1.0].enumerated().map { LabClaims.Sample(seconds: Double($0.offset) * 2, share: $0.element) }
        let (inTime, reached) = LabClaims.reachesWithin(samples, threshold: 0.9, within: 10)
        #expect(inTime.ok && reached == 8)
        let (late, never) = LabClaims.reachesWithin(samples, threshold: 0.9, within: 6)
        #expect(!late.ok && never == nil && late.detail.contains("80.0%"))
        // Reports from before the change, or only after the limit, are no evidence.
        let outside = [LabClaims.Sample(seconds: -1, share: 1), LabClaims.Sample(seconds: 12, share: 1)]
        #expect(!LabClaims.reachesWithin(outside, threshold: 0.9, within: 10).0.ok)
    }

    @Test func bytesThatNeverGrowBeyondAPagePass() {
        #expect(LabClaims.neverGrows([900 << 20, 600 << 20, 600 << 20 + 4096, 0, 0]).ok)
    }

    @Test func oneGrowthBeyondAPageFails() {
        let verdict = LabClaims.neverGrows([900 << 20, 600 << 20, 600 << 20 + 8192, 0])
        #expect(!verdict.ok && verdict.detail.contains("1 increases"))
        #expect(LabClaims.neverGrows([0, 8192], allowance: 8192).ok)
        #expect(!LabClaims.neverGrows([0]).ok && !LabClaims.neverGrows([]).ok)
    }

    @Test func bytesThatMustStayAtALimitFailOnOneSampleAbove() {
        #expect(LabClaims.alwaysAtMost([0, 0, 0], limit: 0).ok)
        let verdict = LabClaims.alwaysAtMost([0, 4096, 0, 8192], limit: 0)
        #expect(!verdict.ok && verdict.detail.contains("2 above 0 bytes; the first at sample 2"))
        #expect(LabClaims.alwaysAtMost([4096, 4096], limit: 4096).ok)
        #expect(!LabClaims.alwaysAtMost([0], limit: 0).ok && !LabClaims.alwaysAtMost([], limit: 0).ok)
    }

    @Test func bytesThatRiseMustComeBackWithinTheTimeAndBeBackAtTheEnd() {
        let repaired = LabClaims.returnsWithin([(0, 0), (0.5, 4096), (1, 8192), (1.5, 0), (2, 0)], limit: 0, seconds: 5)
        #expect(repaired.ok && repaired.detail.contains("1 rises above 0 bytes") && repaired.detail.contains("1.0 s (8192 bytes)"))
        #expect(LabClaims.returnsWithin([(0, 0), (1, 0)], limit: 0, seconds: 5).ok)
        let slow = LabClaims.returnsWithin([(0, 0), (1, 4096), (7, 4096), (7.5, 0)], limit: 0, seconds: 5)
        #expect(!slow.ok && slow.detail.contains("lasted 6.5 s"))
        let left = LabClaims.returnsWithin([(0, 0), (1, 4096)], limit: 0, seconds: 5)
        #expect(!left.ok && left.detail.contains("at the end"))
        #expect(!LabClaims.returnsWithin([(0, 0)], limit: 0, seconds: 5).ok)
    }

    @Test func aRatioGoalNeedsEveryPairAndItsMedian() {
        #expect(LabClaims.meetsRatio([1.01, 0.99, 1.02, 0.97, 1.0], pairs: 5, goal: 0.95).ok)
        #expect(!LabClaims.meetsRatio([1.01, 0.90, 0.93, 0.94, 1.0], pairs: 5, goal: 0.95).ok)
        #expect(!LabClaims.meetsRatio([1.01, 0.99, 1.02, 0.97], pairs: 5, goal: 0.95).ok)
        #expect(!LabClaims.meetsRatio([], pairs: 0, goal: 0.95).ok)
        #expect(!LabClaims.meetsRatio([1.0, .nan, 1.0], pairs: 3, goal: 0.95).ok)
    }

    @Test func aTimeWithinTheFloorNeedsTheFloor() {
        #expect(LabClaims.withinFloor(reached: 7, floor: 4).ok)
        #expect(!LabClaims.withinFloor(reached: 12, floor: 4).ok)
        #expect(LabClaims.withinFloor(reached: 2.3, floor: 0.2).ok && !LabClaims.withinFloor(reached: 2.5, floor: 0.2).ok)
        #expect(!LabClaims.withinFloor(reached: 3, floor: nil).ok)
        #expect(!LabClaims.withinFloor(reached: nil, floor: 4).ok)
        #expect(!LabClaims.withinFloor(reached: 3, floor: .nan).ok)
        #expect(LabClaims.withinFloor(reached: 1.5, floor: 0).ok && !LabClaims.withinFloor(reached: 2.5, floor: 0).ok)
    }

    @Test func aShareHeldThroughoutFailsOnOneLowSampleAndOnMissingData() {
        #expect(LabClaims.holdsThroughout(series([0.97, 1.0, 0.99, 0.95]), threshold: 0.95).ok)
        let broken = LabClaims.holdsThroughout(series([1.0, 1.0, 0.94, 1.0]), threshold: 0.95)
        #expect(!broken.ok && broken.detail.contains("94.0%") && broken.detail.contains("1 of 4"))
        #expect(!LabClaims.holdsThroughout(series([1.0]), threshold: 0.95).ok)
        #expect(!LabClaims.holdsThroughout([], threshold: 0.95).ok)
    }
}
