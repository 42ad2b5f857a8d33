/// Parsers from the text the kernel writes to models. Each comment quotes the text it parses.
/// Parsers never throw on an unknown line: newer kernels add fields, and tierd must keep working.
public enum KernelText {
    /// More bytes than any node or process can hold (52-bit physical addresses, the most x86-64
    /// and arm64 have): a larger count is not the kernel's and is ignored, so that no sum of
    /// counts over 1,024 nodes can overflow.
    public static let maxBytes: UInt64 = 1 << 52

    /// The lines of kernel text, split at each newline byte. Splitting at the Character "\n"
    /// does not: "\r\n" is one Character, and the names the kernel prints raw (a mapped file, a
    /// cgroup) may end in "\r", which would swallow the next line.
    static func lines(_ text: String) -> [Substring] {
        text.utf8.split(separator: UInt8(ascii: "\n")).map { Substring($0) }
    }

    /// `/sys/fs/cgroup/<group>/memory.pressure` or `/proc/pressure/memory`:
    /// ```
    /// some avg10=4.64 avg60=4.50 avg300=1.22 total=3883755
    /// full avg10=4.64 avg60=4.50 avg300=1.22 total=3882047
    /// ```
    public static func pressure(_ text: String) -> Pressure? { ByteScanner.withBytes(text, pressure(bytes:)) }

    public static func pressure(bytes: UnsafeBufferPointer<UInt8>) -> Pressure? {
        var some: Pressure.Line?
        var full: Pressure.Line?
        ByteScanner.forEachLine(bytes) { line in
            guard let space = line.firstIndex(of: ByteScanner.space) else { return }
            let kind = UnsafeBufferPointer(rebasing: line[..<space])
            var avg10: Double?, avg60: Double?, total: UInt64?
            ByteScanner.forEachField(UnsafeBufferPointer(rebasing: line[(space + 1)...])) { field in
                guard let eq = field.firstIndex(of: ByteScanner.equals) else { return }
                let key = UnsafeBufferPointer(rebasing: field[..<eq]), value = UnsafeBufferPointer(rebasing: field[(eq + 1)...])
                if ByteScanner.equals(key, "avg10") { avg10 = ByteScanner.decimal(value) }
                else if ByteScanner.equals(key, "avg60") { avg60 = ByteScanner.decimal(value) }
                else if ByteScanner.equals(key, "total") { total = ByteScanner.uint64(value) }
            }
            guard let avg10, let avg60, let total else { return }
            let parsed = Pressure.Line(avg10: avg10 / 100, avg60: avg60 / 100, totalMicroseconds: total)
            if ByteScanner.equals(kind, "some") { some = parsed } else if ByteScanner.equals(kind, "full") { full = parsed }
        }
        guard let some else { return nil }
        return Pressure(some: some, full: full ?? Pressure.Line(avg10: 0, avg60: 0, totalMicroseconds: 0))
    }

    /// `memory.numa_stat`: one line per item, bytes per node.
    /// ```
    /// anon N0=175087616 N1=0 N2=0
    /// file N0=1081344 N1=0 N2=0
    /// ```
    /// Only the items tierd moves (anon, file) are kept.
    public static func numaStat(_ text: String) -> NumaStat { ByteScanner.withBytes(text, numaStat(bytes:)) }

    public static func numaStat(bytes: UnsafeBufferPointer<UInt8>) -> NumaStat {
        var stat = NumaStat()
        var seen = (anon: false, file: false)
        // Only two of the ~35 items matter, and the kernel prints them first: look at the item
        // name before splitting a line, and stop once both are read.
        ByteScanner.scanLines(bytes) { line in
            guard line.count > 5, line[4] == ByteScanner.space else { return true }
            let item = UnsafeBufferPointer(rebasing: line[0..<4])
            let isAnon = ByteScanner.equals(item, "anon")
            guard isAnon || ByteScanner.equals(item, "file") else { return true }
            ByteScanner.forEachField(UnsafeBufferPointer(rebasing: line[5...])) { field in
                guard let (node, bytes) = ByteScanner.nodeValue(field), bytes <= maxBytes else { return }
                if isAnon { stat.set(anon: bytes, node: node) } else { stat.set(file: bytes, node: node) }
            }
            if isAnon { seen.anon = true } else { seen.file = true }
            return !(seen.anon && seen.file)
        }
        return stat
    }

