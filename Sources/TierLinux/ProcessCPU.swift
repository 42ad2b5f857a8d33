#if canImport(Glibc)
import Glibc
#endif

/// tierd's own CPU time so far (getrusage), journaled with each busy tick: the controller's
/// overhead is a figure operators and the lab read, not a guess.
public enum ProcessCPU {
    public static func now() -> (user: Double, system: Double) {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return (0, 0) }
        return (seconds(usage.ru_utime), seconds(usage.ru_stime))
    }

    /// The calling thread's CPU time (user and system) and how often the scheduler took the CPU
    /// from it: around a move, what the move cost in CPU and whether anything ran in its place.
    public static func thisThread() -> (seconds: Double, involuntarySwitches: Int) {
        var usage = rusage()
        // RUSAGE_THREAD (Linux), which Glibc's module does not export.
        guard getrusage(__rusage_who_t(1), &usage) == 0 else { return (0, 0) }
        return (seconds(usage.ru_utime) + seconds(usage.ru_stime), Int(usage.ru_nivcsw))
    }

    private static func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
}
