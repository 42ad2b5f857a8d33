#if canImport(Glibc)
import Glibc
#endif
import CNuma
import Testing
import TierLinux

/// The mover's priority change is the calling thread's alone and is undone afterwards.
struct ThreadPriorityTests {
    static func ownNice() -> Int32 {
        getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tierd_gettid()))
    }

    static func processNice() -> Int32 {
        getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(getpid()))
    }

    // Going back up from a raised nice value needs CAP_SYS_NICE: CI runs as root.
    @Test(.enabled(if: getuid() == 0, "restoring a nice value needs CAP_SYS_NICE"))
    func theNiceValueHoldsForTheBodyOnlyAndOnlyOnThisThread() {
        let before = Self.ownNice()
        let target: Int32 = before == 7 ? 8 : 7
        let (inside, applied) = ThreadPriority.withNice(target) { (thread: Self.ownNice(), process: Self.processNice()) }
        #expect(applied)
        #expect(inside.thread == target)
        if getpid() != tierd_gettid() { #expect(inside.process == before) }
        #expect(Self.ownNice() == before)
    }
}
