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

/// A kernel setting tierd owns while `controller.numa_balancing` asks it to: set at start and on
/// every reload, the value it found kept on disk first, put back when no longer asked for, at stop,
/// and at the next start after a tierd that died.
public enum KernelSetting: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case numaBalancing = "kernel.numa_balancing"
    case promoteRateLimit = "kernel.numa_balancing_promote_rate_limit_MBps"

    public var description: String { rawValue }

    /// The values `settings` asks for; a setting it does not name stays as the host has it.
    public static func wanted(by settings: ControllerSettings) -> [KernelSetting: String] {
        switch settings.numaBalancing {
        case .leave: [:]
        case .off: [.numaBalancing: "0"]
        case .tiering: [.numaBalancing: "2", .promoteRateLimit: String(max(1, settings.hotPromotionRate >> 20))]
        }
    }
}

extension KernelMovers {
    /// The movers as they are once tierd has set what `settings` asks for: what start-up warns about.
    public func owned(by settings: ControllerSettings) -> KernelMovers {
        var movers = self
        if let mode = KernelSetting.wanted(by: settings)[.numaBalancing].flatMap({ Int($0) }) { movers.numaBalancing = mode }
        return movers
    }
}
