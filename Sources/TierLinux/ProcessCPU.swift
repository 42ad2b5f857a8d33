#if canImport(Glibc)
import Glibc
#endif

/// tierd's own CPU time so far (getrusage), journaled with each busy tick: the controller's
/// overhead is a figure operators and the lab read, not a guess.
public enum ProcessCPU {
    public static func now() -> (user: Double, system: Double) {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return (0, 0) }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return (seconds(usage.ru_utime), seconds(usage.ru_stime))
    }
}
