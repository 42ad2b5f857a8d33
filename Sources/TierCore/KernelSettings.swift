/// What tierd does with the kernel's NUMA balancing (`kernel.numa_balancing`) while it runs
/// (`controller.numa_balancing`).
public enum NumaBalancingChoice: String, Sendable, Equatable, CaseIterable {
    /// The host's setting stays: tierd says what it will undo (start-up warning, `tierctl explain`).
    case leave
    /// Off while tierd runs: NUMA balancing's pull toward the CPUs' node undoes every demotion.
    case off
    /// The memory tiering mode (2) while tierd runs: the kernel promotes every group's hot pages
    /// from the slow tier back to DRAM at `controller.hot_promotion_rate`, found by its hint faults
    /// (reads and writes alike), and leaves DRAM pages alone. This is how an opted-in job whose
    /// working set moved gets its newly hot pages back; the kernel keeps to cpusets and
    /// mempolicies there (the faulting task allocates the page), and tierd shields protected
    /// workloads from the demotion it may set off.
    case tiering
}

/// What tierd does with the multi-generational LRU's batched clearing of accessed bits (bit
/// 0x0002 of `/sys/kernel/mm/lru_gen/enabled`: page-table walks while aging, look-around while
/// evicting) while it runs (`controller.lru_gen_batch_clearing`).
/// How tierd finds an opted-in workload's hot pages on the slow tier, to bring them back to DRAM
/// (`controller.hot_pages`).
public enum HotPageFinder: String, Sendable, Equatable, CaseIterable {
    /// Pages written since tierd last looked: the kernel's soft-dirty bits, cleared through
    /// `/proc/PID/clear_refs` and read from `/proc/PID/pagemap` (pages only read are not seen).
    case written
    /// tierd brings back no page of an opted-in workload.
    case off
}

public enum BatchClearingChoice: String, Sendable, Equatable, CaseIterable {
    case leave
    /// Cleared while tierd runs: the LRU checks each page through the reverse map alone.
    case off
}

/// A kernel setting tierd owns while the policy asks it to: set at start and on every reload,
/// the value it found kept on disk first, put back when no longer asked for, at stop, and at the
/// next start after a tierd that died.
public enum KernelSetting: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case numaBalancing = "kernel.numa_balancing"
    case promoteRateLimit = "kernel.numa_balancing_promote_rate_limit_MBps"
    /// The multi-generational LRU's feature mask (`/sys/kernel/mm/lru_gen/enabled`).
    case lruGenFeatures = "lru_gen.enabled"

    public var description: String { rawValue }

    /// The multi-generational LRU's bit for batched clearing of accessed bits.
    public static let lruGenBatchClearing: UInt64 = 0x0002

    /// The values `settings` asks for; a setting it does not name stays as the host has it.
    public static func wanted(by settings: ControllerSettings) -> [KernelSetting: SettingValue] {
        var wanted: [KernelSetting: SettingValue] = [:]
        switch settings.numaBalancing {
        case .leave: break
        case .off: wanted[.numaBalancing] = "0"
        case .tiering:
            wanted[.numaBalancing] = "2"
            wanted[.promoteRateLimit] = .exactly(String(max(1, settings.hotPromotionRate >> 20)))
        }
        if settings.lruGenBatchClearing == .off { wanted[.lruGenFeatures] = .clearing(lruGenBatchClearing) }
        return wanted
    }
}

/// The value tierd wants a kernel setting to have: a fixed text, or the value found with some
/// bits of a mask cleared (the kernel writes masks in hex, "0x0007").
public enum SettingValue: Sendable, Equatable, ExpressibleByStringLiteral, CustomStringConvertible {
    case exactly(String)
    case clearing(UInt64)

    public init(stringLiteral value: String) { self = .exactly(value) }

    public var description: String {
        switch self {
        case .exactly(let text): text
        case .clearing(let bits): "without " + Self.hex(bits)
        }
    }

    /// What to write over the value found (`current`, trimmed): nil when it already is what is
    /// wanted; `.failure` when `current` is not a mask.
    public func write(over current: String) -> Result<String?, SettingValueError> {
        switch self {
        case .exactly(let text): return .success(current == text ? nil : text)
        case .clearing(let bits):
            guard let found = Self.mask(current) else { return .failure(SettingValueError(found: current)) }
            return .success(found & bits == 0 ? nil : Self.hex(found & ~bits))
        }
    }

    /// A mask as the kernel prints and parses it: "0x0007", "7".
    static func mask(_ text: String) -> UInt64? {
        text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

/// A kernel setting that should be a bit mask and was not.
public struct SettingValueError: Error, Equatable, CustomStringConvertible {
    public var found: String
    public init(found: String) { self.found = found }
    public var description: String { "'\(found)' is not a bit mask" }
}

extension KernelMovers {
    /// The movers as they are once tierd has set what `settings` asks for: what start-up warns about.
    public func owned(by settings: ControllerSettings) -> KernelMovers {
        var movers = self
        if case .exactly(let text) = KernelSetting.wanted(by: settings)[.numaBalancing], let mode = Int(text) { movers.numaBalancing = mode }
        return movers
    }
}
