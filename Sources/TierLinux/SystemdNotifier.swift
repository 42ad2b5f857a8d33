#if canImport(Glibc)
import Glibc
#endif

/// The service manager's notification protocol (sd_notify(3)), spoken without libsystemd: one
/// datagram of "KEY=value" lines to the unix socket named by `NOTIFY_SOCKET` ("@name" is in the
/// abstract namespace). Without that variable (not started by systemd as `Type=notify`) every
/// call does nothing.
public struct SystemdNotifier: Sendable {
    /// Where the service manager listens; nil when tierd was not started with Type=notify.
    public let socketPath: String?
    /// How often the manager wants `WATCHDOG=1` at the latest (`WATCHDOG_USEC`), if it watches tierd.
    public let watchdogInterval: Duration?

    /// - Parameter environment: the process's environment (a test passes its own).
    public init(environment: [String: String], pid: Int32 = getpid()) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == pid } ?? true
        watchdogInterval = forUs ? environment["WATCHDOG_USEC"].flatMap(UInt64.init).flatMap { $0 > 0 ? .microseconds($0) : nil } : nil
    }

    /// Sends `message` ("READY=1", "WATCHDOG=1", "STATUS=…"); false if there is no manager or it failed.
    @discardableResult
    public func notify(_ message: String) -> Bool {
        guard let socketPath, let address = UnixSocketAddress(socketPath) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let payload = Array(message.utf8)
        let sent = address.withSockaddr { target, length in
            payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), target, length) }
        }
        return sent == payload.count
    }
}
