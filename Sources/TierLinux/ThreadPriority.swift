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
