#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// `/metrics` for node_exporter's textfile collector, which reads every `*.prom` file of a directory:
/// written whole after each tick to a hidden temporary file beside it, then renamed over it, so a
/// scrape never reads half a file. Like the journal, a failed write never stops tierd: it is
/// counted and said once until a write succeeds again.
public final class MetricsTextfile: Sendable {
    public let path: String
    let temporary: String
    let onTrouble: @Sendable (String) -> Void
    private let trouble = Mutex((failedWrites: UInt64(0), troubled: false))

    /// Writes failed so far.
    public var failedWrites: UInt64 { trouble.withLock { $0.failedWrites } }

    /// - Throws: a sentence naming the path when node_exporter would never read it (no `.prom`
    ///   suffix) or its directory does not exist.
    public init(path: String, onTrouble: @escaping @Sendable (String) -> Void = { _ in }) throws(LineFileError) {
        guard path.hasSuffix(".prom"), !path.hasSuffix("/.prom") else {
            throw LineFileError(description: "\(path): node_exporter's textfile collector reads only files named *.prom")
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var info = stat()
        guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw LineFileError(description: "\(path): the directory \(directory) does not exist")
        }
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        self.path = path
        self.temporary = (directory == "/" ? "" : directory) + "/." + name + ".tmp"
        self.onTrouble = onTrouble
    }

    /// Replaces the file with `text`. False when it could not; the previous file stays as it was.
    @discardableResult
    public func write(_ text: String) -> Bool {
        let failure = replace(with: Array(text.utf8))
        let message = trouble.withLock { state -> String? in
            if let failure {
                state.failedWrites += 1
                defer { state.troubled = true }
                return state.troubled ? nil : "\(path): \(failure); the textfile is not updated until a write succeeds"
            }
            defer { state.troubled = false }
            return state.troubled ? "\(path): writing again" : nil
        }
        message.map(onTrouble)
        return failure == nil
    }

    private func replace(with bytes: [UInt8]) -> String? {
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { return "cannot create \(temporary): \(String(cString: strerror(errno)))" }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let why = String(cString: strerror(errno))
                close(fd); unlink(temporary)
                return "cannot write \(temporary): \(why)"
            }
            written += n
        }
        // The mode is set whatever the umask: node_exporter runs as its own user.
        fchmod(fd, 0o644)
        close(fd)
        guard rename(temporary, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            return "cannot rename \(temporary) over it: \(why)"
        }
        return nil
    }
}
