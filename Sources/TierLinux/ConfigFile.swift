#if canImport(Glibc)
import Glibc
#endif
import TierCore

/// Reads and compiles a policy file from the real file system (never through a fixture root:
/// the policy is the operator's, not the kernel's).
public enum PolicyFileLoader {
    public static func load(path: String) throws -> Policy {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw PolicyError(file: path, line: 1, column: 1, field: "", message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw PolicyError(file: path, line: 1, column: 1, field: "", message: "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes += buffer[0..<n]
            // Refuse early instead of reading an unbounded file into memory.
            if bytes.count > PolicyCompiler.maxFileBytes { break }
        }
        return try PolicyCompiler.compile(bytes: bytes, file: path)
    }
}

/// Notices that the policy file changed, so that tierd reloads it without a SIGHUP: a Kubernetes
/// ConfigMap volume is updated by swapping a `..data` symlink to a new directory, and an edited
/// file changes its size or modification time. `stat(2)` follows the symlinks to whatever file the
/// path names now; one call per tick.
public struct PolicyFileWatch: Sendable {
    /// What identifies one version of the file.
    struct Version: Equatable, Sendable {
        var device: UInt64, inode: UInt64, size: Int64, modifiedSeconds: Int, modifiedNanoseconds: Int
    }

    public let path: String
    private var seen: Version?

    /// Starts from the file as it is now: the version tierd loaded at start.
    public init(path: String) {
        self.path = path
        seen = Self.version(of: path)
    }

    static func version(of path: String) -> Version? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Version(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                       modifiedSeconds: Int(info.st_mtim.tv_sec), modifiedNanoseconds: Int(info.st_mtim.tv_nsec))
    }

    /// True once for each new version of the file; a file that went missing is no new version
    /// (a ConfigMap update never leaves the path empty; an operator's half-done edit may).
    public mutating func changed() -> Bool {
        guard let now = Self.version(of: path), now != seen else { return false }
        seen = now
        return true
    }
}
