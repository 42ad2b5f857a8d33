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
