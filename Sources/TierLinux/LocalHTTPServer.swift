#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One request a local client made: a method and a path (with its query), and who asked.
public struct LocalRequest: Sendable, Equatable {
    public var method: String
    public var path: String
    /// The client's uid from `SO_PEERCRED` (unix sockets only; nil over TCP).
    public var peerUID: UInt32?

    public init(method: String, path: String, peerUID: UInt32? = nil) {
        self.method = method; self.path = path; self.peerUID = peerUID
    }
}

/// What the handler answers.
public struct LocalResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8]) {
        self.status = status; self.contentType = contentType; self.body = body
    }

    public init(status: Int, text: String) { self.init(status: status, body: Array(text.utf8)) }

    static let reasons = [200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                          409: "Conflict", 503: "Service Unavailable"]

    var encoded: [UInt8] {
        let head = "HTTP/1.1 \(status) \(Self.reasons[status] ?? "Status")\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + body
    }
}

/// Where a `LocalHTTPServer` listens.
public enum LocalAddress: Sendable, Equatable, CustomStringConvertible {
    /// A unix socket, created with `mode` (0600: root only), replacing a stale socket file.
    case unix(path: String, mode: mode_t)
    /// A TCP address; tierd's default is loopback only.
    case tcp(host: String, port: UInt16)

    public var description: String {
        switch self {
        case .unix(let path, _): path
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }

    /// "127.0.0.1:9477" or "[::1]:9477"; nil when it is not a literal address and port.
    public static func tcp(parsing text: String) -> LocalAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var v4 = in_addr(), v6 = in6_addr()
        guard inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 else { return nil }
        return .tcp(host: host, port: port)
    }
}

/// Why the server could not start listening.
public struct LocalServerError: Error, CustomStringConvertible {
    public var description: String
}

/// A small HTTP/1.1 server for tierd's local endpoint: one request per connection, answered by
/// `handler` on the server's own thread, so a slow client never stalls the control loop. Requests
/// are GET or POST with no body of interest; a client that sends nothing for two seconds is dropped.
public final class LocalHTTPServer: Sendable {
    public let address: LocalAddress
    private let listener: Int32
    private let handler: @Sendable (LocalRequest) -> LocalResponse
    private let stopping = Atomic<Bool>(false)
    private let finished = Mutex<Bool>(false)

    public init(address: LocalAddress, handler: @escaping @Sendable (LocalRequest) -> LocalResponse) throws(LocalServerError) {
        self.address = address
        self.handler = handler
        listener = try Self.listen(on: address)
    }

    /// Serves until `stop()`; returns at once (the thread is the server's).
    public func start() {
        let thread = ServerThread { [self] in serve() }
        thread.start()
    }

