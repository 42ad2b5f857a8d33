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
        /// Pages demoted to the slow tier (every `pgdemote_*`: the kernel's own reclaim of the
        /// group during the request made room too).
        public var demotedPages: UInt64
        /// Pages the request's own reclaim took and did not demote: discarded page cache or
        /// swapped memory.
        public var lostPages: UInt64
        /// Pages the kernel's other reclaim (kswapd's, khugepaged's, and an allocating task's where
        /// the kernel counts `memory.reclaim` apart from it) took
        /// from the group during the request and did not demote: the kernel's doing, not the
        /// request's, reported beside it.
        public var kernelLostPages: UInt64
        public init(demotedPages: UInt64, lostPages: UInt64, kernelLostPages: UInt64 = 0) {
            self.demotedPages = demotedPages; self.lostPages = lostPages; self.kernelLostPages = kernelLostPages
        }
    }

    /// Counters are cumulative; a counter that went down (a group recreated under the same name)
    /// counts as zero. A request's own reclaim is counted on the proactive path where the kernel
    /// has one (7.3 has it, 6.12 not) and on the direct path before, where an allocating task's
    /// direct reclaim of the group counts with it.
    public static func step(before: MemoryStat, after: MemoryStat) -> Step {
        func delta(_ a: UInt64, _ b: UInt64) -> UInt64 { b >= a ? b - a : 0 }
        func lost(_ path: KeyPath<MemoryStat, MemoryStat.ReclaimPath>) -> UInt64 {
            let stolen = delta(before[keyPath: path].stolen, after[keyPath: path].stolen)
            return stolen - min(stolen, delta(before[keyPath: path].demoted, after[keyPath: path].demoted))
        }
        let demoted = delta(before.pagesDemotedByKernel + before.pagesDemotedProactively,
                            after.pagesDemotedByKernel + after.pagesDemotedProactively)
        let requestPath: KeyPath<MemoryStat, MemoryStat.ReclaimPath> = after.countsProactiveReclaim ? \.proactive : \.direct
        let otherPaths: [KeyPath<MemoryStat, MemoryStat.ReclaimPath>] = [\.background, \.khugepaged]
            + (after.countsProactiveReclaim ? [\.direct] : [])
        return Step(demotedPages: demoted, lostPages: lost(requestPath), kernelLostPages: otherPaths.reduce(0) { $0 + lost($1) })
    }
}
