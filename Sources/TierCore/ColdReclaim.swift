/// The pure half of a `cold` demotion through a group's `memory.reclaim`: what to write, and what
/// one request did, read from the group's `memory.stat` before and after it.
public enum ColdReclaim {
    /// Bytes asked of the kernel per write: a request runs until the kernel has reclaimed them, so
    /// smaller ones let tierd check for discards, the deadline and the budget in between.
    public static let requestBytes: UInt64 = 32 << 20

    /// The line written to `memory.reclaim`: the byte count, then the argument if any.
    public static func request(bytes: UInt64, argument: String?) -> String {
        argument.map { "\(bytes) \($0)" } ?? String(bytes)
    }

    /// What one request did to the group.
    public struct Step: Sendable, Equatable {
        /// Pages demoted to the slow tier (every `pgdemote_*`).
        public var demotedPages: UInt64
        /// Pages reclaim took and did not demote: discarded page cache or swapped memory.
        public var lostPages: UInt64
        public init(demotedPages: UInt64, lostPages: UInt64) { self.demotedPages = demotedPages; self.lostPages = lostPages }
    }

    /// Counters are cumulative; a counter that went down (a group recreated under the same name)
    /// counts as zero.
    public static func step(before: MemoryStat, after: MemoryStat) -> Step {
        func delta(_ a: UInt64, _ b: UInt64) -> UInt64 { b >= a ? b - a : 0 }
        let demoted = delta(before.pagesDemotedByKernel + before.pagesDemotedProactively,
                            after.pagesDemotedByKernel + after.pagesDemotedProactively)
        let stolen = delta(before.pagesStolen, after.pagesStolen)
        return Step(demotedPages: demoted, lostPages: stolen - min(stolen, demoted))
    }
}
