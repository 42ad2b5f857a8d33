/// Parsers from the text the kernel writes to models. Each comment quotes the text it parses.
/// Parsers never throw on an unknown line: newer kernels add fields, and tierd must keep working.
public enum KernelText {
    /// `/sys/fs/cgroup/<group>/memory.pressure` or `/proc/pressure/memory`:
    /// ```
    /// some avg10=4.64 avg60=4.50 avg300=1.22 total=3883755
    /// full avg10=4.64 avg60=4.50 avg300=1.22 total=3882047
    /// ```
    public static func pressure(_ text: String) -> Pressure? {
        var some: Pressure.Line?
        var full: Pressure.Line?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first else { continue }
            var avg10: Double?, avg60: Double?, total: UInt64?
            for field in fields.dropFirst() {
                guard let eq = field.firstIndex(of: "=") else { continue }
                let key = field[..<eq], value = field[field.index(after: eq)...]
                switch key {
                case "avg10": avg10 = Double(value)
                case "avg60": avg60 = Double(value)
                case "total": total = UInt64(value)
                default: break
                }
            }
            guard let avg10, let avg60, let total else { continue }
            let parsed = Pressure.Line(avg10: avg10 / 100, avg60: avg60 / 100, totalMicroseconds: total)
            if kind == "some" { some = parsed } else if kind == "full" { full = parsed }
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
    public static func numaStat(_ text: String) -> NumaStat {
        var stat = NumaStat()
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            let item = line[..<space]
            guard item == "anon" || item == "file" else { continue }
            var perNode: [Int: UInt64] = [:]
            for field in line[line.index(after: space)...].split(separator: " ") {
                guard field.first == "N", let eq = field.firstIndex(of: "="),
                      let node = Int(field[field.index(after: field.startIndex)..<eq]),
                      let bytes = UInt64(field[field.index(after: eq)...]) else { continue }
                perNode[node] = bytes
            }
            if item == "anon" { stat.anon = perNode } else { stat.file = perNode }
        }
        return stat
    }

