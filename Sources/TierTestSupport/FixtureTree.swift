import Foundation
import Synchronization
import TierCore
import TierLinux

/// A writable copy of a kernel tree captured in the lab guest (see scripts/capture-fixtures.sh),
/// in a temporary directory, with helpers that write more groups and tasks in the exact text
/// formats the real kernel used. Tests point `RootedHostFiles` at `root`.
public final class FixtureTree: @unchecked Sendable {
    public let root: String
    /// Where the captured kernel mounted cgroup v2, from the tree's own mountinfo.
    public let cgroupMount: String

    /// Tests/Fixtures: captured kernel text.
    public static var fixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tests/Fixtures").path
    }

    /// The captured 6.12 guest: node0 DRAM with the CPUs, nodes 1 and 2 in a lower memory tier.
    public static var capturedGuest: String { fixtures + "/guest-3node" }

    /// The same kind of guest seen from a Kubernetes pod (scripts/capture-pod-fixture.sh): tierd in a
    /// cgroup of its own and a private cgroup namespace, the host's cgroupfs mounted over the
    /// runtime's; `SELF_PID` is the captured stand-in for tierd, `WORKLOAD_PID` a pod's task.
    public static var capturedPod: String { fixtures + "/guest-pod" }

    /// Copies `captured` into a fresh directory under `parent` (a tmpfs for benchmarks).
    public init(copying captured: String = FixtureTree.capturedGuest, parent: String = NSTemporaryDirectory()) throws {
        root = parent + "/tierd-fixture-" + UUID().uuidString
        try FileManager.default.copyItem(atPath: captured, toPath: root)
        let mountinfo = try String(contentsOfFile: root + KernelPaths.mountinfo, encoding: .utf8)
        cgroupMount = KernelText.cgroup2MountPoint(mountinfo: mountinfo) ?? ""
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    public func write(_ path: String, _ text: String) {
        let full = root + path
        try? FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full, contents: Data(text.utf8))
    }

    /// Writes over an existing file, as the kernel renews its files: a reader that keeps the file
    /// open (the free-DRAM watch) sees the new text. The text is written over the old before the
    /// file is cut to its length, so a reader beside it never finds the file empty.
    public func rewriteInPlace(_ path: String, _ text: String) {
        guard let handle = FileHandle(forWritingAtPath: root + path) else { return write(path, text) }
        defer { try? handle.close() }
        let bytes = Data(text.utf8)
        try? handle.write(contentsOf: bytes)
        try? handle.truncate(atOffset: UInt64(bytes.count))
    }

    public func read(_ path: String) -> String? { try? String(contentsOfFile: root + path, encoding: .utf8) }

    public func remove(_ path: String) { try? FileManager.default.removeItem(atPath: root + path) }

    /// Rewrites MemTotal/MemFree of a node's meminfo, keeping every other captured line.
    public func setNode(_ id: Int, freeBytes: UInt64, totalBytes: UInt64? = nil) {
        let path = KernelPaths.node(id) + "/meminfo"
        let lines = (read(path) ?? "").split(separator: "\n").map { line -> String in
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { return String(line) }
            if fields[2] == "MemFree:" { return Self.meminfoLine(id, "MemFree:", freeBytes / 1024) }
            if fields[2] == "MemTotal:", let totalBytes { return Self.meminfoLine(id, "MemTotal:", totalBytes / 1024) }
            return String(line)
        }
        rewriteInPlace(path, lines.joined(separator: "\n") + "\n")
    }

    /// Free memory of several nodes at once, in MiB: `[0: 100, 1: 800]`.
    public func setFree(mib free: [Int: UInt64]) {
        for (node, mib) in free.sorted(by: { $0.key < $1.key }) { setNode(node, freeBytes: mib << 20) }
    }

    static func meminfoLine(_ node: Int, _ key: String, _ kib: UInt64) -> String {
        let label = "Node \(node) \(key)"
        return label + String(repeating: " ", count: max(1, 29 - label.count - String(kib).count)) + "\(kib) kB"
    }

    /// Creates (or replaces) a cgroup with the memory and cpuset files the kernel would show.
    /// Byte counts are per node; `cpuset` in list form ("0-1"); `someAvg10` as a fraction.
    public func addGroup(_ group: String, pids: [Int32] = [], anon: [Int: UInt64] = [:], file: [Int: UInt64] = [:],
                         cpuset: String = "0-2", someAvg10: Double = 0, someTotal: UInt64 = 0, nodes: [Int] = [0, 1, 2]) {
        let dir = cgroupMount + "/" + group
        // Every cgroup directory the kernel shows has cgroup.procs: give new ancestors one too.
        var ancestor = CgroupPath(group).parent
        while let path = ancestor, !path.isRoot {
            let procs = cgroupMount + "/" + path.relative + "/cgroup.procs"
            if read(procs) == nil { write(procs, "") }
            ancestor = path.parent
        }
        write(dir + "/cgroup.procs", pids.map { "\($0)\n" }.joined())
        func row(_ item: String, _ values: [Int: UInt64]) -> String {
            item + nodes.map { " N\($0)=\(values[$0] ?? 0)" }.joined()
        }
        var stat = [row("anon", anon), row("file", file)]
        for item in ["kernel_stack", "pagetables", "sec_pagetables", "shmem", "file_mapped", "file_dirty", "file_writeback",
                     "swapcached", "anon_thp", "file_thp", "shmem_thp", "inactive_anon", "active_anon", "inactive_file",
                     "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "workingset_refault_anon",
                     "workingset_refault_file", "pgdemote_kswapd", "pgdemote_direct", "pgpromote_success"] {
            stat.append(row(item, [:]))
        }
        write(dir + "/memory.numa_stat", stat.joined(separator: "\n") + "\n")
        let anonTotal = anon.values.reduce(0, +), fileTotal = file.values.reduce(0, +)
        write(dir + "/memory.stat", "anon \(anonTotal)\nfile \(fileTotal)\nkernel 0\npgdemote_kswapd 0\npgdemote_direct 0\npgdemote_khugepaged 0\npgpromote_success 0\n")
        write(dir + "/memory.current", "\(anonTotal + fileTotal)\n")
        let avg = String(format: "%.2f", someAvg10 * 100)
        write(dir + "/memory.pressure", "some avg10=\(avg) avg60=0.00 avg300=0.00 total=\(someTotal)\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
        write(dir + "/cpuset.mems.effective", cpuset + "\n")
    }

    /// A process: its /proc/PID/cgroup, a numa_maps with one anonymous mapping per node that
    /// holds pages (and the given policy), the matching /proc/PID/maps ranges, and a stat with
    /// `startTime` (by default the one it has, or one derived from the pid). A new start time
    /// makes it another task that was given the same pid.
    public func addTask(_ pid: Int32, group: String, pagesPerNode: [Int: UInt64], policy: String = "default", startTime: UInt64? = nil) {
        let process = KernelPaths.process(pid)
        if startTime != nil || read(process + "/stat") == nil { setStat(pid, startTime: startTime ?? 100_000 + UInt64(pid)) }
        write(process + "/cgroup", "0::/\(group)\n")
        var maps: [String] = [], numa: [String] = []
        var address: UInt64 = 0x7f00_0000_0000
        for node in pagesPerNode.keys.sorted() {
            let pages = pagesPerNode[node]!
            let start = String(address, radix: 16)
            let end = String(address + max(pages, 1) * 4096, radix: 16)
            maps.append("\(start)-\(end) rw-p 00000000 00:00 0 ")
            numa.append("\(start) \(policy) anon=\(pages) dirty=\(pages) active=0 N\(node)=\(pages) kernelpagesize_kB=4")
            address += (max(pages, 1) + 256) * 4096
        }
        write(process + "/maps", maps.joined(separator: "\n") + "\n")
        write(process + "/numa_maps", numa.joined(separator: "\n") + "\n")
    }

    /// The task's `/proc/PID/pagemap` (a sparse file, a 64-bit word per page) with `pages`
    /// present and, of them, `written` soft-dirty; and an empty `clear_refs` to be written to.
    public func setPagemap(_ pid: Int32, pages: [UInt64], written: Set<UInt64>) throws {
        let process = KernelPaths.process(pid)
        write(process + "/clear_refs", "")
        let path = root + process + "/pagemap"
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        for page in pages {
            let word = PagemapEntry.present | (written.contains(page) ? PagemapEntry.softDirty : 0) | 0x1234
            try handle.seek(toOffset: page / 4096 * 8)
            try handle.write(contentsOf: withUnsafeBytes(of: word.littleEndian) { Data($0) })
        }
    }

    /// Adds to the task's numa_maps (and maps) a file mapping of `pages` on `node` that
    /// `mappedBy` processes map, as a shared library's text is.
    public func addSharedMapping(_ pid: Int32, pages: UInt64, node: Int, mappedBy processes: Int, file: String = "/usr/lib/libshared.so") {
        let process = KernelPaths.process(pid)
        let start = String(0x5500_0000_0000 as UInt64, radix: 16), end = String(0x5500_0000_0000 + pages * 4096, radix: 16)
        write(process + "/maps", (read(process + "/maps") ?? "") + "\(start)-\(end) r-xp 00000000 08:01 42 \(file)\n")
        write(process + "/numa_maps", (read(process + "/numa_maps") ?? "")
            // The kernel prints mapmax only above 1.
            + "\(start) default file=\(file) mapped=\(pages)\(processes > 1 ? " mapmax=\(processes)" : "") active=0 N\(node)=\(pages) kernelpagesize_kB=4\n")
    }

    /// Plays the kernel's part in a whole-task move: rewrites the task's numa_maps (and maps)
    /// with its pages on `from` now on `to`, except `leaving` pages that stayed behind.
    public func relocate(_ pid: Int32, from: NodeSet, to: Int, leaving: Int = 0) {
        let process = KernelPaths.process(pid)
        guard let text = read(process + "/numa_maps"), let cgroup = read(process + "/cgroup") else { return }
        var pages: [Int: UInt64] = [:]
        for entry in KernelText.numaMaps(text) { for (node, count) in entry.pagesPerNode { pages[node, default: 0] += count } }
        var stay = UInt64(leaving)
        for node in from.sorted where node != to {
            let kept = min(stay, pages[node] ?? 0)
            stay -= kept
            pages[to, default: 0] += (pages[node] ?? 0) - kept
            pages[node] = kept
        }
        let policy = text.split(separator: "\n").first?.split(separator: " ").dropFirst().first.map(String.init) ?? "default"
        let group = cgroup.split(separator: "/", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        addTask(pid, group: group, pagesPerNode: pages.filter { $0.value > 0 }, policy: policy)
    }

    /// Writes the task's /proc/PID/stat from a captured one, with `cpu` as the CPU it last ran on.
    public func setLastCPU(_ pid: Int32, _ cpu: Int) throws {
        setStat(pid, startTime: read(KernelPaths.process(pid) + "/stat").flatMap(KernelText.startTime) ?? 100_000 + UInt64(pid), cpu: cpu)
    }

    /// Writes the task's /proc/PID/stat from a captured one, with its start time and last CPU.
    public func setStat(_ pid: Int32, startTime: UInt64, cpu: Int = 1) {
        let captured = (try? String(contentsOfFile: Self.fixtures + "/proc-stat-cpu1.txt", encoding: .utf8)) ?? ""
        var fields = KernelText.processStat(captured)?.fields.map(String.init) ?? []
        precondition(fields.count > 36, "the captured /proc/PID/stat fixture is missing")
        fields[19] = String(startTime)
        fields[36] = String(cpu)
        write(KernelPaths.process(pid) + "/stat", "\(pid) (tierload) " + fields.joined(separator: " "))
    }

    private let freeMemoryLock = NSLock()

    /// Plays the kernel's part in a move of `bytes` between two nodes: the source node's free
    /// memory grows by them, the target's shrinks. Safe from several threads.
    public func accountMove(bytes: UInt64, from: Int, to: Int) {
        freeMemoryLock.lock()
        defer { freeMemoryLock.unlock() }
        func free(_ node: Int) -> UInt64 { read(KernelPaths.node(node) + "/meminfo").flatMap(KernelText.nodeMeminfo)?.free ?? 0 }
        setNode(from, freeBytes: free(from) + bytes)
        setNode(to, freeBytes: free(to) - min(free(to), bytes))
    }

    public func removeTask(_ pid: Int32) { remove(KernelPaths.process(pid)) }
    public func removeGroup(_ group: String) { remove(cgroupMount + "/" + group) }
}

/// Records the page-moving calls a migrator makes instead of making them. Real calls are made
/// by the lab guest's end-to-end tests; this serves the host's unit tests, where the host has
/// no slow tier. Results can be scripted per pid.
public final class RecordingSyscalls: PageMoveSyscalls, @unchecked Sendable {
    /// One recorded call.
    public enum Call: Equatable, Sendable {
        case migrate(pid: Int32, from: NodeSet, to: NodeSet, sharedPages: SharedPages)
        case query(pid: Int32, pages: Int)
        case move(pid: Int32, pages: Int, to: Int)
    }
    private let lock = NSLock()
    private var recorded: [Call] = []
    private var recordedCPUs: [Int32] = []
    private var recordedQueryStarts: [UInt64] = []
    private var moves: Set<UInt64> = []
    private var recordedMoveSharing: [SharedPages] = []
    /// For each move_pages(2) move call, whether it took shared pages along.
    public var moveSharing: [SharedPages] { lock.lock(); defer { lock.unlock() }; return recordedMoveSharing }
    /// Scripted errno per pid (e.g. ESRCH: the task exits mid-move).
    public var failures: [Int32: Int32] = [:]
    /// Scripted errno for migrate_pages(2) alone, per pid (move_pages still succeeds).
    public var migrateFailures: [Int32: Int32] = [:]
    /// Pages migrate_pages reports as not moved, per pid.
    public var notMoved: [Int32: Int] = [:]
    /// Where move_pages queries say pages are: the fixture's node for each address.
    public var pageNode: (Int32, UInt64) -> Int32 = { _, _ in 0 }
    /// Nodes with no room: move_pages reports -ENOMEM for every page sent there.
    public var fullNodes: Set<Int> = []
    /// A move's status for one page instead of success (say -EACCES for a shared page); nil: moved.
    public var moveStatus: (_ pid: Int32, _ address: UInt64) -> Int32? = { _, _ in nil }
    /// Hook run before each call, to simulate a race (a task leaving its group, say).
    public var beforeCall: ((Int32) -> Void)?
    /// Hook run after a successful migrate_pages, to play the kernel's part (rewrite the task's
    /// numa_maps with where its pages went).
    public var afterMigrate: ((_ pid: Int32, _ from: NodeSet, _ to: NodeSet) -> Void)?
    /// Hook run after a move_pages call that moved pages, with how many went to `node`.
    public var afterMove: ((_ pid: Int32, _ pages: Int, _ node: Int) -> Void)?

    public init() {}

    public var calls: [Call] { lock.lock(); defer { lock.unlock() }; return recorded }
    /// The CPU the calling thread was on at each call.
    public var callCPUs: [Int32] { lock.lock(); defer { lock.unlock() }; return recordedCPUs }
    /// The first address of each move_pages(2) query, in order: where each scan step began.
    public var queryStarts: [UInt64] { lock.lock(); defer { lock.unlock() }; return recordedQueryStarts }
    /// Every address a move_pages(2) call moved (for a `pageNode` that follows the moves).
    public var movedAddresses: Set<UInt64> { lock.lock(); defer { lock.unlock() }; return moves }

    private func record(_ call: Call) {
        let cpu = Int32(ThreadPlacement.currentCPU ?? -1)
        lock.lock(); recorded.append(call); recordedCPUs.append(cpu); lock.unlock()
    }

    public func migratePages(pid: Int32, from: NodeSet, to: NodeSet, sharedPages: SharedPages) -> Result<Int, SyscallError> {
        beforeCall?(pid)
        record(.migrate(pid: pid, from: from, to: to, sharedPages: sharedPages))
        if let code = failures[pid] ?? migrateFailures[pid] { return .failure(SyscallError(code)) }
        afterMigrate?(pid, from, to)
        return .success(notMoved[pid] ?? 0)
    }

    public func movePages(pid: Int32, addresses: [UInt64], to node: Int?, sharedPages: SharedPages) -> Result<[Int32], SyscallError> {
        beforeCall?(pid)
        if let code = failures[pid] { return .failure(SyscallError(code)) }
        guard let node else {
            record(.query(pid: pid, pages: addresses.count))
            lock.lock(); recordedQueryStarts.append(addresses.first ?? 0); lock.unlock()
            return .success(addresses.map { pageNode(pid, $0) })
        }
        record(.move(pid: pid, pages: addresses.count, to: node))
        lock.lock(); recordedMoveSharing.append(sharedPages); lock.unlock()
        if !fullNodes.contains(node) { lock.lock(); moves.formUnion(addresses); lock.unlock() }
        if !fullNodes.contains(node) { afterMove?(pid, addresses.count, node) }
        return .success(addresses.map { fullNodes.contains(node) ? -ENOMEM : moveStatus(pid, $0) ?? Int32(node) })
    }
}

/// Counts the reads that go through it, by file name, so a benchmark can show which files a
/// cycle touched (no `numa_maps` of a task that is not about to move).
public final class CountingHostFiles: HostFiles, @unchecked Sendable {
    let inner: any HostFiles
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    public init(_ inner: any HostFiles) { self.inner = inner }
    public var root: String { inner.root }

    public func reads(named name: String) -> Int { lock.lock(); defer { lock.unlock() }; return counts[name] ?? 0 }
    public func reset() { lock.lock(); counts = [:]; lock.unlock() }

    public func read(_ path: String) throws(HostFileError) -> String {
        let name = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(path[path.utf8.index(after: $0)...]) } ?? path
        lock.lock(); counts[name, default: 0] += 1; lock.unlock()
        return try inner.read(path)
    }
    public func write(_ path: String, _ text: String) throws(HostFileError) { try inner.write(path, text) }
    public func subdirectories(_ path: String) throws(HostFileError) -> [String] { try inner.subdirectories(path) }
    public func exists(_ path: String) -> Bool { inner.exists(path) }
    public func readHead(_ path: String, upTo bytes: Int) -> String? {
        let name = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(path[path.utf8.index(after: $0)...]) } ?? path
        lock.lock(); counts[name, default: 0] += 1; lock.unlock()
        return inner.readHead(path, upTo: bytes)
    }
}
