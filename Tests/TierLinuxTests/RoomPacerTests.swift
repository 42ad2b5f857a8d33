import Foundation
import Testing
import TierLinux

/// The signal from a demotion making room to the promotion waiting for it, on real threads.
struct RoomPacerTests {
    /// What a promotion waiting from nothing seen sees, once `demotion` has run on another thread.
    func waitingPromotion(of pacer: RoomPacer, while demotion: @escaping @Sendable () -> Void) async -> (made: UInt64, finished: Bool) {
        await withCheckedContinuation { done in
            Thread.detachNewThread { done.resume(returning: pacer.waitForProgress(after: 0)) }
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 0.05)
                demotion()
            }
        }
    }

    @Test func aWaitingPromotionWakesWhenTheDemotionMovesABatch() async {
        let pacer = RoomPacer()
        let progress = await waitingPromotion(of: pacer) { pacer.roomMade(30) }
        #expect(progress.made == 30 && !progress.finished)
    }

    @Test func progressAlreadyMadeDoesNotWait() {
        let pacer = RoomPacer()
        pacer.roomMade(50)
        #expect(pacer.waitForProgress(after: 20).made == 50)
        pacer.finish()
        // Done, and nothing beyond what was seen: no wait.
        #expect(pacer.waitForProgress(after: 50) == (50, true))
    }

    @Test func finishingWakesAWaitingPromotion() async {
        let pacer = RoomPacer()
        let progress = await waitingPromotion(of: pacer) { pacer.finish() }
        #expect(progress.made == 0 && progress.finished)
    }
}
