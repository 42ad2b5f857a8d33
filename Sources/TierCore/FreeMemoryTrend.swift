/// DRAM free as sampled between and during ticks, and how fast it is falling.
///
/// A job that allocates at emulated-memory speed fills the `high`–`low` band in well under one
/// tick; by the time a tick sees free below `low`, the kernel is already placing its pages on
/// slow nodes. The fall rate lets the controller start demoting on the way down instead (see
/// `ControllerSettings.dramLookahead`). Pure: the service feeds it samples and instants.
public struct FreeMemoryTrend: Sendable, Equatable {
    /// One reading of free DRAM.
    public struct Sample: Sendable, Equatable {
        public var at: Instant
        /// Signed: the watch adds tierd's own moves to free DRAM, and its demotions may exceed it.
        public var freeBytes: Int64
        public init(at: Instant, freeBytes: Int64) { self.at = at; self.freeBytes = freeBytes }
    }

    /// How far back the rate looks: long enough to span several samples, short enough to
    /// forget an allocation that has ended.
    public let window: Duration
    /// How long free DRAM must hold before a fall counts as ended: the window alone kept an ended
    /// allocation's rate for up to half a second, and the lookahead demoted for a fall that never
    /// came (1.19× the least the protected job's start asked for, in cold mode on 6.12).
    public let settle: Duration
    public private(set) var samples: [Sample] = []

    public init(window: Duration = .milliseconds(500), settle: Duration = .milliseconds(200)) {
        self.window = window; self.settle = settle
    }

    public mutating func add(freeBytes: Int64, at now: Instant) {
        samples.removeAll { $0.at > now }
        samples.append(Sample(at: now, freeBytes: freeBytes))
        // The oldest sample kept is the last one at or before the window's start, so that the
        // rate always spans the whole window once enough samples exist.
        if let firstInside = samples.firstIndex(where: { now - $0.at <= window }), firstInside > 1 {
            samples.removeFirst(firstInside - 1)
        }
    }

    /// Spreads `bytes` over the samples taken between `start` and `end`, in proportion to the
    /// time each was into that span: what one of tierd's own moves did to free DRAM as it ran,
    /// counted only when it returned at `end`. Without it a 32 MiB `cold` request read as free
    /// rising while it ran and then falling by 32 MiB at once, a fall the lookahead demoted for.
    public mutating func spread(_ bytes: Int64, from start: Instant, to end: Instant) {
        guard end > start else { return }
        let span = (end - start).seconds
        for index in samples.indices where samples[index].at > start && samples[index].at < end {
            samples[index].freeBytes += Int64(Double(bytes) * ((samples[index].at - start).seconds / span))
        }
    }

    /// Bytes per second by which free DRAM fell across the window; 0 while it holds or rises,
    /// once it has held for `settle`, or before two samples exist.
    public var fallRate: UInt64 {
        guard let first = samples.first, let last = samples.last, last.at > first.at,
              first.freeBytes > last.freeBytes, !fallEnded else { return 0 }
        return UInt64(Double(first.freeBytes - last.freeBytes) / (last.at - first.at).seconds)
    }

    /// Whether free DRAM fell no further over the last `settle`.
    public var fallEnded: Bool {
        guard let last = samples.last, let before = samples.last(where: { last.at - $0.at >= settle }) else { return false }
        return last.freeBytes >= before.freeBytes
    }

    /// The last sample `lookahead` on if it keeps falling at `fallRate` (never below zero).
    public func projectedFree(after lookahead: Duration) -> UInt64? {
        samples.last.map { projectedFree(from: UInt64(max(0, $0.freeBytes)), after: lookahead) }
    }

    /// `free` less `lookahead` of the fall. The samples need not be free DRAM itself: the watch's
    /// are free DRAM with tierd's own moves taken back out, whose fall is the allocations' alone.
    public func projectedFree(from free: UInt64, after lookahead: Duration) -> UInt64 {
        let fall = UInt64(Double(fallRate) * lookahead.seconds)
        return free - min(free, fall)
    }
}