    /// Ends the accept loop and waits (up to a second) for the socket to be closed and its file removed.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        for _ in 0..<100 where !isFinished { usleep(10_000) }
    }

    /// True once the accept loop has ended and the socket is closed.
    public var isFinished: Bool { finished.withLock { $0 } }

    private func serve() {
        defer {
            close(listener)
            if case .unix(let path, _) = address { unlink(path) }
            finished.withLock { $0 = true }
        }
        while !stopping.load(ordering: .relaxed) {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            answer(client)
            close(client)
        }
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let response: LocalResponse
        if var request = Self.readRequest(client) {
            if case .unix = address { request.peerUID = Self.peerUID(client) }
            response = handler(request)
        } else {
            response = LocalResponse(status: 400, text: "tierd: expected an HTTP request line such as GET /status HTTP/1.1\n")
        }
        let bytes = response.encoded
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
            sent += n
        }
    }

    /// Reads up to the end of the headers (at most 8 KiB) and parses the request line.
    static func readRequest(_ client: Int32) -> LocalRequest? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while bytes.count < 8192 {
            let n = recv(client, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
            if containsHeaderEnd(bytes) { break }
        }
        return parseRequestLine(bytes)
    }

    static func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return true }
        return false
    }

    /// "GET /status HTTP/1.1" → method and path.
    public static func parseRequestLine(_ bytes: [UInt8]) -> LocalRequest? {
        guard let end = bytes.firstIndex(of: 13) ?? bytes.firstIndex(of: 10) else { return nil }
        let parts = String(decoding: bytes[..<end], as: UTF8.self).split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), parts[1].hasPrefix("/") else { return nil }
        return LocalRequest(method: String(parts[0]), path: String(parts[1]), peerUID: nil)
    }

    /// The peer's uid from `SO_PEERCRED`: the kernel's `struct ucred` is pid, uid, gid (three 32-bit
    /// fields; glibc exposes it only under _GNU_SOURCE, so it is read as that tuple).
    static func peerUID(_ client: Int32) -> UInt32? {
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
              length == socklen_t(MemoryLayout.size(ofValue: credentials)) else { return nil }
        return credentials.uid
    }

    static func listen(on address: LocalAddress) throws(LocalServerError) -> Int32 {
        switch address {
        case .unix(let path, let mode): return try listenUnix(path: path, mode: mode)
        case .tcp(let host, let port): return try listenTCP(host: host, port: port)
        }
    }

    static func failure(_ what: String, _ address: String) -> LocalServerError {
        LocalServerError(description: "\(address): \(what): \(String(cString: strerror(errno)))")
    }

    static func listenUnix(path: String, mode: mode_t) throws(LocalServerError) -> Int32 {
        guard let address = UnixSocketAddress(path) else {
            throw LocalServerError(description: "\(path): not a unix socket path of 1 to \(UnixSocketAddress.capacity) bytes")
        }
        try prepareDirectory(of: path)
        // Only a socket left by an earlier run is replaced: any other file, or a socket another
        // tierd still answers on, is an error.
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw LocalServerError(description: "\(path): exists and is not a socket")
            }
            guard !answers(address) else {
                throw LocalServerError(description: "\(path): another process (another tierd?) is listening on it")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket", path) }
        // The socket file is created with the permissions the umask leaves: none for others, from the start.
        let previous = umask(~mode & 0o777)
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        umask(previous)
        guard bound == 0 else { let error = failure("bind", path); close(fd); throw error }
        guard chmod(path, mode) == 0, Glibc.listen(fd, 16) == 0 else { let error = failure("listen", path); close(fd); unlink(path); throw error }
        return fd
    }

    /// Creates the socket's directory (as systemd's RuntimeDirectory= would) if it is missing.
    static func prepareDirectory(of path: String) throws(LocalServerError) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var info = stat()
        if stat(directory, &info) == 0 { return }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { throw failure("mkdir", directory) }
    }

    /// Whether something accepts connections on the unix socket at `address`.
    static func answers(_ address: UnixSocketAddress) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { close(probe) }
        return address.withSockaddr { connect(probe, $0, $1) } == 0
    }

    static func listenTCP(host: String, port: UInt16) throws(LocalServerError) -> Int32 {
        let name = "\(host):\(port)"
        var v4 = sockaddr_in(), v6 = sockaddr_in6()
        let isV6 = inet_pton(AF_INET6, host, &v6.sin6_addr) == 1
        guard isV6 || inet_pton(AF_INET, host, &v4.sin_addr) == 1 else {
            throw LocalServerError(description: "\(name): not a numeric IPv4 or IPv6 address")
        }
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket", name) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        if isV6 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            bound = withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            bound = withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else { let error = failure("bind", name); close(fd); throw error }
        return fd
    }
}

/// A detached pthread running one closure: the server's blocking accept loop stays off Swift's
/// cooperative thread pool.
final class ServerThread: @unchecked Sendable {
    private let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<ServerThread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box)
        pthread_detach(thread)
    }
}

/// The client side, for tierctl: one request over the status socket or a TCP address.
public enum LocalHTTPClient {
    /// Why no answer came back, in words for an operator.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func get(_ path: String, from address: LocalAddress) throws(Failure) -> (status: Int, body: [UInt8]) {
        try request("GET", path, from: address)
    }

    /// `method` (GET or POST, with no body) on `path`; the answer's status and body.
    public static func request(_ method: String, _ path: String, from address: LocalAddress) throws(Failure) -> (status: Int, body: [UInt8]) {
        let fd = try connect(to: address)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: tierd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw Failure(description: "\(address): cannot send the request: \(String(cString: strerror(errno)))")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Failure(description: "\(address): no answer: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return try parseResponse(bytes, from: address)
    }

    static func parseResponse(_ bytes: [UInt8], from address: LocalAddress) throws(Failure) -> (status: Int, body: [UInt8]) {
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) else {
            throw Failure(description: "\(address): the answer is not HTTP")
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n").first?.split(separator: " ") ?? []
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failure(description: "\(address): the answer has no status") }
        return (status, Array(bytes[(end + 4)...]))
    }

    static func connect(to address: LocalAddress) throws(Failure) -> Int32 {
        switch address {
        case .unix(let path, _):
            guard let address = UnixSocketAddress(path) else { throw Failure(description: "\(path): not a unix socket path") }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
            guard address.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 else {
                let code = errno
                close(fd)
                throw Failure(description: explain(code, path))
            }
            return fd
        case .tcp(let host, let port):
            var v4 = sockaddr_in()
            guard inet_pton(AF_INET, host, &v4.sin_addr) == 1 else { throw Failure(description: "\(host): only IPv4 addresses are read by tierctl") }
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
            let connected = withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { let code = errno; close(fd); throw Failure(description: explain(code, "\(host):\(port)")) }
            return fd
        }
    }

    static func explain(_ code: Int32, _ address: String) -> String {
        switch code {
        case ENOENT, ECONNREFUSED: "no tierd is running: nothing listens on \(address)"
        case EACCES, EPERM: "\(address): permission denied: tierd's status socket serves root only"
        default: "\(address): \(String(cString: strerror(code)))"
        }
    }
}
