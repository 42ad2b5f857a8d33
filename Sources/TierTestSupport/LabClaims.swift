/// The lab's claims about what it measured, as pure functions over the series it sampled, so
/// that unit tests can feed each one a series that breaks it. Every claim fails on missing data:
/// a series too short to judge, a floor never measured, a pair never timed.
public enum LabClaims {
    /// A claim's outcome and the evidence the report prints.
    public struct Verdict: Equatable, Sendable {
        public let ok: Bool
        public let detail: String
        public init(ok: Bool, detail: String) { self.ok = ok; self.detail = detail }
        static func fail(_ detail: String) -> Verdict { Verdict(ok: false, detail: detail) }
    }

    /// One placement report: seconds since the scenario's start, and the share asked about.
    public struct Sample: Equatable, Sendable {
        public let seconds: Double
        public let share: Double
        public init(seconds: Double, share: Double) { self.seconds = seconds; self.share = share }
    }

    /// Fewer samples than this cannot show a share held, nor bytes that did not grow.
    public static let minimumSamples = 2

    /// The share reaches `threshold` and stays at or above it at every later sample.
    /// - Returns: the verdict and when the threshold was first reached.
    public static func reachesAndHolds(_ samples: [Sample], threshold: Double) -> (Verdict, reachedAt: Double?) {
        guard samples.count >= minimumSamples else { return (.fail("\(samples.count) placement reports: too few to judge"), nil) }
        guard let first = samples.firstIndex(where: { $0.share >= threshold }) else {
            return (.fail(percent("final share", samples.last!.share) + ", never \(percent(threshold))"), nil)
        }
        let reached = samples[first].seconds
        if let drop = samples[first...].first(where: { $0.share < threshold }) {
            return (.fail(String(format: "reached at %.1f s, then %@ at %.1f s", reached, percent(drop.share), drop.seconds)), reached)
        }
        let after = samples.count - first - 1
        return (Verdict(ok: true, detail: String(format: "after %.1f s, and held at all %d reports after", reached, after)), reached)
    }

    /// The share is at or above `threshold` at every sample: an opted-in job's hot set kept in DRAM.
    public static func holdsThroughout(_ samples: [Sample], threshold: Double) -> Verdict {
        guard samples.count >= minimumSamples else { return .fail("\(samples.count) placement reports: too few to judge") }
        if let low = samples.min(by: { $0.share < $1.share }), low.share < threshold {
            let below = samples.filter { $0.share < threshold }.count
            return .fail(String(format: "%@ at %.1f s; %d of %d reports below %@", percent("lowest", low.share), low.seconds, below, samples.count, percent(threshold)))
        }
        let low = samples.map(\.share).min()!
        return Verdict(ok: true, detail: "\(percent("lowest", low)) over \(samples.count) reports")
    }

    /// The share reaches `threshold` at a report at most `within` seconds after the event the
    /// samples are timed from (a phase change): the newly hot pages back in DRAM in time.
    public static func reachesWithin(_ samples: [Sample], threshold: Double, within: Double) -> (Verdict, reachedAt: Double?) {
        let inTime = samples.filter { $0.seconds >= 0 && $0.seconds <= within }
        guard let best = inTime.map(\.share).max() else {
            return (.fail(String(format: "no placement report within %.0f s", within)), nil)
        }
        guard let hit = inTime.first(where: { $0.share >= threshold }) else {
            return (.fail(String(format: "%@ within %.0f s over %d reports, never %@", percent("at most", best), within, inTime.count, percent(threshold))), nil)
        }
        return (Verdict(ok: true, detail: String(format: "%@ after %.1f s", percent(hit.share), hit.seconds)), hit.seconds)
    }

    /// Bytes on a node never grow by more than `allowance` from one sample to the next: one page
    /// unless the scenario says why it allows more.
    public static func neverGrows(_ samples: [UInt64], allowance: UInt64 = 4096) -> Verdict {
        guard samples.count >= minimumSamples else { return .fail("\(samples.count) samples of memory.numa_stat: too few to judge") }
        let increases = zip(samples.indices, zip(samples, samples.dropFirst())).filter { $0.1.1 > $0.1.0 + allowance }
        guard let first = increases.first else {
            return Verdict(ok: true, detail: "\(samples.count) samples of memory.numa_stat, no growth beyond \(allowance) bytes")
        }
        return .fail("\(samples.count) samples, \(increases.count) increases beyond \(allowance) bytes; the first at sample \(first.0 + 1): \(first.1.0) -> \(first.1.1) bytes")
    }

