/// A kernel release as `uname -r` prints it ("6.12.95+deb12-amd64", "7.3.4+deb13-amd64"): what a
/// kernel can do that older ones could not is decided from it.
public struct KernelRelease: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }

    /// The leading "MAJOR.MINOR" of the release text; nil if it has none.
    public init?(_ text: String) {
        let numbers = text.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard numbers.count >= 2, let major = Int(numbers[0]),
              let minor = Int(numbers[1].prefix { $0.isASCII && $0.isNumber }) else { return nil }
        self.init(major: major, minor: minor)
    }

    public static func < (a: KernelRelease, b: KernelRelease) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
    public var description: String { "\(major).\(minor)" }

    /// Reclaim-driven demotion keeps to the cgroup's `cpuset.mems.effective` from this release on.
    public static let demotionRespectsCpusets = KernelRelease(major: 6, minor: 16)
    /// A cgroup's `memory.stat` counts its demotions (`pgdemote_*`) from this release on, which a
    /// `cold` demotion is verified by.
    public static let countsDemotionsPerGroup = KernelRelease(major: 6, minor: 12)
}

/// The kernel's own page movers as tierd found them. Each can undo what tierd placed: NUMA
/// balancing pulls demoted pages back toward the CPUs, kernel demotion moves any group's cold pages
/// to the slow tier (protected ones included), DAMON schemes migrate whatever they are told to.
/// Read at start and on every reload, reported once, and shown by `tierctl explain`.
public struct KernelMovers: Sendable, Equatable, Codable {
    /// `kernel.numa_balancing`: 0 off, bit 0 toward the CPUs' node, bit 1 memory tiering; nil: not built or unreadable.
    public var numaBalancing: Int?
    /// `/sys/kernel/mm/numa/demotion_enabled`; nil: not built or unreadable.
    public var demotionEnabled: Bool?
    /// DAMON contexts (kdamonds) whose state is "on"; nil: DAMON's sysfs interface is absent.
    public var runningDamonContexts: Int?
    /// `uname -r`, as read.
    public var release: String?

    public init(numaBalancing: Int? = nil, demotionEnabled: Bool? = nil, runningDamonContexts: Int? = nil, release: String? = nil) {
        self.numaBalancing = numaBalancing; self.demotionEnabled = demotionEnabled
        self.runningDamonContexts = runningDamonContexts; self.release = release
    }

    /// Whether the kernel's demotion keeps to cpusets; false when the release is unknown.
    public var demotionRespectsCpusets: Bool {
        release.flatMap(KernelRelease.init).map { $0 >= .demotionRespectsCpusets } ?? false
    }

    /// One mover that is on, what it will undo, and whom it concerns.
    public struct Finding: Sendable, Equatable, Codable, CustomStringConvertible {
        /// A short stable name: numa_balancing, numa_balancing_tiering, kernel_demotion, damon.
        public var code: String
        /// It can demote or move opt-out (protected) workloads' pages.
        public var affectsProtected: Bool
        /// It can bring opted-in workloads' demoted pages back to DRAM, or move them.
        public var affectsOptedIn: Bool
        public var text: String
        public var description: String { text }
    }

    /// Every mover that is on, in a fixed order; empty when none is (or none could be read).
    public var findings: [Finding] {
        var found: [Finding] = []
        if let mode = numaBalancing, mode & 1 != 0 {
            found.append(Finding(code: "numa_balancing", affectsProtected: false, affectsOptedIn: true, text:
                "NUMA balancing is on (kernel.numa_balancing=\(mode)): it migrates pages toward the node of the CPU that touches them, so it pulls what tierd demotes back to DRAM; set kernel.numa_balancing=0"))
        }
        if let mode = numaBalancing, mode & 2 != 0 {
            found.append(Finding(code: "numa_balancing_tiering", affectsProtected: true, affectsOptedIn: true, text:
                "NUMA balancing's memory tiering mode is on (kernel.numa_balancing=\(mode)): the kernel promotes any group's hot slow pages and demotes any group's cold ones, protected workloads included"))
        }
        if demotionEnabled == true {
            let cpusets = demotionRespectsCpusets ? "" : "; on this kernel (before \(KernelRelease.demotionRespectsCpusets)) it also ignores cpusets and mempolicies"
            found.append(Finding(code: "kernel_demotion", affectsProtected: true, affectsOptedIn: false, text:
                "kernel demotion is on (demotion_enabled=true): the kernel's reclaim demotes any group's cold pages to the slow tier, protected workloads included\(cpusets)"))
        }
        if let running = runningDamonContexts, running > 0 {
            found.append(Finding(code: "damon", affectsProtected: true, affectsOptedIn: true, text:
                "\(running) DAMON context\(running == 1 ? " is" : "s are") running: \(running == 1 ? "its" : "their") schemes may migrate pages of any group, whatever tierd placed"))
        }
        return found
    }

    /// What the movers that are on may undo for a workload with `rule`.
    public func findings(for rule: WorkloadRule) -> [Finding] {
        findings.filter { rule.demote == .allowed ? $0.affectsOptedIn : $0.affectsProtected }
    }
}
