import Foundation
import Testing
import TierLinux

/// The hand-over between a demotion making room and the promotion waiting for it, on real threads.
struct RoomPacerTests {
    @Test func aPromotionWaitsForRoomThenTakesNoMoreThanWasMade() async {
        let pacer = RoomPacer()
        let taken = await withCheckedContinuation { (done: CheckedContinuation<UInt64, Never>) in
            Thread.detachNewThread { done.resume(returning: pacer.take(upTo: 100)) }
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 0.05)
                pacer.roomMade(30)
            }
        }
        #expect(taken == 30)
        #expect(pacer.state.granted == 30)
    }

    @Test func roomIsHandedOutOnceAndFinishingEndsTheWait() {
        let pacer = RoomPacer()
        pacer.roomMade(50)
        #expect(pacer.take(upTo: 20) == 20)
        #expect(pacer.take(upTo: 100) == 30)
        pacer.finish()
        // Nothing left and nothing more coming: no wait, nothing granted.
        #expect(pacer.take(upTo: 100) == 0)
    }

    @Test func finishingWakesAWaitingPromotion() async {
        let pacer = RoomPacer()
        let taken = await withCheckedContinuation { (done: CheckedContinuation<UInt64, Never>) in
            Thread.detachNewThread { done.resume(returning: pacer.take(upTo: 100)) }
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 0.05)
                pacer.finish()
            }
        }
        #expect(taken == 0)
    }
}
