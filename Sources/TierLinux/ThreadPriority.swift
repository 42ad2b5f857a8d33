#if canImport(Glibc)
import Glibc
#endif
import CNuma

/// Runs work at another nice value on the calling thread alone, then restores it.
///
/// On Linux, setpriority(2) on a thread id changes that thread only: tierd raises the priority
/// of the thread that moves pages, not of its control loop. Raising it (a negative nice) needs
/// CAP_SYS_NICE; without it the work runs at the thread's own priority.
public enum ThreadPriority {
    /// The body's result, and whether `nice` was in effect while it ran.
    public static func withNice<T>(_ nice: Int32, _ body: () -> T) -> (result: T, applied: Bool) {
        let thread = id_t(tierd_gettid())
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        errno = 0
        let previous = getpriority(which, thread)
        // getpriority returns -1 both as a nice value and on error: errno tells them apart.
        let readable = errno == 0
        guard readable, previous != nice else { return (body(), readable) }
        guard setpriority(which, thread, nice) == 0 else { return (body(), false) }
        defer { _ = setpriority(which, thread, previous) }
        return (body(), true)
    }
}

/// Runs work on one CPU on the calling thread alone, then restores the thread's affinity.
///
/// tierd moves a task's pages from the CPU the task last ran on: the TLB shootdowns a
/// migration needs are then flushed locally instead of interrupting that CPU from another one,
/// as when the kernel's NUMA balancing migrates pages in the task's own context.
public enum ThreadPlacement {
    /// The body's result, and whether the thread was on `cpu` while it ran. A CPU outside the
    /// thread's cpuset (or offline) is refused by the kernel: the body then runs where it was.
    public static func onCPU<T>(_ cpu: Int, _ body: () -> T) -> (result: T, applied: Bool) {
        var saved = tierd_cpu_mask()
        guard tierd_pin_thread(Int32(cpu), &saved) == 0 else { return (body(), false) }
        defer { _ = tierd_restore_thread(&saved) }
        return (body(), true)
    }

    /// The CPUs the calling thread may run on.
    public static var affinity: Set<Int>? {
        var mask = tierd_cpu_mask()
        guard tierd_read_affinity(&mask) == 0 else { return nil }
        let perWord = MemoryLayout<UInt>.size * 8
        return withUnsafeBytes(of: mask.bits) { raw in
            var cpus = Set<Int>()
            for (word, bits) in raw.bindMemory(to: UInt.self).enumerated() {
                for bit in 0..<perWord where bits & (1 << UInt(bit)) != 0 { cpus.insert(word * perWord + bit) }
            }
            return cpus
        }
    }

    /// The CPU the calling thread runs on now.
    public static var currentCPU: Int? {
        let cpu = tierd_current_cpu()
        return cpu >= 0 ? Int(cpu) : nil
    }
}
