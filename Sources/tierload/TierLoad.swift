import ArgumentParser
import TierCore
import TierLinux

#if canImport(Glibc)
import Glibc
#endif

/// The lab's workload: allocates memory, keeps touching a hot part of it, and reports where its
/// hot and cold pages are (move_pages(2) with no target nodes) as JSON lines, so a scenario can
/// judge placement by where pages are, not by speed (under emulation both tiers are equally fast).
@main
struct TierLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tierload", abstract: "Allocate memory with a hot subset and report its NUMA placement.")

    @Option(help: "MiB to allocate.") var mib: Int
    @Option(help: "MiB of it kept hot (touched continuously), from the start of the buffer.") var hotMib: Int = 0
    @Option(help: "Append JSON-line reports here (default: standard output).") var report: String?
    @Option(help: "Seconds between placement reports.") var interval: Double = 1
    @Option(help: "Exit after this many seconds (0: run until killed).") var duration: Double = 0
    @Option(help: "Also map this file shared (created on a tmpfs such as /dev/shm if missing) and write every page of it once.")
    var sharedFile: String?
    @Option(help: "MiB of --shared-file to map.") var sharedMib: Int = 0
    @Flag(help: "Keep the hot part hot while the rest is allocated (touched again after every 16 MiB), not only afterwards.")
    var hotWhileAllocating = false
    @Option(help: "On SIGUSR1 the hot part moves (a phase change): to the first --hot-mib of the other pages found on this node then.")
    var phaseNode: Int32?

    func validate() throws {
        guard mib > 0, hotMib >= 0, hotMib <= mib else { throw ValidationError("need 0 <= --hot-mib <= --mib and --mib > 0") }
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
        guard phaseNode == nil || hotMib > 0 else { throw ValidationError("--phase-node needs a hot part (--hot-mib)") }
        guard (sharedFile == nil) == (sharedMib == 0), sharedMib >= 0 else {
            throw ValidationError("--shared-file and --shared-mib go together")
        }
    }

    /// Maps `sharedFile` MAP_SHARED and writes each page, so that every process mapping it maps
    /// the same page-cache pages (a page shared between workloads, as a library or shm would be).
    func mapShared() throws {
        guard let sharedFile else { return }
        let bytes = sharedMib << 20
        let fd = open(sharedFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ValidationError("cannot open \(sharedFile): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(bytes)) == 0,
              let base = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            throw ValidationError("cannot map \(sharedMib) MiB of \(sharedFile): \(String(cString: strerror(errno)))")
        }
        for page in stride(from: 0, to: bytes, by: 4096) { base.storeBytes(of: 1, toByteOffset: page, as: UInt8.self) }
    }

    func run() throws {
        let pageSize = 4096
        let bytes = mib << 20
        guard let base = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            throw ValidationError("mmap of \(mib) MiB failed: \(String(cString: strerror(errno)))")
        }
        try mapShared()
        let out = report.map { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) } ?? 1
        guard out >= 0 else { throw ValidationError("cannot open \(report!): \(String(cString: strerror(errno)))") }
        func emit(_ line: String) { (line + "\n").withCString { _ = write(out, $0, strlen($0)) } }
        let pid = getpid()
        let pages = bytes / pageSize, hotPages = (hotMib << 20) / pageSize
        let start = now()
        emit("{\"event\":\"start\",\"pid\":\(pid),\"t\":\(start),\"mib\":\(mib),\"hot_mib\":\(hotMib)}")
        // Everything the report loop needs is allocated before the buffer is touched, so that once
        // "allocated" is reported this process allocates nothing more: a scenario can then attribute
        // any later change of its placement to page moves alone.
        let addresses = (0..<pages).map { UInt64(UInt(bitPattern: base) + UInt($0 * pageSize)) }
        let chunks = stride(from: 0, to: pages, by: 16384).map { Array(addresses[$0..<min($0 + 16384, pages)]) }
        let syscalls = LibnumaSyscalls()
        _ = syscalls.movePages(pid: 0, addresses: chunks.first ?? [], to: nil)
        for page in 0..<pages {
            base.storeBytes(of: UInt8(truncatingIfNeeded: page | 1), toByteOffset: page * pageSize, as: UInt8.self)
            if hotWhileAllocating, page > hotPages, page % 4096 == 0 {
                for hot in 0..<hotPages { base.storeBytes(of: UInt8(truncatingIfNeeded: page), toByteOffset: hot * pageSize, as: UInt8.self) }
            }
        }
        emit("{\"event\":\"allocated\",\"pid\":\(pid),\"t\":\(now()),\"seconds\":\(now() - start)}")
        // The hot pages by index, and whether each page is one; replaced in place at a phase change.
        var hotIndexes = Array(0..<hotPages)
        var isHot = [Bool](repeating: false, count: pages)
        for page in hotIndexes { isHot[page] = true }
        if phaseNode != nil { signal(SIGUSR1) { _ in phaseRequested = 1 } }
        var nextReport = now()
        var sweep: UInt8 = 0
        while duration == 0 || now() - start < duration {
            sweep &+= 1
            for page in hotIndexes { base.storeBytes(of: sweep, toByteOffset: page * pageSize, as: UInt8.self) }
            if let node = phaseNode, phaseRequested != 0 {
                phaseRequested = 0
                let found = changePhase(to: node, hotIndexes: &hotIndexes, isHot: &isHot, chunks: chunks, syscalls: syscalls)
                emit("{\"event\":\"phase\",\"pid\":\(pid),\"t\":\(now()),\"node\":\(node),\"hot_pages\":\(found)}")
            }
            // With nothing hot the task sleeps until its next report: an idle task that woke
            // every few milliseconds would share its CPU with whatever moves its pages.
            if hotPages == 0, nextReport > now() {
                let wake = duration == 0 ? nextReport : min(nextReport, start + duration)
                usleep(UInt32(min(max(wake - now(), 0.001), 60) * 1e6))
            }
            guard now() >= nextReport else { continue }
            nextReport = now() + interval
            var hot: [Int32: Int] = [:], cold: [Int32: Int] = [:]
            for (index, chunk) in chunks.enumerated() {
                let first = index * 16384
                if case .success(let status) = syscalls.movePages(pid: 0, addresses: chunk, to: nil) {
                    for (offset, node) in status.enumerated() {
                        if isHot[first + offset] { hot[node, default: 0] += 1 } else { cold[node, default: 0] += 1 }
                    }
                }
            }
            func json(_ counts: [Int32: Int]) -> String {
                "{" + counts.keys.sorted().map { "\"\($0)\":\(counts[$0]!)" }.joined(separator: ",") + "}"
            }
            emit("{\"event\":\"placement\",\"pid\":\(pid),\"t\":\(now()),\"hot\":\(json(hot)),\"cold\":\(json(cold))}")
        }
    }

    /// The phase change: the hot part becomes the first pages, outside it, that sit on `node` now
    /// (as many as it had; fewer if fewer are there). Returns how many.
    func changePhase(to node: Int32, hotIndexes: inout [Int], isHot: inout [Bool], chunks: [[UInt64]], syscalls: LibnumaSyscalls) -> Int {
        let wanted = hotIndexes.count
        var chosen: [Int] = []
        chosen.reserveCapacity(wanted)
        for (index, chunk) in chunks.enumerated() where chosen.count < wanted {
            guard case .success(let status) = syscalls.movePages(pid: 0, addresses: chunk, to: nil) else { continue }
            for (offset, found) in status.enumerated() where found == node && !isHot[index * 16384 + offset] && chosen.count < wanted {
                chosen.append(index * 16384 + offset)
            }
        }
        for page in hotIndexes { isHot[page] = false }
        for page in chosen { isHot[page] = true }
        hotIndexes = chosen
        return chosen.count
    }
}

/// Set by the SIGUSR1 handler, read and cleared by the sweep loop.
nonisolated(unsafe) var phaseRequested: sig_atomic_t = 0

/// CLOCK_MONOTONIC in seconds: comparable across the lab's processes in one guest.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