    /// `memory.stat`: "key value" per line. Keeps the counters tierd reports
    /// (`anon`, `file`, `pgdemote_*`, `pgsteal_*`, `pswpout`, `zswpout`, `pgpromote_success`,
    /// `workingset_refault_*`).
    /// ```
    /// anon 175087616
    /// pgdemote_direct 0
    /// ```
    public static func memoryStat(_ text: String) -> MemoryStat {
        var stat = MemoryStat()
        ByteScanner.withBytes(text) { bytes in ByteScanner.forEachLine(bytes) { line in
            guard let space = line.firstIndex(of: ByteScanner.space) else { return }
            let key = UnsafeBufferPointer(rebasing: line[..<space])
            // The counters tierd keeps all start with a, f, p, w or z: skip the rest unparsed.
            guard let first = key.first, first == UInt8(ascii: "a") || first == UInt8(ascii: "f")
                    || first == UInt8(ascii: "p") || first == UInt8(ascii: "w") || first == UInt8(ascii: "z"),
                  let value = ByteScanner.uint64(UnsafeBufferPointer(rebasing: line[(space + 1)...])) else { return }
            if ByteScanner.equals(key, "anon") { stat.anonBytes = value }
            else if ByteScanner.equals(key, "file") { stat.fileBytes = value }
            else if ByteScanner.equals(key, "pgdemote_kswapd") { stat.background.demoted = value }
            else if ByteScanner.equals(key, "pgdemote_direct") { stat.direct.demoted = value }
            else if ByteScanner.equals(key, "pgdemote_khugepaged") { stat.khugepaged.demoted = value }
            else if ByteScanner.equals(key, "pgdemote_proactive") { stat.proactive.demoted = value; stat.countsProactiveReclaim = true }
            else if ByteScanner.equals(key, "pgsteal_kswapd") { stat.background.stolen = value }
            else if ByteScanner.equals(key, "pgsteal_direct") { stat.direct.stolen = value }
            else if ByteScanner.equals(key, "pgsteal_khugepaged") { stat.khugepaged.stolen = value }
            else if ByteScanner.equals(key, "pgsteal_proactive") { stat.proactive.stolen = value; stat.countsProactiveReclaim = true }
            else if ByteScanner.equals(key, "pswpout") { stat.pagesSwappedOut += value }
            else if ByteScanner.equals(key, "zswpout") { stat.pagesSwappedOut += value }
            else if ByteScanner.equals(key, "pgpromote_success") { stat.pagesPromotedByKernel = value }
            else if ByteScanner.equals(key, "workingset_refault_anon") { stat.refaultsAnon = value }
            else if ByteScanner.equals(key, "workingset_refault_file") { stat.refaultsFile = value }
        } }
        return stat
    }

    /// `/sys/devices/system/node/nodeN/meminfo`:
    /// ```
    /// Node 0 MemTotal:        1030452 kB
    /// Node 0 MemFree:          731180 kB
    /// ```
    /// - Returns: (total, free) in bytes, or nil if either line is missing.
    public static func nodeMeminfo(_ text: String) -> (total: UInt64, free: UInt64)? {
        ByteScanner.withBytes(text) { bytes in
            guard let total = nodeMeminfoValue("MemTotal:", bytes), let free = nodeMeminfoValue("MemFree:", bytes) else { return nil }
            return (total, free)
        }
    }

    /// `MemFree` of a node's meminfo in bytes, found without splitting the rest into lines and
    /// fields: the free-DRAM watch reads it ten times a second, and the full parse was nearly all
    /// of what the watch cost an idle tierd (the watch hands over the bytes of a kept-open file).
    public static func nodeMemFree(_ text: String) -> UInt64? {
        ByteScanner.withBytes(text) { nodeMemFree(bytes: $0) }
    }

    public static func nodeMemFree(bytes: UnsafeBufferPointer<UInt8>) -> UInt64? { nodeMeminfoValue("MemFree:", bytes) }

