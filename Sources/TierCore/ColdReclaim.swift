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

    /// The group's counters a request is judged by, read before and after it: its `memory.stat`
    /// and its `memory.swap.current` (nil where the kernel has no swap accounting).
    public struct Counters: Sendable, Equatable {
        public var stat: MemoryStat
        public var swapBytes: UInt64?
        public init(stat: MemoryStat, swapBytes: UInt64?) { self.stat = stat; self.swapBytes = swapBytes }
    }

    /// What one request did to the group.
    public struct Step: Sendable, Equatable {
        /// Pages demoted to the slow tier (every `pgdemote_*`: the kernel's own reclaim of the
        /// group during the request made room too).
        public var demotedPages: UInt64
        /// Pages the request's own reclaim took and did not demote, while the group's pages went
        /// to swap or swap could not be seen: what makes its workload demote by `task`.
        public var lostPages: UInt64
        /// Pages the request's own reclaim took and did not demote with no page of the group
        /// swapped: the slow tier's page cache, dropped there (see ``step(before:after:)``).
        public var slowTierDroppedPages: UInt64
        /// Pages the kernel's other reclaim (kswapd's, khugepaged's, and an allocating task's where
        /// the kernel counts `memory.reclaim` apart from it) took
        /// from the group during the request and did not demote: the kernel's doing, not the
        /// request's, reported beside it.
        public var kernelLostPages: UInt64
        public init(demotedPages: UInt64, lostPages: UInt64, slowTierDroppedPages: UInt64 = 0, kernelLostPages: UInt64 = 0) {
            self.demotedPages = demotedPages; self.lostPages = lostPages
            self.slowTierDroppedPages = slowTierDroppedPages; self.kernelLostPages = kernelLostPages
        }
    }

    /// Counters are cumulative; a counter that went down (a group recreated under the same name)
    /// counts as zero. A request's own reclaim is counted on the proactive path where the kernel
    /// has one (7.3 has it, 6.12 not) and on the direct path before, where an allocating task's
    /// direct reclaim of the group counts with it.
    ///
    /// A `memory.reclaim` request reclaims from every node of the group. On a node that demotes it
    /// keeps what it fails to demote (a proactive reclaim does not fall back to dropping there,
    /// from 6.3); on the slow tier, which has nowhere to demote to, it drops page cache and swaps
    /// anonymous memory as any reclaim does, and even an anon-only argument leaves page cache to
    /// it on a node with no swap (6.12's multi-generational LRU). Measured on 6.12: of 201 file
    /// pages a request took from DRAM, all were demoted and 189 then dropped from the slow node
    /// (docs/DESIGN.md). So what the request took and did not demote is the slow tier's: dropped
    /// page cache while none of the group went to swap, which costs a re-read and is reported;
    /// swapped memory (or a loss where swap cannot be seen) is lost.
    public static func step(before: Counters, after: Counters) -> Step {
        func delta(_ a: UInt64, _ b: UInt64) -> UInt64 { b >= a ? b - a : 0 }
        func lost(_ path: KeyPath<MemoryStat, MemoryStat.ReclaimPath>) -> UInt64 {
            let stolen = delta(before.stat[keyPath: path].stolen, after.stat[keyPath: path].stolen)
            return stolen - min(stolen, delta(before.stat[keyPath: path].demoted, after.stat[keyPath: path].demoted))
        }
        let demoted = delta(before.stat.pagesDemotedByKernel + before.stat.pagesDemotedProactively,
                            after.stat.pagesDemotedByKernel + after.stat.pagesDemotedProactively)
        let requestPath: KeyPath<MemoryStat, MemoryStat.ReclaimPath> = after.stat.countsProactiveReclaim ? \.proactive : \.direct
        let otherPaths: [KeyPath<MemoryStat, MemoryStat.ReclaimPath>] = [\.background, \.khugepaged]
            + (after.stat.countsProactiveReclaim ? [\.direct] : [])
        let requestLost = lost(requestPath)
        let kernelLost = otherPaths.reduce(0) { $0 + lost($1) }
        let swapped: Bool
        if let swapBefore = before.swapBytes, let swapAfter = after.swapBytes {
            swapped = swapAfter > swapBefore || after.stat.pagesSwappedOut > before.stat.pagesSwappedOut
        } else {
            swapped = true
        }
        return swapped
            ? Step(demotedPages: demoted, lostPages: requestLost, kernelLostPages: kernelLost)
            : Step(demotedPages: demoted, lostPages: 0, slowTierDroppedPages: requestLost, kernelLostPages: kernelLost)
    }
}
