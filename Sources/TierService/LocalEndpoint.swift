import Foundation
import Synchronization
import TierCore
import TierLinux

/// What the daemon publishes after each tick for its endpoint to serve: the status, its metrics,
/// and when the loop last completed a tick. Written by the control loop, read by the server thread.
public final class StatusBoard: Sendable {
    struct Published: Sendable {
        var status: DaemonStatus?
        var json: [UInt8] = []
        var lastTickEnded: ContinuousClock.Instant?
    }

    public let metrics: TierMetrics
    /// How long the loop may go without completing a tick before `/healthz` fails.
    public let stallLimit: Duration
    private let published = Mutex(Published())

    public init(metrics: TierMetrics = TierMetrics(), stallLimit: Duration) {
        self.metrics = metrics
        self.stallLimit = stallLimit
    }

    public func publish(_ status: DaemonStatus, at instant: ContinuousClock.Instant = .now) {
        let json = Self.encode(status)
        published.withLock { $0 = Published(status: status, json: json, lastTickEnded: instant) }
    }

    public var status: DaemonStatus? { published.withLock { $0.status } }

    /// Alive: starting, or a tick completed within the stall limit (what /healthz and the systemd
    /// watchdog both go by).
    public func isHealthy(now: ContinuousClock.Instant = .now) -> Bool {
        guard let ended = published.withLock({ $0.lastTickEnded }) else { return true }
        return now - ended <= stallLimit
    }

    /// `/status`'s body: snake_case keys, sorted, so the output is stable for scripts and tests.
    public static func encode(_ status: DaemonStatus) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array((try? encoder.encode(status)) ?? Data("{}".utf8)) + [10]
    }

    public static func decode(_ bytes: [UInt8]) throws -> DaemonStatus {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(DaemonStatus.self, from: Data(bytes))
    }

    /// Answers one request. Over the unix socket only root is served (the socket's mode already
    /// keeps others out; this is the second lock).
    public func respond(to request: LocalRequest, now: ContinuousClock.Instant = .now) -> LocalResponse {
        if let uid = request.peerUID, uid != 0 {
            return LocalResponse(status: 403, text: "tierd: the status socket serves root only (uid \(uid) asked)\n")
        }
        guard request.method == "GET" else {
            return LocalResponse(status: 405, text: "tierd: \(request.method) \(request.path): only GET is served\n")
        }
        let state = published.withLock { $0 }
        switch request.path.split(separator: "?").first.map(String.init) ?? request.path {
        case "/status":
            guard state.status != nil else { return LocalResponse(status: 503, text: "tierd: starting, no tick completed yet\n") }
            return LocalResponse(status: 200, contentType: "application/json", body: state.json)
        case "/metrics":
            return LocalResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(metrics.text().utf8))
        case "/readyz":
            return state.status == nil ? LocalResponse(status: 503, text: "starting: no tick completed yet\n") : LocalResponse(status: 200, text: "ready\n")
        case "/healthz":
            guard let ended = state.lastTickEnded else { return LocalResponse(status: 200, text: "starting\n") }
            let since = now - ended
            return since <= stallLimit ? LocalResponse(status: 200, text: "ok\n")
                : LocalResponse(status: 503, text: "stalled: no tick completed for \(Int(since.seconds)) s (limit \(Int(stallLimit.seconds)) s)\n")
        default:
            return LocalResponse(status: 404, text: "tierd: no \(request.path); try /status, /metrics, /healthz or /readyz\n")
        }
    }
}
