#if canImport(Glibc)
import Glibc
#endif
import CNuma

/// glibc's heap, set for a daemon that works in ticks: each tick allocates a snapshot of every
/// group and frees it, and left alone glibc keeps what was freed, one arena per thread that ever
/// allocated. Measured with `tierbench idle` at 1,000 groups (docs/BENCHMARKS.md, section 4).
public enum ProcessHeap {
    /// Caps glibc's arenas: the tick, the moving lanes and the endpoint share two.
    public static func limitArenas(to count: Int32 = 2) {
        _ = mallopt(M_ARENA_MAX, count)
    }

    /// Hands the pages a tick freed back to the kernel.
    public static func releaseFreed() {
        _ = malloc_trim(0)
    }
}