    /// The kB figure after `label` ("MemFree:") in a node's meminfo, in bytes.
    static func nodeMeminfoValue(_ label: StaticString, _ bytes: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard let start = ByteScanner.firstIndex(of: label, in: bytes) else { return nil }
        var kib: UInt64 = 0, digits = 0
        for byte in bytes[(start + label.utf8CodeUnitCount)...] {
            if byte == UInt8(ascii: " ") && digits == 0 { continue }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { break }
            kib = kib &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
            digits += 1
            guard digits <= 16 else { return nil }
        }
        guard digits > 0, kib <= maxBytes / 1024 else { return nil }
        return kib * 1024
    }

    /// `/sys/devices/system/node/nodeN/distance`: "10 20 20", one entry per online node.
    public static func distances(_ text: String) -> [Int] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
    }

    /// `/proc/self/mountinfo`; returns the mount point of the cgroup v2 hierarchy:
    /// ```
    /// 32 26 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
    /// ```
    /// The file system type follows the " - " separator; optional fields precede it.
    public static func cgroup2MountPoint(mountinfo: String) -> String? {
        CgroupMount.preferred(cgroup2Mounts(mountinfo: mountinfo))?.mountPoint
    }

    /// Every cgroup v2 mount in `/proc/self/mountinfo`, in order, with its root (field 4). From a
    /// Kubernetes pod, the runtime's namespaced mount and the hostPath mount of the host's tree over it:
    /// ```
    /// 407 395 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
    /// 408 407 0:26 /../../../.. /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
    /// ```
    public static func cgroup2Mounts(mountinfo: String) -> [CgroupMount] {
        lines(mountinfo).compactMap { line in
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields.count > 4,
                  fields[dash + 1] == "cgroup2" else { return nil }
            return CgroupMount(root: unescapeMountPath(String(fields[3])), mountPoint: unescapeMountPath(String(fields[4])))
        }
    }

    /// mountinfo escapes space, tab, newline and backslash as octal ("\040").
    static func unescapeMountPath(_ path: String) -> String {
        guard path.contains("\\") else { return path }
        var out = [UInt8]()
        let bytes = Array(path.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count + 0,
               let code = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(code); i += 4
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// One node's reserve as `/proc/zoneinfo` gives it, in pages.
    public struct NodeWatermark: Equatable, Sendable {
        /// The sum of its zones' `high` watermarks.
        public var high: UInt64 = 0
        /// The sum of its zones' per-CPU page lists' `high:` (their most): free pages on those
        /// lists are not in MemFree, so a move into the node can lower MemFree by up to this more
        /// than it uses.
        public var perCPUListsHigh: UInt64 = 0
        public init(high: UInt64 = 0, perCPUListsHigh: UInt64 = 0) { self.high = high; self.perCPUListsHigh = perCPUListsHigh }
    }

    /// `/proc/zoneinfo`: each node's zones' `high` and their per-CPU lists' `high:`, in pages.
    /// ```
    /// Node 1, zone    DMA32
    ///   pages free     211755
    ///         min      531
    ///         low      760
    ///         high     989
    ///   pagesets
    ///     cpu: 0
    ///               count: 380
    ///               high:  380
    /// ```
    public static func zoneWatermarks(_ zoneinfo: String) -> [Int: NodeWatermark] {
        ByteScanner.withBytes(zoneinfo, zoneWatermarks(bytes:))
    }

    /// The zoneinfo of a large host runs to thousands of lines, read every tick: lines are looked
    /// at as bytes, and only those whose first word starts with `h` are split.
    public static func zoneWatermarks(bytes: UnsafeBufferPointer<UInt8>) -> [Int: NodeWatermark] {
        var marks: [Int: NodeWatermark] = [:]
        var node: Int?
        ByteScanner.forEachLine(bytes) { line in
            if line.count > 5, ByteScanner.equals(UnsafeBufferPointer(rebasing: line[0..<5]), "Node ") {
                let id = UnsafeBufferPointer(rebasing: line[5...].prefix { $0 != UInt8(ascii: ",") })
                node = ByteScanner.uint64(id).flatMap { $0 <= UInt64(NodeSet.maxNodeID) ? Int($0) : nil }
                return
            }
            guard let node, let first = line.firstIndex(where: { $0 != ByteScanner.space }), line[first] == UInt8(ascii: "h") else { return }
            var fields: [UnsafeBufferPointer<UInt8>] = []
            ByteScanner.forEachField(line) { if fields.count < 3 { fields.append($0) } }
            guard fields.count == 2, let pages = ByteScanner.uint64(fields[1]), pages <= maxBytes / 4096 else { return }
            if ByteScanner.equals(fields[0], "high") { marks[node, default: NodeWatermark()].high += pages }
            else if ByteScanner.equals(fields[0], "high:") { marks[node, default: NodeWatermark()].perCPUListsHigh += pages }
        }
        return marks
    }

    /// A "Key:   123 kB" line of `/proc/PID/status` (VmRSS, VmHWM), in KiB.
    public static func statusKiB(_ status: String, key: String) -> UInt64? {
        for line in lines(status) where line.hasPrefix(key + ":") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return fields.count >= 2 ? UInt64(fields[1]) : nil
        }
        return nil
    }

    /// `/proc/PID/status`, the line "Mems_allowed_list:\t0-2": the nodes that task may use.
    public static func memsAllowed(status: String) -> NodeSet? {
        for line in lines(status) where line.hasPrefix("Mems_allowed_list:") {
            return NodeSet.parseList(line.dropFirst("Mems_allowed_list:".count))
        }
        return nil
    }

    /// `/proc/PID/stat` split into the command name and the fields after it, `fields[0]` being
    /// field 3 (state). The name in parentheses may hold spaces and parentheses itself: fields
    /// are counted after its last ')'.
    public static func processStat(_ text: String) -> (command: Substring, fields: [Substring])? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else { return nil }
        return (text[text.index(after: open)..<close],
                text[text.index(after: close)...].split(omittingEmptySubsequences: true) { $0 == " " || $0 == "\n" })
    }

    /// `/proc/PID/stat`: when the task started, in clock ticks after boot (field 22, "starttime",
    /// `fields[19]`). With the pid it names one task for the life of the system: a pid reused by
    /// a later task comes with a later start time.
    public static func startTime(stat text: String) -> UInt64? {
        guard let fields = processStat(text)?.fields, fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// `/proc/PID/stat`: the CPU the task last ran on (field 39, "processor", `fields[36]`).
    public static func lastCPU(stat text: String) -> Int? {
        guard let fields = processStat(text)?.fields, fields.count > 36, let cpu = Int(fields[36]), cpu >= 0 else { return nil }
        return cpu
    }

    /// `/proc/PID/cgroup` on a cgroup v2 host: "0::/system.slice/db.service"; read from inside a
    /// cgroup namespace, relative to its root: "0::/../../be".
    /// - Returns: the path as written, relative to the reader's cgroup namespace root
    ///   (``CgroupNamespace`` maps it into the mounted tree).
    public static func cgroupOfProcess(_ text: String) -> String? {
        for line in lines(text) where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }

    /// `cgroup.procs`: one pid per line. The kernel writes 0 for a task outside the reader's pid
    /// namespace; such a task has no pid tierd could name (and to the page-moving calls, pid 0
    /// is the caller itself), so it is left out.
    public static func pids(_ text: String) -> [Int32] { ByteScanner.withBytes(text, pids(bytes:)) }

    public static func pids(bytes: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var pids: [Int32] = []
        ByteScanner.forEachLine(bytes) { line in
            if let value = ByteScanner.uint64(line), value > 0, value <= UInt64(Int32.max) { pids.append(Int32(value)) }
        }
        return pids
    }

    /// Every line of `/proc/PID/numa_maps`:
    /// ```
    /// 00400000 bind:0 file=/usr/bin/python3.11 mapped=24 mapmax=4 active=0 N0=18 N1=6 kernelpagesize_kB=4
    /// 7f1c... default anon=30721 dirty=30721 active=0 N0=30721 kernelpagesize_kB=4
    /// ```
    public static func numaMaps(_ text: String) -> [NumaMapsEntry] {
        lines(text).compactMap(numaMapsLine)
    }

    /// One line of numa_maps (a mapping), nil when it is not one.
    public static func numaMapsLine(_ line: Substring) -> NumaMapsEntry? {
        guard let space = line.firstIndex(of: " "),
              let start = UInt64(line[..<space], radix: 16) else { return nil }
        let rest = line[line.index(after: space)...]
        // Mode names may contain spaces ("prefer (many)", "weighted interleave"): match them whole.
        var policy = Mempolicy(mode: .default, nodes: .empty)
        var afterPolicy = rest
        for (name, mode) in Mempolicy.Mode.kernelNames where rest.hasPrefix(name) {
            var token = rest.dropFirst(name.count)
            let end = token.firstIndex(of: " ") ?? token.endIndex
            let suffix = token[..<end]           // "", "=static:0", ":0-1"
            token = token[end...]
            var nodes = NodeSet.empty
            if let colon = suffix.firstIndex(of: ":") {
                nodes = NodeSet.parseList(suffix[suffix.index(after: colon)...]) ?? .empty
            }
            policy = Mempolicy(mode: mode, nodes: nodes)
            afterPolicy = token
            break
        }
        var pagesPerNode: [Int: UInt64] = [:]
        var pageSize: UInt64 = 4096
        var isAnonymous = false
        var file: String?
        var maxMapCount = 1
        for field in afterPolicy.split(separator: " ") {
            if field.hasPrefix("N"), let eq = field.firstIndex(of: "="),
               let node = Int(field[field.index(after: field.startIndex)..<eq]), node >= 0, node <= NodeSet.maxNodeID,
               let pages = UInt64(field[field.index(after: eq)...]) {
                pagesPerNode[node] = pages
            } else if field.hasPrefix("kernelpagesize_kB=") {
                // A power of two from 4 KiB to 16 GiB (the largest huge page), or not the kernel's line.
                guard let kib = UInt64(field.dropFirst(18)), kib >= 4, kib <= 16 << 20, kib & (kib - 1) == 0 else { return nil }
                pageSize = kib * 1024
            } else if field.hasPrefix("anon=") {
                isAnonymous = true
            } else if field.hasPrefix("file=") {
                file = String(field.dropFirst(5))
            } else if field.hasPrefix("mapmax="), let count = Int(field.dropFirst(7)) {
                maxMapCount = count
            }
        }
        let pages = pagesPerNode.values.reduce(UInt64(0)) { $0 &+ min($1, maxBytes) }
        guard pages <= maxBytes / pageSize else { return nil }
        return NumaMapsEntry(start: start, policy: policy, pagesPerNode: pagesPerNode,
                             pageSize: pageSize, hasAnonymousPages: isAnonymous, file: file, maxMapCount: maxMapCount)
    }

    /// `/proc/PID/maps`: "7f1c00000000-7f1c40000000 rw-p 00000000 00:00 0   [heap]".
    /// - Returns: the start and end address of every mapping.
    public static func mapRanges(_ text: String) -> [Range<UInt64>] {
        lines(text).compactMap { line in
            guard let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "),
                  let lo = UInt64(line[..<dash], radix: 16),
                  let hi = UInt64(line[line.index(after: dash)..<space], radix: 16), lo < hi else { return nil }
            return lo..<hi
        }
    }
}

