import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import TierCore

/// Bytes tierd's own moves have brought into and taken out of DRAM, counted as each
/// move_pages(2), migrate_pages(2) call or `memory.reclaim` request returns. The free-DRAM watch
/// takes them back out of what it samples: tierd promoting a protected job is not an allocation,
/// and read as one it made the next tick demote as much again to keep pace with a fall tierd
/// itself caused; tierd demoting is no free memory an allocation could not have taken, and read
/// as such it hid the allocation's fall beside it.
///
/// A move counted when it returns was under way before: `add(_:_:since:)` keeps when it started,
/// and the watch spreads its bytes over the samples it took meanwhile (`FreeMemoryTrend.spread`).
public final class OwnMoves: Sendable {
    /// One counted move: its bytes into DRAM (negative out of it), from when it started to when
    /// it was counted.
    public struct Span: Sendable, Equatable {
        public var netIntoDRAM: Int64
        public var start: ContinuousClock.Instant
        public var end: ContinuousClock.Instant
    }

    private let promotedTotal = Atomic<UInt64>(0)
    private let demotedTotal = Atomic<UInt64>(0)
    /// Spans counted and not yet taken by the watch, the newest 256 (none taken while it sleeps).
    private let spans = Mutex<[Span]>([])
    public init() {}

    /// Counts `bytes` moved; `start`: when the call or request that moved them began.
    public func add(_ bytes: UInt64, _ direction: MigrationAction.Direction, since start: ContinuousClock.Instant? = nil,
                    until end: ContinuousClock.Instant = .now) {
        switch direction {
        case .promote: promotedTotal.add(bytes, ordering: .relaxed)
        case .demote: demotedTotal.add(bytes, ordering: .relaxed)
        }
        guard let start, bytes > 0 else { return }
        let net = direction == .promote ? Int64(bytes) : -Int64(bytes)
        spans.withLock { spans in
            if spans.count >= 256 { spans.removeFirst(spans.count - 255) }
            spans.append(Span(netIntoDRAM: net, start: start, end: end))
        }
    }

    /// The spans counted since the last call.
    public func takeSpans() -> [Span] { spans.withLock { spans in defer { spans.removeAll() }; return spans } }

    public var promoted: UInt64 { promotedTotal.load(ordering: .relaxed) }
    public var demoted: UInt64 { demotedTotal.load(ordering: .relaxed) }
    /// Bytes tierd moved into DRAM less those it moved out, over its life.
    public var netIntoDRAM: Int64 { Int64(bitPattern: promoted &- demoted) }
}

/// Samples free DRAM (the fast nodes' `MemFree`) every `period` on a thread of its own, keeps the
/// `FreeMemoryTrend`, and, when armed, alerts once free DRAM one lookahead ahead falls below
/// the low watermark: a tick then starts the demotion while the allocation is still on its
/// way down, not a whole interval after it spilled to slow nodes.
///
/// Ten samples a second is most of what an idle tierd does, so each is kept cheap: the nodes'
/// meminfo files stay open and are re-read from their start, and the thread sleeps in the kernel
/// (a `Task.sleep` went through dispatch's timer thread and woke a worker thread every time).
public final class FreeMemoryWatch: Sendable {
    /// A fall that is about to cross the low watermark, with the rate it was falling at.
    public struct Alert: Sendable, Equatable {
        public var freeBytes: UInt64
        public var fallRate: UInt64
        public init(freeBytes: UInt64, fallRate: UInt64) { self.freeBytes = freeBytes; self.fallRate = fallRate }
    }

    public let alerts: AsyncStream<Alert>
    private let continuation: AsyncStream<Alert>.Continuation
    private let collector: SnapshotCollector
    private let ownMoves: OwnMoves?
    private let origin: ContinuousClock.Instant
    private struct State {
        var trend = FreeMemoryTrend()
        var nodes: [Int] = []
        /// The nodes' meminfo, kept open while the nodes stay the same (nil: read by path).
        var meminfo: [KeptFile]?
        var period: Duration
        var lookahead: Duration
        /// The low watermark the next alert is for; nil: no alert wanted (a tick is running, or
        /// the controller is already reclaiming and re-plans after every move).
        var armedBelow: UInt64?
    }
    private let state: Mutex<State>
    /// The sampling thread that may run: each start makes a new one, a stop none (0).
    private let generation = Atomic<UInt64>(0)
    private let started = Atomic<UInt64>(0)

