import Synchronization
import TierCore
import TierLinux

/// What became of one manual request, as `tierctl demote`/`promote` reads it back.
public struct ManualResult: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case queued, done, refused }
    public struct Task: Sendable, Equatable, Codable {
        public var pid: Int32
        public var result: String
        public var detail: String
        public var movedBytes: UInt64
    }

    public var id: UInt64
    public var request: ManualRequest
    public var state: State
    /// Why it was refused: a stable code and a sentence.
    public var refusal: String?
    public var detail: String?
    public var plannedBytes: UInt64?
    public var movedBytes: UInt64?
    public var from: String?
    public var to: String?
    public var dropped: String?
    /// tierd runs with --dry-run: the tasks' results say what would have moved.
    public var dryRun = false
    public var tasks: [Task] = []

    public init(id: UInt64, request: ManualRequest, state: State) {
        self.id = id; self.request = request; self.state = state
    }

    public static func refused(_ id: UInt64, _ request: ManualRequest, code: String, detail: String) -> ManualResult {
        var result = ManualResult(id: id, request: request, state: .refused)
        result.refusal = code; result.detail = detail
        return result
    }

    public static func done(_ id: UInt64, _ request: ManualRequest, _ outcome: ActionOutcome) -> ManualResult {
        var result = ManualResult(id: id, request: request, state: .done)
        result.plannedBytes = outcome.action.bytes
        result.movedBytes = outcome.movedBytes
        result.from = outcome.action.from.description
        result.to = NodeSet(outcome.action.to).description
        result.dropped = outcome.dropped
        result.dryRun = outcome.tasks.contains { if case .wouldMove = $0.result { true } else { false } }
        result.tasks = outcome.tasks.map { Task(pid: $0.pid, result: $0.result.code, detail: $0.result.description, movedBytes: $0.result.movedBytes) }
        return result
    }
}

/// Manual requests between the endpoint's thread, which queues them, and the control loop, which
/// runs them between ticks. Bounded: a full queue refuses, and only the latest results are kept.
public final class ManualMoves: Sendable {
    public static let maxQueued = 8
    public static let resultsKept = 32

    struct Book {
        var nextID: UInt64 = 1
        var queued: [(UInt64, ManualRequest)] = []
        var results: [ManualResult] = []
        var onSubmit: (@Sendable () -> Void)?
    }
    private let book = Mutex(Book())

    public init() {}

    /// Called (on the submitter's thread) after each request is queued: the loop's wake-up.
    public func onSubmit(_ wake: @escaping @Sendable () -> Void) { book.withLock { $0.onSubmit = wake } }

    /// Queues a request; nil when `maxQueued` already wait.
    public func submit(_ request: ManualRequest) -> ManualResult? {
        let (queued, wake) = book.withLock { book -> (ManualResult?, (@Sendable () -> Void)?) in
            guard book.queued.count < Self.maxQueued else { return (nil, nil) }
            let id = book.nextID
            book.nextID += 1
            book.queued.append((id, request))
            return (ManualResult(id: id, request: request, state: .queued), book.onSubmit)
        }
        wake?()
        return queued
    }

    /// The oldest request waiting; it stays queued (and reads so) until `finish`.
    public func nextQueued() -> (id: UInt64, request: ManualRequest)? {
        book.withLock { $0.queued.first.map { (id: $0.0, request: $0.1) } }
    }

    public func finish(_ result: ManualResult) {
        book.withLock { book in
            book.queued.removeAll { $0.0 == result.id }
            book.results.append(result)
            if book.results.count > Self.resultsKept { book.results.removeFirst(book.results.count - Self.resultsKept) }
        }
    }

    /// A request's state: queued, its result, or nil when unknown (or long forgotten).
    public func result(of id: UInt64) -> ManualResult? {
        book.withLock { book in
            if let done = book.results.last(where: { $0.id == id }) { return done }
            return book.queued.first { $0.0 == id }.map { ManualResult(id: $0.0, request: $0.1, state: .queued) }
        }
    }
}

/// `tierctl demote`/`promote`'s answer in words: what moved, from where to where, task by task.
public enum ManualText {
    public static func render(_ result: ManualResult) -> String {
        let verb = result.request.direction == .demote ? "demote" : "promote"
        let asked = result.request.bytes.map(formatBytes) ?? "all"
        switch result.state {
        case .queued:
            return "\(verb) \(result.request.group): queued (request \(result.id))\n"
        case .refused:
            return "\(verb) \(result.request.group) refused (\(result.refusal ?? "refused")): \(result.detail ?? "")\n"
        case .done:
            let past = result.request.direction == .demote ? "demoted" : "promoted"
            let what = result.dryRun ? "dry run: would have \(past)" : "\(past) \(formatBytes(result.movedBytes ?? 0)) of"
            var text = "\(what) \(result.request.group) (asked \(asked), planned \(formatBytes(result.plannedBytes ?? 0))),"
                + " nodes \(result.from ?? "?") -> \(result.to ?? "?")\n"
            if let dropped = result.dropped { text += "  dropped: \(dropped)\n" }
            for task in result.tasks {
                text += "  pid \(task.pid): \(task.detail)\n"
            }
            return text
        }
    }
}