/// A cgroup's pressure stall information: the share of wall time some (or all) of its
/// tasks were stalled on memory, smoothed (avg10, avg60) and cumulative (total, µs).
public struct Pressure: Sendable, Equatable {
    /// One PSI line. Averages are fractions (0.2 = 20 %), `totalMicroseconds` only grows.
    public struct Line: Sendable, Equatable {
        public var avg10: Double
        public var avg60: Double
        public var totalMicroseconds: UInt64
        public init(avg10: Double, avg60: Double, totalMicroseconds: UInt64) {
            self.avg10 = avg10; self.avg60 = avg60; self.totalMicroseconds = totalMicroseconds
        }
    }
    public var some: Line
    public var full: Line
    public init(some: Line, full: Line) { self.some = some; self.full = full }
    public static let zero = Pressure(some: .init(avg10: 0, avg60: 0, totalMicroseconds: 0),
                                      full: .init(avg10: 0, avg60: 0, totalMicroseconds: 0))
}

/// Per-node bytes of a cgroup (hierarchical: includes its descendants), from `memory.numa_stat`.
/// Stored densely by node id: hosts have a handful of nodes, and the planner reads these for
/// every group on every tick.
public struct NumaStat: Sendable, Equatable {
    /// Anonymous bytes, indexed by node id.
    public private(set) var anon: [UInt64] = []
    /// File-backed bytes, indexed by node id.
    public private(set) var file: [UInt64] = []

