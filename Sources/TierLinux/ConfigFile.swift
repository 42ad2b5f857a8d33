#if canImport(Glibc)
import Glibc
#endif
import TierCore

/// Reads and compiles a policy file from the real file system (never through a fixture root:
/// the policy is the operator's, not the kernel's).
///
/// A root daemon takes orders from this file, so it trusts it as sshd's StrictModes trusts a key
/// file: a regular file (a FIFO would block the read forever, a device would never end), owned by
/// root or by the user tierd runs as, writable by no one else, reached only through directories
/// no one else can write to, a symlink's own directory included (a sticky directory such as /tmp
/// or a ConfigMap volume's root excepted: others cannot replace what they do not own there). Anything else is refused with the reason, and a reload
/// keeps the running policy.
public enum PolicyFileLoader {
    public static func load(path: String) throws -> Policy {
        // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            throw PolicyError(file: path, line: 1, column: 1, field: "", message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        if let distrust = PolicyFileTrust.problem(openFile: fd, path: path, user: geteuid()) {
            throw PolicyError(file: path, line: 1, column: 1, field: "", message: distrust)
        }
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

/// Whether a policy file and the directories above it are safe for a root daemon to obey.
enum PolicyFileTrust {
    /// Why the open file `fd` (named `path`) is not to be trusted by a tierd running as `user`, or nil.
    static func problem(openFile fd: Int32, path: String, user: uid_t) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return "cannot stat: \(String(cString: strerror(errno)))" }
        guard info.st_mode & S_IFMT == S_IFREG else {
            return "not a regular file (\(kind(info.st_mode))): tierd reads its policy only from a regular file"
        }
        if let problem = ownership(info, what: "the file", user: user) { return problem }
        return directoriesProblem(path: path, user: user)
    }

    /// Why a directory the path is resolved through is not to be trusted, or nil. Every directory
    /// a name is looked up in counts, a symlink's own as much as its target's: whoever can write
    /// where a link lies can point it at another file.
    static func directoriesProblem(path: String, user: uid_t) -> String? {
        var checked = Set<String>()
        func check(_ directory: String) -> String? {
            guard checked.insert(directory).inserted else { return nil }
            var info = stat()
            guard stat(directory, &info) == 0 else { return "cannot stat \(directory): \(String(cString: strerror(errno)))" }
            return ownership(info, what: "its directory \(directory)", user: user, stickyAllowed: true)
        }
        var current = "/"
        var pending = components(of: path.hasPrefix("/") ? path : workingDirectory() + "/" + path)
        var links = 0
        while !pending.isEmpty {
            let name = pending.removeFirst()
            if name == "." { continue }
            if name == ".." { current = parent(of: current); continue }
            if let problem = check(current) { return problem }
            let next = current == "/" ? "/" + name : current + "/" + name
            var info = stat()
            guard lstat(next, &info) == 0 else { return "cannot stat \(next): \(String(cString: strerror(errno)))" }
            if info.st_mode & S_IFMT == S_IFLNK {
                links += 1
                guard links <= 40, let target = linkTarget(next) else { return "cannot resolve the path at \(next)" }
                if target.hasPrefix("/") { current = "/" }
                pending = components(of: target) + pending
            } else if pending.isEmpty {
                return nil
            } else {
                current = next
            }
        }
        return nil
    }

    static func components(of path: String) -> [String] {
        path.split(separator: "/").map(String.init)
    }

    static func workingDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "/" }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func ownership(_ info: stat, what: String, user: uid_t, stickyAllowed: Bool = false) -> String? {
        if info.st_uid != 0 && info.st_uid != user {
            return "\(what) is owned by uid \(info.st_uid): a policy is obeyed only if it and its directories belong to root"
                + (user == 0 ? "" : " or uid \(user)")
        }
        let othersWrite = info.st_mode & (S_IWGRP | S_IWOTH) != 0
        if othersWrite && !(stickyAllowed && info.st_mode & S_ISVTX != 0) {
            return "\(what) is writable by group or others (mode \(String(info.st_mode & 0o7777, radix: 8))): run chmod go-w on it"
        }
        return nil
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO"
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a file"
        }
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

    /// Whether `changed()` would report a new version now (it does not take it).
    public var hasNewVersion: Bool {
        guard let now = Self.version(of: path) else { return false }
        return now != seen
    }

    /// True once for each new version of the file; a file that went missing is no new version
    /// (a ConfigMap update never leaves the path empty; an operator's half-done edit may).
    public mutating func changed() -> Bool {
        guard let now = Self.version(of: path), now != seen else { return false }
        seen = now
        return true
    }
}