    /// - Parameter ownMoves: tierd's own moves, discounted from the fall (nil: none are).
    public init(collector: SnapshotCollector, period: Duration, lookahead: Duration, origin: ContinuousClock.Instant = .now,
                ownMoves: OwnMoves? = nil) {
        self.collector = collector
        self.ownMoves = ownMoves
        self.origin = origin
        state = Mutex(State(period: period, lookahead: lookahead))
        (alerts, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    deinit { stop() }

    /// Starts sampling on its own thread (nothing is sampled while the period is zero); a watch
    /// already sampling goes on as it is.
    public func start() {
        guard generation.load(ordering: .acquiring) == 0 else { return }
        let mine = started.wrappingAdd(1, ordering: .relaxed).newValue
        guard generation.compareExchange(expected: 0, desired: mine, ordering: .acquiringAndReleasing).exchanged else { return }
        let thread = Thread { [weak self] in
            while let watch = self, watch.generation.load(ordering: .acquiring) == mine {
                let period = watch.state.withLock { $0.period }
                if period > .zero { watch.sample(at: Instant(ContinuousClock.now - watch.origin)) }
                Self.sleep(for: period > .zero ? period : .seconds(1))
            }
        }
        thread.name = "tierd-dram-watch"
        thread.start()
    }

    /// Stops sampling and ends `alerts`. The thread ends after the sample it may be taking and its
    /// sleep (one period; a second while the period is zero); a later start makes a new one.
    public func stop() {
        generation.store(0, ordering: .releasing)
        continuation.finish()
    }

    private static func sleep(for duration: Duration) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (seconds, attoseconds) = duration.components
        let nanoseconds = deadline.tv_nsec + Int(attoseconds / 1_000_000_000)
        deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) == EINTR {}
    }

    /// A reloaded policy's settings.
    public func configure(period: Duration, lookahead: Duration) {
        state.withLock { $0.period = period; $0.lookahead = lookahead }
    }

    /// The DRAM nodes to watch (the last snapshot's fast tier).
    public func track(nodes: some Sequence<Int>) {
        let sorted = Array(nodes).sorted()
        let changed = state.withLock { state in
            guard state.nodes != sorted else { return false }
            state.nodes = sorted
            state.trend = FreeMemoryTrend()
            state.meminfo = nil
            return true
        }
        if changed { reopen(sorted) }
    }

    private func reopen(_ nodes: [Int]) {
        let kept = collector.keepMeminfo(of: nodes)
        state.withLock { if $0.nodes == nodes { $0.meminfo = kept } }
    }

    /// Alert once free DRAM is about to fall below `low`; disarmed by the alert or by `disarm`.
    public func arm(below low: UInt64) { state.withLock { $0.armedBelow = low } }

    public func disarm() { state.withLock { $0.armedBelow = nil } }

    /// Bytes per second free DRAM has been falling at, over the trend's window.
    public var fallRate: UInt64 { state.withLock { $0.trend.fallRate } }

    /// Free DRAM now: from the kept files, or by path when they cannot be kept or a read of
    /// one fails (then they are opened again for the next sample).
    private func readFree(_ nodes: [Int], _ kept: [KeptFile]?) -> UInt64? {
        if let kept {
            var free: UInt64 = 0
            for file in kept {
                guard let nodeFree = file.withContents(KernelText.nodeMemFree(bytes:)) ?? nil else { reopen(nodes); return collector.freeBytes(on: nodes) }
                free += nodeFree
            }
            return free
        }
        return collector.freeBytes(on: nodes)
    }

    /// One reading; the sampling thread calls it every period, tests with the instants they need.
    public func sample(at now: Instant) {
        let (nodes, kept) = state.withLock { ($0.nodes, $0.meminfo) }
        guard !nodes.isEmpty, let free = readFree(nodes, kept) else { return }
        let ownInflow = ownMoves?.netIntoDRAM ?? 0
        let spans = ownMoves?.takeSpans() ?? []
        let alert: Alert? = state.withLock { state in
            for span in spans {
                state.trend.spread(span.netIntoDRAM, from: Instant(span.start - origin), to: Instant(span.end - origin))
            }
            state.trend.add(freeBytes: Int64(free) + ownInflow, at: now)
            let projected = state.trend.projectedFree(from: free, after: state.lookahead)
            guard let low = state.armedBelow, projected < low else { return nil }
            state.armedBelow = nil
            return Alert(freeBytes: free, fallRate: state.trend.fallRate)
        }
        if let alert { continuation.yield(alert) }
    }
}