    public init() {}

    public init(anon: [Int: UInt64], file: [Int: UInt64] = [:]) {
        for (node, bytes) in anon { set(anon: bytes, node: node) }
        for (node, bytes) in file { set(file: bytes, node: node) }
    }

    public mutating func set(anon bytes: UInt64, node: Int) { grow(node); anon[node] = bytes }
    public mutating func set(file bytes: UInt64, node: Int) { grow(node); file[node] = bytes }

    private mutating func grow(_ node: Int) {
        precondition(node >= 0 && node <= NodeSet.maxNodeID, "node id out of range")
        while anon.count <= node { anon.append(0); file.append(0) }
    }

    /// Anonymous plus file-backed bytes on `node`: the memory a migration can move.
    public func bytes(on node: Int) -> UInt64 { node >= 0 && node < anon.count ? anon[node] + file[node] : 0 }

    public func bytes(on nodes: NodeSet) -> UInt64 {
        var total: UInt64 = 0
        for node in 0..<anon.count where nodes.contains(node) { total += anon[node] + file[node] }
        return total
    }

    /// Nodes this group has any bytes on.
    public var nodes: NodeSet { NodeSet((0..<anon.count).filter { anon[$0] + file[$0] > 0 }) }

    /// This group's bytes less its children's, floored at zero per node and item.
    public func subtracting(_ other: NumaStat) -> NumaStat {
        var result = self
        for node in 0..<min(anon.count, other.anon.count) {
            result.anon[node] = anon[node] > other.anon[node] ? anon[node] - other.anon[node] : 0
            result.file[node] = file[node] > other.file[node] ? file[node] - other.file[node] : 0
        }
        return result
    }

