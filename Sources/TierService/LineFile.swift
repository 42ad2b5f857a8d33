#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An append-only file of lines that never stops tierd: a write that fails (a full disk, a removed
/// directory) is counted and reported once through `onTrouble` until a write succeeds again; the
/// file is reopened on request (logrotate's SIGUSR1/SIGHUP) and, with `maxBytes`, rotated by size
/// to `path.1` … `path.keep`.
public final class LineFile: Sendable {
    public let path: String
    let maxBytes: UInt64?
    let keep: Int
    let onTrouble: @Sendable (String) -> Void

    struct State {
        var fd: Int32
        var size: UInt64
        var failedWrites: UInt64 = 0
        var troubled = false
    }
    private let state: Mutex<State>

    /// - Throws: a message naming the file when it cannot be opened at start.
    public init(path: String, maxBytes: UInt64? = nil, keep: Int = 3, onTrouble: @escaping @Sendable (String) -> Void = { _ in }) throws(LineFileError) {
        self.path = path; self.maxBytes = maxBytes; self.keep = max(1, keep); self.onTrouble = onTrouble
        let fd = try Self.open(path)
        state = Mutex(State(fd: fd, size: Self.size(fd)))
    }

    deinit { _ = state.withLock { close($0.fd) } }

    static func open(_ path: String) throws(LineFileError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw LineFileError(description: "\(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    static func size(_ fd: Int32) -> UInt64 {
        var info = stat()
        return fstat(fd, &info) == 0 ? UInt64(max(0, info.st_size)) : 0
    }

    /// Writes failed so far.
    public var failedWrites: UInt64 { state.withLock { $0.failedWrites } }

    /// Appends one line (a newline is added). False when the write failed; tierd goes on regardless.
    @discardableResult
    public func append(_ line: String) -> Bool {
        let bytes = Array((line + "\n").utf8)
        var message: String?
        let ok = state.withLock { state -> Bool in
            if let maxBytes, state.size > 0, state.size + UInt64(bytes.count) > maxBytes { rotate(&state) }
            let written = bytes.withUnsafeBytes { Glibc.write(state.fd, $0.baseAddress, $0.count) }
            if written == bytes.count {
                state.size += UInt64(bytes.count)
                if state.troubled { state.troubled = false; message = "\(path): writing again" }
                return true
            }
            state.failedWrites += 1
            if !state.troubled {
                state.troubled = true
                message = "\(path): cannot write (\(written < 0 ? String(cString: strerror(errno)) : "short write")); lines are dropped and counted until it can"
            }
            return false
        }
        if let message { onTrouble(message) }
        return ok
    }

    /// Closes and opens the path again: after logrotate moved the file away.
    public func reopen() {
        state.withLock { state in
            guard let fd = try? Self.open(path) else { return }
            close(state.fd)
            state.fd = fd
            state.size = Self.size(fd)
        }
    }

    private func rotate(_ state: inout State) {
        for index in stride(from: keep - 1, through: 1, by: -1) { rename("\(path).\(index)", "\(path).\(index + 1)") }
        rename(path, "\(path).1")
        if let fd = try? Self.open(path) {
            close(state.fd)
            state.fd = fd
            state.size = 0
        }
    }
}

/// A line file that could not be opened.
public struct LineFileError: Error, CustomStringConvertible {
    public var description: String
}
