import Foundation

/// A reproducible random source for property tests (SplitMix64): the same seed gives the same
/// cases on every machine, so a failure names a seed that replays it.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `chance`.
    public mutating func chance(_ chance: Double) -> Bool { Double.random(in: 0..<1, using: &self) < chance }

    /// A random subset of `items`, each kept with probability `keep`.
    public mutating func subset<T>(of items: [T], keep: Double) -> [T] { items.filter { _ in chance(keep) } }
}

/// How many generated cases a property test runs and from which seed: `TIERD_PROPERTY_SEED` and
/// `TIERD_PROPERTY_CASES` override the defaults, to replay a failure or to search longer.
public struct PropertyRun: Sendable {
    public let seed: UInt64
    public let cases: Int

    public init(defaultSeed: UInt64, defaultCases: Int, environment: [String: String] = ProcessInfo.processInfo.environment) {
        seed = environment["TIERD_PROPERTY_SEED"].flatMap { UInt64($0) } ?? defaultSeed
        cases = environment["TIERD_PROPERTY_CASES"].flatMap { Int($0) } ?? defaultCases
    }

    /// The generator for case `index`: each case is replayable alone from the seed and its index.
    public func generator(forCase index: Int) -> SeededGenerator {
        SeededGenerator(seed: seed &+ UInt64(index) &* 0x2545_F491_4F6C_DD1D)
    }
}