    public func adding(_ other: NumaStat) -> NumaStat {
        var result = self
        if other.anon.count > 0 { result.grow(other.anon.count - 1) }
        for node in 0..<other.anon.count {
            result.anon[node] += other.anon[node]
            result.file[node] += other.file[node]
        }
        return result
    }

    public static func == (a: NumaStat, b: NumaStat) -> Bool {
        func value(_ values: [UInt64], _ node: Int) -> UInt64 { node < values.count ? values[node] : 0 }
        for node in 0..<max(a.anon.count, b.anon.count) {
            if value(a.anon, node) != value(b.anon, node) || value(a.file, node) != value(b.file, node) { return false }
        }
        return true
    }
}

/// The `memory.stat` counters tierd reports beside its own accounting. The kernel's
/// pgdemote counters do not include moves made with migrate_pages(2).
public struct MemoryStat: Sendable, Equatable {
    public var anonBytes: UInt64 = 0
    public var fileBytes: UInt64 = 0
    /// What one path of the kernel's reclaim took from the group (`pgsteal_PATH`) and how much of
    /// it went to a lower tier (`pgdemote_PATH`); what was stolen and not demoted was discarded
    /// (page cache) or swapped.
    public struct ReclaimPath: Sendable, Equatable {
        public var stolen: UInt64 = 0
        public var demoted: UInt64 = 0
        public init(stolen: UInt64 = 0, demoted: UInt64 = 0) { self.stolen = stolen; self.demoted = demoted }
    }
    /// kswapd's reclaim: the kernel's own, when a node runs low.
    public var background = ReclaimPath()
    /// Reclaim by an allocating task; on kernels without the proactive counters, a
    /// `memory.reclaim` request's reclaim too.
    public var direct = ReclaimPath()
    public var khugepaged = ReclaimPath()
    /// `memory.reclaim` requests, counted apart from `direct` on newer kernels (7.3; not 6.12).
    public var proactive = ReclaimPath()
    /// Whether the kernel counts `memory.reclaim` apart (its `pgsteal_proactive` is present).
    public var countsProactiveReclaim = false
    /// Demotions by the kernel's reclaim other than the proactive counters (on 6.12, a
    /// `memory.reclaim` request's demotions count as `_direct`).
    public var pagesDemotedByKernel: UInt64 { background.demoted + direct.demoted + khugepaged.demoted }
    /// `pgdemote_proactive` (where the kernel has it): demotions asked through `memory.reclaim`.
    public var pagesDemotedProactively: UInt64 { proactive.demoted }
    /// Every `pgsteal_*`: pages reclaim took from the group, demoted or not.
    public var pagesStolen: UInt64 { background.stolen + direct.stolen + khugepaged.stolen + proactive.stolen }
    public var pagesPromotedByKernel: UInt64 = 0
    /// Pages of the group written to swap (`pswpout`, 7.3 on) or compressed into zswap
    /// (`zswpout`); 6.12 counts only the latter per group, so tierd reads `memory.swap.current` too.
    public var pagesSwappedOut: UInt64 = 0
    public var refaultsAnon: UInt64 = 0
    public var refaultsFile: UInt64 = 0
    public init() {}
}

