import Foundation

/// Tells the promotion waiting for DRAM that the demotion beside it has freed some.
///
/// Within a tick, the demotion that makes room for protected pages and their promotion run on
/// two threads side by side. The demotion reports each batch it moved; the promotion moves a
/// batch whenever its target nodes have room above the reserve it must leave (read from the
/// kernel, which also counts what other allocations took meanwhile), and otherwise waits here
/// for the next batch. It so starts after the first batch instead of after the whole demotion,
/// and never runs ahead into DRAM that is not free yet.
public final class RoomPacer: @unchecked Sendable {
    private let condition = NSCondition()
    private var made: UInt64 = 0
    private var finished = false
    private var promotionsDone = false

    public init() {}

    /// The demotion side: `bytes` more left DRAM.
    public func roomMade(_ bytes: UInt64) {
        guard bytes > 0 else { return }
        condition.lock()
        made += bytes
        condition.broadcast()
        condition.unlock()
    }

    /// The demotion side: no more room will be made this tick.
    public func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The promotion side: waits until more than `seen` bytes have been made, or the demotions
    /// are done; returns the bytes made so far and whether they are done.
    public func waitForProgress(after seen: UInt64) -> (made: UInt64, finished: Bool) {
        condition.lock()
        defer { condition.unlock() }
        while made <= seen && !finished { condition.wait() }
        return (made, finished)
    }

    /// The promotion side: no promotion waits for room any more this tick.
    public func promotionsFinished() {
        condition.lock()
        promotionsDone = true
        condition.unlock()
    }

    /// Whether a promotion may still take room the demotions make: until then, a demotion that
    /// would yield to the next tick goes on, or the promotion would be left short.
    public var promotionsWaiting: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !promotionsDone
    }

    /// Bytes made so far, and whether the demotions are done.
    public var state: (made: UInt64, finished: Bool) {
        condition.lock()
        defer { condition.unlock() }
        return (made, finished)
    }
}
