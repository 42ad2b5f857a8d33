import TierCore

extension SnapshotCollector {
    /// The kernel's own movers as they are set now; a file that is absent (a kernel built without
    /// the feature) or unreadable leaves its field nil.
    public func kernelMovers() -> KernelMovers {
        func text(_ path: String) -> String? {
            (try? files.read(path)).map { String($0.filter { !$0.isWhitespace }) }
        }
        var movers = KernelMovers()
        movers.numaBalancing = text(KernelPaths.numaBalancing).flatMap { Int($0) }
        movers.demotionEnabled = text(KernelPaths.demotionEnabled).flatMap { ["true": true, "false": false, "1": true, "0": false][$0] }
        movers.release = text(KernelPaths.kernelRelease)
        if let count = text(KernelPaths.damonKdamonds + "/nr_kdamonds").flatMap({ Int($0) }) {
            movers.runningDamonContexts = (0..<max(0, min(count, 1024))).filter { text(KernelPaths.damonKdamonds + "/\($0)/state") == "on" }.count
        }
        return movers
    }
}