    /// Every sample is at most `limit` bytes (a group's bytes on a slow node that must stay off it).
    public static func alwaysAtMost(_ samples: [UInt64], limit: UInt64) -> Verdict {
        guard samples.count >= minimumSamples else { return .fail("\(samples.count) samples of memory.numa_stat: too few to judge") }
        let over = samples.indices.filter { samples[$0] > limit }
        guard let first = over.first else {
            return Verdict(ok: true, detail: "\(samples.count) samples of memory.numa_stat, none above \(limit) bytes")
        }
        return .fail("\(samples.count) samples, \(over.count) above \(limit) bytes; the first at sample \(first + 1): \(samples[first]) bytes, at most \(samples.max()!)")
    }

    /// Every time the bytes rise above `limit` they are back at or below it within `seconds`
    /// (each excursion timed from its first sample above), and the last sample is within it: what
    /// a repair must achieve where it cannot prevent.
    public static func returnsWithin(_ samples: [(seconds: Double, bytes: UInt64)], limit: UInt64, seconds: Double) -> Verdict {
        guard samples.count >= minimumSamples else { return .fail("\(samples.count) samples of memory.numa_stat: too few to judge") }
        var excursions: [(start: Double, length: Double, peak: UInt64)] = []
        var open: (start: Double, peak: UInt64)?
        for sample in samples {
            if sample.bytes > limit {
                open = (open?.start ?? sample.seconds, max(open?.peak ?? 0, sample.bytes))
            } else if let started = open {
                excursions.append((started.start, sample.seconds - started.start, started.peak))
                open = nil
            }
        }
        if let started = open { return .fail("\(samples.count) samples; still \(samples.last!.bytes) bytes above \(limit) at the end, since \(String(format: "%.1f", started.start)) s") }
        let listed = excursions.map { String(format: "%.1f s (%llu bytes)", $0.length, $0.peak) }.joined(separator: ", ")
        guard let long = excursions.first(where: { $0.length > seconds }) else {
            return Verdict(ok: true, detail: "\(samples.count) samples, \(excursions.count) rises above \(limit) bytes, each back within \(seconds) s" + (listed.isEmpty ? "" : ": " + listed))
        }
        return .fail(String(format: "%d samples; a rise at %.1f s lasted %.1f s, beyond %.0f s: ", samples.count, long.start, long.length, seconds) + listed)
    }

    /// The median of paired ratios meets `goal`, with every pair measured.
    public static func meetsRatio(_ ratios: [Double], pairs expected: Int, goal: Double) -> Verdict {
        guard ratios.count == expected, expected > 0 else { return .fail("\(ratios.count) of \(expected) pairs measured") }
        guard ratios.allSatisfy(\.isFinite) else { return .fail("a ratio that is not a number: \(ratios)") }
        let median = ratios.sorted()[ratios.count / 2]
        let listed = ratios.map { String(format: "%.2f", $0) }.joined(separator: " ")
        return Verdict(ok: median >= goal, detail: String(format: "median of %d paired ratios %.2f against a goal of %.2f (pairs %@)",
                                                           ratios.count, median, goal, listed))
    }

    /// The time to a placement goal within `factor` × the floor measured in the same boot, or,
    /// when almost nothing was left to move (a floor near zero), within `factor` × floor plus
    /// `ticks` seconds of controller ticks. No time, or no floor, fails.
    public static func withinFloor(reached: Double?, floor: Double?, factor: Double = 2, ticks: Double = 2) -> Verdict {
        guard let reached else { return .fail("the goal was never reached") }
        guard let floor, floor.isFinite, floor >= 0 else { return .fail(String(format: "%.1f s, but no floor was measured", reached)) }
        guard floor > 0 else {
            return Verdict(ok: reached <= ticks, detail: String(format: "%.1f s with nothing left to move (allowed: %.0f ticks)", reached, ticks))
        }
        let ratio = reached / floor
        if ratio <= factor { return Verdict(ok: true, detail: String(format: "%.1f s vs floor %.1f s: ratio %.2f", reached, floor, ratio)) }
        let allowed = factor * floor + ticks
        return Verdict(ok: reached <= allowed, detail: String(format: "%.1f s vs floor %.1f s: ratio %.2f; allowed %.1f s (%.0f× floor + %.0f ticks)",
                                                               reached, floor, ratio, allowed, factor, ticks))
    }

    static func percent(_ share: Double) -> String { String(format: "%.1f%%", share * 100) }
    static func percent(_ label: String, _ share: Double) -> String { label + " " + percent(share) }
}
