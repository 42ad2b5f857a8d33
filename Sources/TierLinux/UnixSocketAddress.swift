#if canImport(Glibc)
import Glibc
#endif

/// A unix socket's address: a file path, or "@name" in the abstract namespace (as systemd's
/// `NOTIFY_SOCKET` may give it). The one place `sockaddr_un` is filled in.
public struct UnixSocketAddress: Sendable {
    private var storage = sockaddr_un()
    /// The address length to pass: an abstract name's is exact, a path's includes its terminating zero.
    public let length: socklen_t

    /// Nil when the name is empty or too long for `sun_path`.
    public init?(_ name: String) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: storage.sun_path) else { return nil }
        let abstract = bytes[0] == UInt8(ascii: "@")
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
            if abstract { raw[0] = 0 }
        }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
    }

    /// The longest name an address may have, in bytes.
    public static var capacity: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1 }

    /// Calls `body` with the address as the socket calls take it.
    public func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafePointer(to: storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}
