#if canImport(Glibc)
import Glibc
#endif
import CNuma
import TierCore

/// Why a kernel file could not be read or written.
public enum HostFileError: Error, Equatable, CustomStringConvertible {
    /// The file, its cgroup or its process is gone (ENOENT, ENODEV, ESRCH): normal, counted.
    case vanished(String)
    case failed(String, errno: Int32)

    public var description: String {
        switch self {
        case .vanished(let path): return "\(path): no longer exists"
        case .failed(let path, let code): return "\(path): \(String(cString: strerror(code)))"
        }
    }
}

/// The kernel's files, seen from a root directory: "/" in production, a fixture tree in tests.
/// Every read tierd makes goes through here, so nothing else names /proc or /sys.
public protocol HostFiles: Sendable {
    /// The root every path is resolved under ("/" or a fixture directory).
    var root: String { get }
    func read(_ path: String) throws(HostFileError) -> String
    func write(_ path: String, _ text: String) throws(HostFileError)
    /// Names of the subdirectories of `path`.
    func subdirectories(_ path: String) throws(HostFileError) -> [String]
    func exists(_ path: String) -> Bool
    /// Reads the files `names` of directory `path`, handing each one's bytes to `visit` (by its index
    /// in `names`; nil when absent) without making Strings, and returns the subdirectories: what the
    /// collector needs of one cgroup. Throws `.vanished` only when the directory itself is gone.
    func visitDirectory(_ path: String, names: [String], listSubdirectories: Bool,
                        _ visit: (Int, UnsafeBufferPointer<UInt8>?) -> Void) throws(HostFileError) -> [String]
    /// `path` opened to be read again and again (`KeptFile`); nil where files are not kept open.
    func keepOpen(_ path: String) -> KeptFile?
    /// The first `bytes` of `path` from one read (`TaskMempolicies`); nil when it cannot be opened.
    func readHead(_ path: String, upTo bytes: Int) -> String?
}

/// A kernel file kept open and read again from its start: sysfs and procfs make a file's text
/// anew on every read from offset 0, so one reading costs a pread(2) instead of a path walk, an
/// open, a read and a close. For what is read many times a second (the free-DRAM watch).
public final class KeptFile: Sendable {
    private let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// The file's text now (up to 16 KiB), handed to `body`; nil when the read fails. A read that
    /// returns less than asked ends it: sysfs and procfs give a small file whole in one read.
    public func withContents<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16384) { buffer -> R? in
            var filled = 0
            while filled < buffer.count {
                let asked = buffer.count - filled
                let n = pread(fd, buffer.baseAddress! + filled, asked, off_t(filled))
                if n < 0 { if errno == EINTR { continue }; return nil }
                filled += n
                if n < asked { break }
            }
            return body(UnsafeBufferPointer(rebasing: buffer[0..<filled]))
        }
    }
}

extension HostFiles {
    /// `path` as the file system names it under `root`.
    public func resolve(_ path: String) -> String { root == "/" ? path : root + path }

    /// Path by path, for test doubles; `RootedHostFiles` reads through one directory descriptor.
    public func visitDirectory(_ path: String, names: [String], listSubdirectories: Bool,
                               _ visit: (Int, UnsafeBufferPointer<UInt8>?) -> Void) throws(HostFileError) -> [String] {
        guard exists(path) else { throw .vanished(path) }
        for (index, name) in names.enumerated() {
            if var text = try? read(path + "/" + name) { text.withUTF8 { visit(index, $0) } } else { visit(index, nil) }
        }
        return listSubdirectories ? try subdirectories(path) : []
    }

    public func keepOpen(_ path: String) -> KeptFile? { nil }

    /// The first `bytes` of `path` from one read, nil when it cannot be opened. For files the
    /// kernel makes record by record (numa_maps): it makes only the records that fill the read.
    public func readHead(_ path: String, upTo bytes: Int) -> String? {
        let fd = open(resolve(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes) { buffer -> String? in
            var n: Int
            repeat { n = Glibc.read(fd, buffer.baseAddress!, bytes) } while n < 0 && errno == EINTR
            return n < 0 ? nil : String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
        }
    }
}

/// `HostFiles` over the real file system under `root`, with plain open/read/close: cgroupfs and
/// procfs files are small, and a tick reads thousands of them.
public struct RootedHostFiles: HostFiles {
    public let root: String

