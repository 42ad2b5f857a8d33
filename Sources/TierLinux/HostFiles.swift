#if canImport(Glibc)
import Glibc
#endif
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
}

/// `HostFiles` over the real file system under `root`, with plain open/read/close: cgroupfs and
/// procfs files are small, and a tick reads thousands of them.
public struct RootedHostFiles: HostFiles {
    public let root: String

    public init(root: String = "/") {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    public func resolve(_ path: String) -> String { root == "/" ? path : root + path }

    static func classify(_ path: String, _ code: Int32) -> HostFileError {
        code == ENOENT || code == ENODEV || code == ESRCH || code == ENOTDIR ? .vanished(path) : .failed(path, errno: code)
    }

    public func read(_ path: String) throws(HostFileError) -> String {
        let fd = open(resolve(path), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.classify(path, errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        let chunk = 16384
        while true {
            let start = bytes.count
            bytes.reserveCapacity(start + chunk)
            var readCount = 0
            let code: Int32 = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunk) { buffer in
                let n = Glibc.read(fd, buffer.baseAddress, chunk)
                if n < 0 { return errno }
                readCount = n
                bytes.append(contentsOf: buffer[0..<n])
                return 0
            }
            if code == EINTR { continue }
            if code != 0 { throw Self.classify(path, code) }
            if readCount == 0 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func write(_ path: String, _ text: String) throws(HostFileError) {
        let fd = open(resolve(path), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.classify(path, errno) }
        defer { close(fd) }
        let code: Int32 = text.utf8CString.withUnsafeBufferPointer { buffer in
            Glibc.write(fd, buffer.baseAddress, buffer.count - 1) < 0 ? errno : 0
        }
        if code != 0 { throw Self.classify(path, code) }
    }

    public func subdirectories(_ path: String) throws(HostFileError) -> [String] {
        guard let dir = opendir(resolve(path)) else { throw Self.classify(path, errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func exists(_ path: String) -> Bool { access(resolve(path), F_OK) == 0 }
}

/// Where the kernel keeps what tierd reads. The only place these paths are spelled.
public enum KernelPaths {
    public static let mountinfo = "/proc/self/mountinfo"
    public static let selfStatus = "/proc/self/status"
    public static let nodeRoot = "/sys/devices/system/node"
    public static let onlineNodes = "/sys/devices/system/node/online"
    public static let nodesWithMemory = "/sys/devices/system/node/has_memory"
    public static let nodesWithCPU = "/sys/devices/system/node/has_cpu"
    public static let memoryTiering = "/sys/devices/virtual/memory_tiering"
    public static let demotionEnabled = "/sys/kernel/mm/numa/demotion_enabled"
    public static let numaBalancing = "/proc/sys/kernel/numa_balancing"
    public static let defaultCgroupMount = "/sys/fs/cgroup"

    public static let dropCaches = "/proc/sys/vm/drop_caches"
    public static let transparentHugepages = "/sys/kernel/mm/transparent_hugepage/enabled"

    public static func node(_ id: Int) -> String { "\(nodeRoot)/node\(id)" }
    public static func process(_ pid: Int32) -> String { "/proc/\(pid)" }
}
