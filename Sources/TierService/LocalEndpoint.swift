import Foundation
import Synchronization
import TierCore
import TierLinux

/// What the daemon publishes after each tick for its endpoint to serve: the status, its metrics,
/// and when the loop last completed a tick. Written by the control loop, read by the server thread.
public final class StatusBoard: Sendable {
    struct Published: Sendable {
        var status: DaemonStatus?
        var lastTickEnded: ContinuousClock.Instant?
        var context: DaemonView.Context?
    }

    public let metrics: TierMetrics
    /// How long the loop may go without completing a tick before `/healthz` fails.
    public let stallLimit: Duration
    private let published = Mutex(Published())

    /// Manual moves asked for over the socket, run by the control loop between ticks.
    public let manual = ManualMoves()

    /// Plans "what tierd would do now" for `/plan` and `/explain`; nil: those paths are not served.
    let view: DaemonView?

    public init(metrics: TierMetrics = TierMetrics(), stallLimit: Duration, view: DaemonView? = nil) {
        self.metrics = metrics
        self.stallLimit = stallLimit
        self.view = view
    }

    public func publish(_ status: DaemonStatus, context: DaemonView.Context? = nil, at instant: ContinuousClock.Instant = .now) {
        // Encoded when asked for, on the server's thread: not every tick on the control loop's.
        published.withLock { $0 = Published(status: status, lastTickEnded: instant, context: context) }
    }

    public var status: DaemonStatus? { published.withLock { $0.status } }

    /// Alive: starting, or a tick completed within the stall limit (what /healthz and the systemd
    /// watchdog both go by).
    public func isHealthy(now: ContinuousClock.Instant = .now) -> Bool { stalledFor(now: now) == nil }

    /// How long no tick has completed, once that is past the stall limit; nil while healthy.
    func stalledFor(now: ContinuousClock.Instant) -> Duration? {
        guard let ended = published.withLock({ $0.lastTickEnded }) else { return nil }
        return now - ended > stallLimit ? now - ended : nil
    }

    /// `/status`'s body: snake_case keys, sorted, so the output is stable for scripts and tests.
    public static func encode(_ status: DaemonStatus) -> [UInt8] { encodeJSON(status) }

