import Foundation
import Testing
import TierLinux

#if canImport(Glibc)
import Glibc
#endif

/// The endpoint's server on real unix sockets: what it accepts as a request, and which files at
/// its path it replaces.
struct LocalHTTPServerTests {
    let dir = NSTemporaryDirectory() + "tierd-http-\(UUID().uuidString.prefix(8))"
    var path: String { dir + "/s.sock" }

    init() throws { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }

    func server() throws -> LocalHTTPServer {
        try LocalHTTPServer(address: .unix(path: path, mode: 0o600)) { request in
            LocalResponse(status: 200, text: "\(request.method) \(request.path) uid=\(request.peerUID.map(String.init) ?? "-")")
        }
    }

    @Test(arguments: [
        ("GET /status HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/status"),
        ("GET /metrics?x=1 HTTP/1.0\r\n\r\n", "GET", "/metrics?x=1"),
    ])
    func requestLinesAreParsed(text: String, method: String, path: String) {
        let request = LocalHTTPServer.parseRequestLine(Array(text.utf8))
        #expect(request?.method == method && request?.path == path)
    }

    @Test(arguments: ["GET /status\r\n\r\n", "hello", "GET status HTTP/1.1\r\n\r\n", "GET / SPDY/3\r\n\r\n"])
    func otherTextIsNoRequest(text: String) {
        #expect(LocalHTTPServer.parseRequestLine(Array(text.utf8)) == nil)
    }

    @Test func itAnswersWithThePeersUID() throws {
        let server = try server()
        server.start()
        defer { server.stop() }
        let answer = try LocalHTTPClient.get("/status", from: .unix(path: path, mode: 0o600))
        #expect(answer.status == 200)
        #expect(String(decoding: answer.body, as: UTF8.self) == "GET /status uid=\(getuid())")
    }

    @Test func aSecondServerOnALiveSocketIsRefusedAndAStaleOneReplaced() throws {
        let first = try server()
        first.start()
        #expect { try server() } throws: { "\($0)".contains("another process (another tierd?) is listening") }
        first.stop()
        #expect(!FileManager.default.fileExists(atPath: path), "a stopped server removes its socket")
        // A socket file nothing listens on (a killed tierd's) is replaced.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = UnixSocketAddress(path)?.withSockaddr { bind(stale, $0, $1) }
        close(stale)
        let second = try server()
        second.stop()
    }

    @Test func anyOtherFileAtThePathIsLeftAndRefused() throws {
        try "keep me".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try server() } throws: { "\($0)".contains("exists and is not a socket") }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }
}
