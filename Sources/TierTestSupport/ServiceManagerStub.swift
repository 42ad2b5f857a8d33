#if canImport(Glibc)
import Glibc
#endif
import TierLinux

/// Stands in for systemd's notification socket: a bound datagram socket at `name` ("@…" is in the
/// abstract namespace) that hands back each message a service sent.
public final class ServiceManagerStub {
    let fd: Int32

    public init(_ name: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard let address = UnixSocketAddress(name), address.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            close(fd)
            throw StubError(description: "cannot bind \(name): errno \(errno)")
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The next message, or nil after five seconds without one.
    public func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}

/// Why a stub could not be set up.
public struct StubError: Error, CustomStringConvertible {
    public var description: String
}