/// A task's NUMA memory policy as `numa_maps` shows it for one mapping.
public struct Mempolicy: Sendable, Equatable, CustomStringConvertible {
    /// The kernel's policy modes (include/uapi/linux/mempolicy.h).
    public enum Mode: String, Sendable, Equatable {
        case `default`, local, prefer, bind, interleave, weightedInterleave, preferMany

        /// The names mpol_to_str() writes, longest first so that prefixes do not shadow.
        static let kernelNames: [(String, Mode)] = [
            ("weighted interleave", .weightedInterleave), ("prefer (many)", .preferMany),
            ("interleave", .interleave), ("default", .default), ("prefer", .prefer),
            ("local", .local), ("bind", .bind),
        ]
        var kernelName: String { Mode.kernelNames.first { $0.1 == self }!.0 }
    }
    public var mode: Mode
    public var nodes: NodeSet
    public init(mode: Mode, nodes: NodeSet) { self.mode = mode; self.nodes = nodes }

    /// Whether the policy names nodes the task's memory should stay on.
    public var isExplicit: Bool { mode != .default && mode != .local }

    public var description: String { nodes.isEmpty ? mode.kernelName : "\(mode.kernelName):\(nodes)" }
}

/// One mapping in `/proc/PID/numa_maps`: its policy and how many pages sit on each node.
public struct NumaMapsEntry: Sendable, Equatable {
    public var start: UInt64
    public var policy: Mempolicy
    public var pagesPerNode: [Int: UInt64]
    public var pageSize: UInt64
    public var hasAnonymousPages: Bool
    public var file: String?
    /// The most processes mapping any one page of the mapping (`mapmax`; the kernel prints it
    /// only above 1). Above 1, some of its pages are shared, which a demotion leaves where they are.
    public var maxMapCount: Int = 1

    public func bytes(on nodes: NodeSet) -> UInt64 {
        nodes.reduce(0) { $0 + (pagesPerNode[$1] ?? 0) } * pageSize
    }

    /// Whether every page of the mapping is mapped by this process alone.
    public var isUnshared: Bool { maxMapCount <= 1 }
}

/// One page's entry in `/proc/PID/pagemap`: a 64-bit word per page of the address space, the
/// page in memory at bit 63 and soft-dirty (written since the task's bits were last cleared)
/// at bit 55.
public enum PagemapEntry {
    public static let present: UInt64 = 1 << 63
    public static let softDirty: UInt64 = 1 << 55

    /// The page is in memory and was written since its soft-dirty bit was cleared.
    public static func writtenAndPresent(_ word: UInt64) -> Bool { word & (present | softDirty) == present | softDirty }
}

/// What `/proc/PID/clear_refs` is written to clear.
public enum ClearRefs {
    /// The soft-dirty bits of all the task's pages.
    public static let softDirty = "4"
}