    /// Every JSON document the endpoint serves: snake_case keys, sorted, pretty-printed.
    /// With `oneLine`, for a stream of documents, as `tierctl top --json` prints.
    public static func encodeJSON(_ value: some Encodable, oneLine: Bool = false) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = oneLine ? [.sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8)) + [10]
    }

    public static func decode(_ bytes: [UInt8]) throws -> DaemonStatus { try decodeJSON(bytes) }

    public static func decodeJSON<T: Decodable>(_ bytes: [UInt8], as type: T.Type = T.self) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(T.self, from: Data(bytes))
    }

    /// "/explain?group=a%2Fb" → ("/explain", ["group": "a/b"]).
    public static func split(_ target: String) -> (String, [String: String]) {
        let parts = target.split(separator: "?", maxSplits: 1)
        var query: [String: String] = [:]
        for pair in parts.count > 1 ? parts[1].split(separator: "&") : [] {
            let kv = pair.split(separator: "=", maxSplits: 1)
            query[percentDecoded(String(kv[0]))] = kv.count > 1 ? percentDecoded(String(kv[1])) : ""
        }
        return (parts.first.map(String.init) ?? target, query)
    }

    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            if byte == UInt8(ascii: "%"), input.count >= 2, let value = UInt8(String(decoding: input.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value); input = input.dropFirst(2)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Answers one request. Over the unix socket only root is served (the socket's mode already
    /// keeps others out; this is the second lock).
    public func respond(to request: LocalRequest, now: ContinuousClock.Instant = .now) -> LocalResponse {
        if let uid = request.peerUID, uid != 0 {
            return LocalResponse(status: 403, text: "tierd: the status socket serves root only (uid \(uid) asked)\n")
        }
        let (route, query) = Self.split(request.path)
        if route == "/demote" || route == "/promote" { return submitManual(request, route: route, query: query) }
        guard request.method == "GET" else {
            return LocalResponse(status: 405, text: "tierd: \(request.method) \(request.path): only GET is served here\n")
        }
        let state = published.withLock { $0 }
        switch route {
        case "/manual":
            guard let id = query["id"].flatMap({ UInt64($0) }) else { return LocalResponse(status: 400, text: "tierd: /manual needs ?id=N\n") }
            guard let result = manual.result(of: id) else { return LocalResponse(status: 404, text: "tierd: no manual request \(id) (unknown, or long done)\n") }
            return LocalResponse(status: 200, contentType: "application/json", body: Self.encodeJSON(result))
        case "/plan", "/explain":
            guard let view, let context = state.context else { return LocalResponse(status: 503, text: "tierd: starting, no tick completed yet\n") }
            let json = query["format"] == "json"
            if route == "/plan" {
                let document = view.planDocument(context)
                return json ? LocalResponse(status: 200, contentType: "application/json", body: Self.encodeJSON(document))
                    : LocalResponse(status: 200, text: document.text + "\n")
            }
            guard let group = query["group"], !group.isEmpty else { return LocalResponse(status: 400, text: "tierd: /explain needs ?group=PATH\n") }
            let last = state.status?.groups.first { $0.path == CgroupPath(group).description }
            guard let explanation = view.explanation(of: CgroupPath(group), context, last: last) else {
                return LocalResponse(status: 404, text: "tierd: no cgroup \(CgroupPath(group)) under the cgroup root\n")
            }
            return json ? LocalResponse(status: 200, contentType: "application/json", body: Self.encodeJSON(explanation))
                : LocalResponse(status: 200, text: explanation.text + "\n")
        case "/status":
            guard let status = state.status else { return LocalResponse(status: 503, text: "tierd: starting, no tick completed yet\n") }
            return LocalResponse(status: 200, contentType: "application/json", body: Self.encode(status))
        case "/metrics":
            return LocalResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(metrics.text().utf8))
        case "/readyz":
            return state.status == nil ? LocalResponse(status: 503, text: "starting: no tick completed yet\n") : LocalResponse(status: 200, text: "ready\n")
        case "/healthz":
            guard state.lastTickEnded != nil else { return LocalResponse(status: 200, text: "starting\n") }
            guard let stalled = stalledFor(now: now) else { return LocalResponse(status: 200, text: "ok\n") }
            return LocalResponse(status: 503, text: "stalled: no tick completed for \(Int(stalled.seconds)) s (limit \(Int(stallLimit.seconds)) s)\n")
        default:
            return LocalResponse(status: 404, text: "tierd: no \(request.path); try /status, /plan, /explain?group=PATH, /metrics, /healthz or /readyz\n")
        }
    }

    /// `POST /demote?group=PATH[&bytes=N]` (or `/promote`): queued for the control loop, answered 202
    /// with the request's id. Moving memory is asked for over the root-only socket alone: over TCP,
    /// which any local user reaches, it is refused.
    func submitManual(_ request: LocalRequest, route: String, query: [String: String]) -> LocalResponse {
        guard request.method == "POST" else {
            return LocalResponse(status: 405, text: "tierd: \(route) moves memory: POST it\n")
        }
        guard request.peerUID != nil else {
            return LocalResponse(status: 403, text: "tierd: manual moves are served only over the status socket, not over TCP\n")
        }
        guard let group = query["group"], !group.isEmpty else { return LocalResponse(status: 400, text: "tierd: \(route) needs ?group=PATH\n") }
        var bytes: UInt64?
        if let text = query["bytes"] {
            guard let value = UInt64(text), value > 0 else { return LocalResponse(status: 400, text: "tierd: bytes=\(text): a positive number of bytes\n") }
            bytes = value
        }
        let direction: MigrationAction.Direction = route == "/demote" ? .demote : .promote
        guard let queued = manual.submit(ManualRequest(direction: direction, group: CgroupPath(group), bytes: bytes)) else {
            return LocalResponse(status: 503, text: "tierd: \(ManualMoves.maxQueued) manual moves already wait; try again when they are done\n")
        }
        return LocalResponse(status: 202, contentType: "application/json", body: Self.encodeJSON(queued))
    }
}