    /// `memory.stat`: "key value" per line. Keeps the counters tierd reports
    /// (`anon`, `file`, `pgdemote_*`, `pgpromote_success`, `workingset_refault_*`).
    /// ```
    /// anon 175087616
    /// pgdemote_direct 0
    /// ```
    public static func memoryStat(_ text: String) -> MemoryStat {
        var stat = MemoryStat()
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " "),
                  let value = UInt64(line[line.index(after: space)...]) else { continue }
            switch line[..<space] {
            case "anon": stat.anonBytes = value
            case "file": stat.fileBytes = value
            case "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged": stat.pagesDemotedByKernel += value
            case "pgpromote_success": stat.pagesPromotedByKernel = value
            case "workingset_refault_anon": stat.refaultsAnon = value
            case "workingset_refault_file": stat.refaultsFile = value
            default: break
            }
        }
        return stat
    }

    /// `/sys/devices/system/node/nodeN/meminfo`:
    /// ```
    /// Node 0 MemTotal:        1030452 kB
    /// Node 0 MemFree:          731180 kB
    /// ```
    /// - Returns: (total, free) in bytes, or nil if either line is missing.
    public static func nodeMeminfo(_ text: String) -> (total: UInt64, free: UInt64)? {
        var total: UInt64?, free: UInt64?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4, let kib = UInt64(fields[3]) else { continue }
            switch fields[2] {
            case "MemTotal:": total = kib * 1024
            case "MemFree:": free = kib * 1024
            default: break
            }
        }
        guard let total, let free else { return nil }
        return (total, free)
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
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields.count > 4,
                  fields[dash + 1] == "cgroup2" else { continue }
            return unescapeMountPath(String(fields[4]))
        }
        return nil
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

    /// `/proc/PID/status`, the line "Mems_allowed_list:\t0-2": the nodes that task may use.
    public static func memsAllowed(status: String) -> NodeSet? {
        for line in status.split(separator: "\n") where line.hasPrefix("Mems_allowed_list:") {
            return NodeSet.parseList(line.dropFirst("Mems_allowed_list:".count))
        }
        return nil
    }

    /// `/proc/PID/cgroup` on a cgroup v2 host: "0::/system.slice/db.service".
    /// - Returns: the path relative to the cgroup root, without the leading slash.
    public static func cgroupOfProcess(_ text: String) -> CgroupPath? {
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return CgroupPath(String(line.dropFirst(3)))
        }
        return nil
    }

    /// `cgroup.procs`: one pid per line.
    public static func pids(_ text: String) -> [Int32] {
        text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Every line of `/proc/PID/numa_maps`:
    /// ```
    /// 00400000 bind:0 file=/usr/bin/python3.11 mapped=24 mapmax=4 active=0 N0=18 N1=6 kernelpagesize_kB=4
    /// 7f1c... default anon=30721 dirty=30721 active=0 N0=30721 kernelpagesize_kB=4
    /// ```
    public static func numaMaps(_ text: String) -> [NumaMapsEntry] {
        text.split(separator: "\n").compactMap(numaMapsLine)
    }

    static func numaMapsLine(_ line: Substring) -> NumaMapsEntry? {
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
        for field in afterPolicy.split(separator: " ") {
            if field.hasPrefix("N"), let eq = field.firstIndex(of: "="),
               let node = Int(field[field.index(after: field.startIndex)..<eq]),
               let pages = UInt64(field[field.index(after: eq)...]) {
                pagesPerNode[node] = pages
            } else if field.hasPrefix("kernelpagesize_kB="), let kib = UInt64(field.dropFirst(18)) {
                pageSize = kib * 1024
            } else if field.hasPrefix("anon=") {
                isAnonymous = true
            } else if field.hasPrefix("file=") {
                file = String(field.dropFirst(5))
            }
        }
        return NumaMapsEntry(start: start, policy: policy, pagesPerNode: pagesPerNode,
                             pageSize: pageSize, hasAnonymousPages: isAnonymous, file: file)
    }

    /// `/proc/PID/maps`: "7f1c00000000-7f1c40000000 rw-p 00000000 00:00 0   [heap]".
    /// - Returns: the start and end address of every mapping.
    public static func mapRanges(_ text: String) -> [Range<UInt64>] {
        text.split(separator: "\n").compactMap { line in
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
public struct NumaStat: Sendable, Equatable {
    public var anon: [Int: UInt64] = [:]
    public var file: [Int: UInt64] = [:]
    public init(anon: [Int: UInt64] = [:], file: [Int: UInt64] = [:]) { self.anon = anon; self.file = file }

    /// Anonymous plus file-backed bytes on `node`: the memory a migration can move.
    public func bytes(on node: Int) -> UInt64 { (anon[node] ?? 0) + (file[node] ?? 0) }
    public func bytes(on nodes: NodeSet) -> UInt64 { nodes.reduce(0) { $0 + bytes(on: $1) } }
    public var nodes: NodeSet { NodeSet(Set(anon.keys).union(file.keys)) }

    /// This group's bytes less its children's, floored at zero per node and item.
    public func subtracting(_ other: NumaStat) -> NumaStat {
        func minus(_ a: [Int: UInt64], _ b: [Int: UInt64]) -> [Int: UInt64] {
            a.mapValues { $0 }.reduce(into: [:]) { out, kv in
                let (node, value) = kv
                let sub = b[node] ?? 0
                out[node] = value > sub ? value - sub : 0
            }
        }
        return NumaStat(anon: minus(anon, other.anon), file: minus(file, other.file))
    }

    public func adding(_ other: NumaStat) -> NumaStat {
        NumaStat(anon: anon.merging(other.anon, uniquingKeysWith: +),
                 file: file.merging(other.file, uniquingKeysWith: +))
    }
}

/// The `memory.stat` counters tierd reports beside its own accounting. The kernel's
/// pgdemote counters do not include moves made with migrate_pages(2).
public struct MemoryStat: Sendable, Equatable {
    public var anonBytes: UInt64 = 0
    public var fileBytes: UInt64 = 0
    public var pagesDemotedByKernel: UInt64 = 0
    public var pagesPromotedByKernel: UInt64 = 0
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

    public func bytes(on nodes: NodeSet) -> UInt64 {
        nodes.reduce(0) { $0 + (pagesPerNode[$1] ?? 0) } * pageSize
    }
}