    public init(root: String = "/") {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }


    static func classify(_ path: String, _ code: Int32) -> HostFileError {
        code == ENOENT || code == ENODEV || code == ESRCH || code == ENOTDIR ? .vanished(path) : .failed(path, errno: code)
    }

    public func keepOpen(_ path: String) -> KeptFile? {
        let fd = open(resolve(path), O_RDONLY | O_CLOEXEC)
        return fd >= 0 ? KeptFile(fd: fd) : nil
    }

    public func read(_ path: String) throws(HostFileError) -> String {
        let fd = open(resolve(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.classify(path, errno) }
        defer { close(fd) }
        return try Self.readAll(fd, path)
    }

    /// Opens the directory once and reads each file relative to it (openat), so the kernel walks
    /// the path once per cgroup instead of once per file; each file is read into one reused buffer
    /// and handed over as bytes; subdirectories are listed from the same handle.
    public func visitDirectory(_ path: String, names: [String], listSubdirectories: Bool,
                               _ visit: (Int, UnsafeBufferPointer<UInt8>?) -> Void) throws(HostFileError) -> [String] {
        let dirfd = open(resolve(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { throw Self.classify(path, errno) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16384) { buffer in
            for (index, name) in names.enumerated() {
                let fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { visit(index, nil); continue }
                defer { close(fd) }
                let (filled, complete) = Self.readWhole(fd, into: buffer)
                if complete {
                    visit(index, UnsafeBufferPointer(rebasing: buffer[0..<filled]))
                } else if filled == buffer.count, var text = try? Self.readAll(fd, name, prefix: Array(buffer)) {
                    text.withUTF8 { visit(index, $0) }
                } else {
                    visit(index, nil)
                }
            }
        }
        defer { close(dirfd) }
        return listSubdirectories ? Self.subdirectoryNames(dirfd) : []
    }

    /// Reads `fd` from where it stands into `buffer`: the bytes filled, and whether that is the
    /// whole file. A read that returns less than asked ends the file when the next line could
    /// not have been what stopped it: cgroup files are seq_files, which fill a read from a buffer
    /// of at least a page and stop short of it only at the end or when a record does not fit
    /// (the records of the cgroup files `visitDirectory` reads — a pid, or the whole file — are
    /// shorter than ``lineAllowance`` or alone); a regular file stops short only at its end. That
    /// spares the read that returns 0 for most of a tick's files.
    static func readWhole(_ fd: Int32, into buffer: UnsafeMutableBufferPointer<UInt8>) -> (filled: Int, complete: Bool) {
        var filled = 0
        while filled < buffer.count {
            let asked = buffer.count - filled
            let n = Glibc.read(fd, buffer.baseAddress! + filled, asked)
            if n < 0 { if errno == EINTR { continue }; return (filled, false) }
            if n == 0 { return (filled, true) }
            filled += n
            if n < asked && filled + lineAllowance <= Int(TaskMigrator.systemPageSize) { return (filled, true) }
        }
        return (filled, false)
    }

    /// Room a seq_file read would have left for one more line (a pid, a PSI line) had there been one.
    static let lineAllowance = 256

    static func readAll(_ fd: Int32, _ path: String, prefix: [UInt8]) throws(HostFileError) -> String {
        var bytes = prefix
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 { if errno == EINTR { continue }; throw classify(path, errno) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readAll(_ fd: Int32, _ path: String) throws(HostFileError) -> String {
        // Most kernel files fit one small read: read into the stack and make the String from it;
        // larger ones (numa_maps, maps) continue into a growing array.
        let small = 8192
        let result: Result<String, HostFileError> = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: small) { buffer in
            var filled = 0
            while filled < small {
                let n = Glibc.read(fd, buffer.baseAddress! + filled, small - filled)
                if n < 0 { if errno == EINTR { continue }; return .failure(Self.classify(path, errno)) }
                if n == 0 { return .success(String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<filled]), as: UTF8.self)) }
                filled += n
            }
            do throws(HostFileError) { return .success(try Self.readAll(fd, path, prefix: Array(buffer))) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public func write(_ path: String, _ text: String) throws(HostFileError) {
        let fd = open(resolve(path), O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw Self.classify(path, errno) }
        defer { close(fd) }
        let code: Int32 = text.utf8CString.withUnsafeBufferPointer { buffer in
            Glibc.write(fd, buffer.baseAddress, buffer.count - 1) < 0 ? errno : 0
        }
        if code != 0 { throw Self.classify(path, code) }
    }

    public func subdirectories(_ path: String) throws(HostFileError) -> [String] {
        let dirfd = open(resolve(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { throw Self.classify(path, errno) }
        defer { close(dirfd) }
        return Self.subdirectoryNames(dirfd)
    }

    /// The names of the directories in the open directory `dirfd`, read with getdents64(2)
    /// straight into a stack buffer (a DIR stream would add an fstat, an fcntl and a heap buffer
    /// per cgroup). A cgroup directory holds tens of files; 32 KiB lists most in one call.
    static func subdirectoryNames(_ dirfd: Int32) -> [String] {
        var names: [String] = []
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32768) { buffer in
            while true {
                let n = tierd_getdents64(dirfd, buffer.baseAddress, UInt(buffer.count))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                var offset = 0
                while offset + 19 < n {
                    // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
                    let record = buffer.baseAddress! + offset
                    let length = Int(UnsafeRawPointer(record + 16).loadUnaligned(as: UInt16.self))
                    guard length > 0 else { return }
                    if record[18] == UInt8(DT_DIR) {
                        let name = UnsafeRawPointer(record + 19).withMemoryRebound(to: CChar.self, capacity: length - 19) { String(cString: $0) }
                        if name != "." && name != ".." { names.append(name) }
                    }
                    offset += length
                }
            }
        }
        return names
    }

    public func exists(_ path: String) -> Bool { access(resolve(path), F_OK) == 0 }
}

/// Where the kernel keeps what tierd reads. The only place these paths are spelled.
public enum KernelPaths {
    public static let mountinfo = "/proc/self/mountinfo"
    public static let selfStatus = "/proc/self/status"
    public static let selfCgroup = "/proc/self/cgroup"
    public static let nodeRoot = "/sys/devices/system/node"
    public static let onlineNodes = "/sys/devices/system/node/online"
    public static let nodesWithMemory = "/sys/devices/system/node/has_memory"
    public static let nodesWithCPU = "/sys/devices/system/node/has_cpu"
    public static let memoryTiering = "/sys/devices/virtual/memory_tiering"
    public static let demotionEnabled = "/sys/kernel/mm/numa/demotion_enabled"
    public static let numaBalancing = "/proc/sys/kernel/numa_balancing"
    /// The file of a kernel setting tierd may own.
    public static func setting(_ setting: KernelSetting) -> String {
        switch setting {
        case .numaBalancing, .promoteRateLimit: "/proc/sys/" + String(setting.rawValue.map { $0 == "." ? "/" : $0 })
        case .lruGenFeatures: lruGenEnabled
        }
    }
    /// `uname -r`: what a kernel can do that older ones could not is read from its release.
    public static let kernelRelease = "/proc/sys/kernel/osrelease"
    /// DAMON's sysfs interface: `nr_kdamonds`, and `N/state` ("on" or "off") for each context.
    public static let damonKdamonds = "/sys/kernel/mm/damon/admin/kdamonds"
    /// Multi-generational LRU: "0x0000" off, other bits on.
    public static let lruGenEnabled = "/sys/kernel/mm/lru_gen/enabled"
    /// One bit per page frame: set marks it idle, still set later means not accessed since.
    public static let pageIdleBitmap = "/sys/kernel/mm/page_idle/bitmap"

    public static let dropCaches = "/proc/sys/vm/drop_caches"
    public static let transparentHugepages = "/sys/kernel/mm/transparent_hugepage/enabled"
    public static let vmstat = "/proc/vmstat"
    public static let zoneinfo = "/proc/zoneinfo"
    public static let interrupts = "/proc/interrupts"
    public static let cpuTimes = "/proc/stat"
    public static let processRoot = "/proc"
    public static let compactMemory = "/proc/sys/vm/compact_memory"
    /// The last pid handed out in this pid namespace; writing N makes N+1 the next (the lab's pid reuse).
    public static let lastPid = "/proc/sys/kernel/ns_last_pid"

    public static func node(_ id: Int) -> String { "\(nodeRoot)/node\(id)" }
    public static func process(_ pid: Int32) -> String { "\(processRoot)/\(pid)" }
}
