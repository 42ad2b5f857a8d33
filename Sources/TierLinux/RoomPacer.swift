import Foundation

/// Hands the DRAM a demotion frees to the promotion waiting for it, as it is freed.
///
/// Within a tick, the demotion that makes room for protected pages and their promotion run on
/// two threads side by side: the demotion reports each batch it moved, the promotion moves a
/// batch only once that much room has been made. The promotion so starts after the first batch
/// instead of after the whole demotion, and never runs ahead into DRAM that is not free yet.
public final class RoomPacer: @unchecked Sendable {
    private let condition = NSCondition()
    private var made: UInt64 = 0
    private var granted: UInt64 = 0
    private var finished = false

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

    /// The promotion side: waits until room not yet handed out exists, and takes up to `bytes`
    /// of it. Zero once the demotions are done and their room is all taken.
    public func take(upTo bytes: UInt64) -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        while made <= granted && !finished { condition.wait() }
        let grant = min(bytes, made - min(made, granted))
        granted += grant
        return grant
    }

    /// Bytes made so far, and whether the demotions are done.
    public var state: (made: UInt64, granted: UInt64, finished: Bool) {
        condition.lock()
        defer { condition.unlock() }
        return (made, granted, finished)
    }
}
