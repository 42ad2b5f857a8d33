import Foundation
import Logging
import ServiceLifecycle
import TierCore
import TierLinux
import UnixSignals

/// How tierd was started.
public struct TierdOptions: Sendable {
    public var configPath: String
    /// "/" in production; a fixture tree to run the whole daemon against captured kernel text.
    public var root: String
    public var dryRun: Bool
    public var journalPath: String?
    /// The status socket (root only, mode 0600); nil: none.
    public var socketPath: String?
    /// Also serve the endpoint over TCP here (loopback unless the operator says otherwise); nil: no port.
    public var metricsAddress: LocalAddress?
    /// One line per task move; nil: none.
    public var audit: AuditLog?
    /// `/metrics` rewritten after each tick for node_exporter; nil: none.
    public var textfile: MetricsTextfile?
    /// Where the `memory.low`/`memory.min` values tierd raised are kept, to be put back after a crash; nil: in memory only.
    public var stateFile: String?
    public init(configPath: String, root: String = "/", dryRun: Bool = false, journalPath: String? = nil,
                socketPath: String? = nil, metricsAddress: LocalAddress? = nil, audit: AuditLog? = nil, textfile: MetricsTextfile? = nil,
                stateFile: String? = nil) {
        self.configPath = configPath; self.root = root; self.dryRun = dryRun; self.journalPath = journalPath
        self.socketPath = socketPath; self.metricsAddress = metricsAddress; self.audit = audit; self.textfile = textfile
        self.stateFile = stateFile
    }
}

/// tierd as a ServiceLifecycle service: ticks on its timer, on PSI triggers of managed groups,
/// and once more (with a new policy) on SIGHUP or when the policy file changes (a ConfigMap
/// update); stops cleanly on graceful shutdown.
public struct TierdService: Service {
    let options: TierdOptions
    let policy: Policy
    let collector: SnapshotCollector
    let logger: Logger
    /// Where each tick's status and metrics are published for the local endpoint.
    let board: StatusBoard

    public init(options: TierdOptions, policy: Policy, collector: SnapshotCollector, logger: Logger, board: StatusBoard) {
        self.options = options; self.policy = policy; self.collector = collector; self.logger = logger; self.board = board
    }

    /// The stall limit `/healthz` uses for a policy: ten intervals, and never under a minute (a long
    /// move holds a tick for seconds under emulation).
    public static func stallLimit(_ policy: Policy) -> Duration {
        max(policy.controller.interval * 10, policy.controller.idleInterval * 3, .seconds(60))
    }

    enum Wake: Sendable { case timer, pressure(CgroupPath), dram(FreeMemoryWatch.Alert), reload, reopenLogs, manual, stop }

    public func run() async throws {
        let logger = self.logger
        let journal = try Journal(path: options.journalPath) { logger.error("journal: \($0)") }
        ProcessHeap.limitArenas()
        let ownMoves = OwnMoves()
        var migrator = TaskMigrator(collector: collector, syscalls: LibnumaSyscalls(), dryRun: options.dryRun)
        migrator.ownMoves = ownMoves
        // A dry run changes nothing, the kernel's settings included.
        let shield = options.dryRun ? nil : KernelShieldKeeper(collector: collector, stateFile: options.stateFile)
        if let leftover = shield?.restoreLeftovers() {
            if leftover.restored > 0 {
                logger.notice("put back memory.low or memory.min of \(leftover.restored) groups that a tierd which did not stop cleanly had raised")
            }
            for setting in leftover.settingsRestored { logger.notice("put back \(setting), which a tierd that did not stop cleanly had set") }
            for (name, why) in leftover.settingsFailed.sorted(by: { $0.key < $1.key }) { logger.error("kernel setting \(name): \(why)") }
        }
        defer {
            if let done = shield?.restoreAll() {
                for setting in done.settingsRestored { logger.notice("kernel setting: put back \(setting)") }
                for (name, why) in done.settingsFailed.sorted(by: { $0.key < $1.key }) {
                    logger.error("kernel setting \(name): \(why); kept in the state file for the next start")
                }
            }
        }
        let controller = TierController(policy: policy, collector: collector, migrator: migrator, logger: logger, journal: journal,
                                        audit: options.audit, shield: shield)
        controller.ownKernelSettings()
        // Logged with the start-up findings already; the journal gets them here.
        controller.journalKernelMovers(collector.kernelMovers())
        let psi = PressureTriggerWatcher(files: RootedHostFiles(root: options.root),
                                         stall: policy.controller.psiStall, window: policy.controller.psiWindow)
        let clock = ContinuousClock()
        let origin = clock.now
        let freeMemory = FreeMemoryWatch(collector: collector, period: policy.controller.dramWatch,
                                         lookahead: policy.controller.dramLookahead, origin: origin, ownMoves: ownMoves)
        let (wakes, wake) = AsyncStream<Wake>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr1)
        let forwarders = [
            Task { for await event in psi.events { if case .stalled(let group) = event { wake.yield(.pressure(group)) } } },
            Task { for await alert in freeMemory.alerts { wake.yield(.dram(alert)) } },
            Task { for await signal in signals { wake.yield(signal == .sigusr1 ? .reopenLogs : .reload) } },
        ]
        freeMemory.start()
        board.manual.onSubmit { wake.yield(.manual) }
        let notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
        let watchdog = notifier.watchdogInterval.map { interval in
            Task { [board] in
                // Fed at half the manager's interval, and only while ticks complete: a stuck loop is restarted.
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval / 2)
                    if board.isHealthy() { notifier.notify("WATCHDOG=1") }
                }
            }
        }
        var announcedReady = false
        defer {
            watchdog?.cancel()
            notifier.notify("STOPPING=1")
            psi.stop()
            freeMemory.stop()
            forwarders.forEach { $0.cancel() }
        }
        var iterator = wakes.makeAsyncIterator()
        var policyFile = PolicyFileWatch(path: options.configPath)
        var policyState = DaemonStatus.PolicyState(file: options.configPath, generation: 1)
        var watched: Set<CgroupPath> = []
        func reloadPolicy(cause: TierController.ReloadCause) {
            let ok = controller.reload(path: options.configPath, cause: cause)
            freeMemory.configure(period: controller.policy.controller.dramWatch, lookahead: controller.policy.controller.dramLookahead)
            // A changed psi_trigger re-arms every watched group after the next tick.
            if psi.configure(stall: controller.policy.controller.psiStall, window: controller.policy.controller.psiWindow) { watched = [] }
            if ok { policyState.generation += 1 }
            policyState.lastReloadOK = ok
            policyState.lastReloadError = ok ? nil : controller.lastReloadError
            board.metrics.recordReload(ok: ok, generation: policyState.generation)
        }
        await withGracefulShutdownHandler {
            while !Task.isCancelled {
                if policyFile.changed() {
                    logger.notice("the policy file changed: reloading it", metadata: ["file": "\(options.configPath)"])
                    reloadPolicy(cause: .fileChanged)
                }
                // Manual moves run first, each on a fresh snapshot; the tick that follows sees what they did.
                while let next = board.manual.nextQueued() {
                    let result = await controller.runManual(id: next.id, next.request, now: Instant(clock.now - origin))
                    if let outcome = controller.lastManualOutcome, result.state == .done { board.metrics.recordMoves([outcome]) }
                    board.manual.finish(result)
                }
                let started = clock.now
                freeMemory.disarm()
                let report = await controller.tick(now: Instant(started - origin),
                                                   nextTickDue: started + controller.policy.controller.interval,
                                                   dramFallRate: freeMemory.fallRate)
                let took = clock.now - started
                let status = DaemonStatusBuilder.build(report: report, policy: controller.policy, policyState: policyState,
                                                       carried: controller.carried, ledger: controller.ledger,
                                                       tickSeconds: took.seconds, dryRun: options.dryRun, previous: board.status)
                board.metrics.record(report, status: status, duration: took)
                board.metrics.recordWriteFailures(["journal": journal.failedWrites, "audit": options.audit?.failedWrites ?? 0,
                                                   "textfile": options.textfile?.failedWrites ?? 0])
                options.textfile?.write(board.metrics.text())
                board.publish(status, context: DaemonView.Context(policy: controller.policy, carried: controller.carried,
                                                                  origin: origin, dramFallRate: freeMemory.fallRate))
                ProcessHeap.releaseFreed()
                if !announcedReady {
                    announcedReady = true
                    notifier.notify("READY=1\nSTATUS=managing \(status.groups.count) groups")
                }
                // Between ticks the watch looks for free DRAM about to cross `low`; while reclaiming,
                // the loop already re-plans after every move.
                if let topology = report.snapshot?.topology, !topology.slow.isEmpty {
                    freeMemory.track(nodes: topology.fast)
                    if !report.plan.summary.reclaiming { freeMemory.arm(below: report.plan.summary.lowWatermark) }
                }
                let groups = controller.watchedGroups()
                if Set(groups.keys) != watched {
                    let failed = psi.watch(groups)
                    watched = Set(groups.keys)
                    for (group, why) in failed { logger.debug("no PSI trigger on \(group): \(why)") }
                    journal.write(["event": "psi", "trigger": .string(psi.trigger), "armed": .int(Int64(psi.watchedCount)),
                                   "failed": .int(Int64(failed.count))])
                }
                // Soon after a tick that moved or was held back, later after a quiet one; an event may come first.
                let pause = TickPacing.pause(after: report.plan, moved: report.outcomes.contains { $0.movedBytes > 0 },
                                             heldBack: report.newlyHeldBack, settings: controller.policy.controller)
                // Through an idle pause the policy file is still looked at every interval.
                let tickDue = clock.now + pause
                var next: Wake?
                while true {
                    let wait = max(.zero, min(tickDue - clock.now, controller.policy.controller.interval))
                    let timer = Task { try await Task.sleep(for: wait); wake.yield(.timer) }
                    next = await iterator.next()
                    timer.cancel()
                    guard case .timer = next, clock.now < tickDue, !policyFile.hasNewVersion else { break }
                }
                switch next {
                case .stop, nil: return
                case .reload:
                    _ = policyFile.changed()
                    reloadPolicy(cause: .signal)
                    journal.reopen(); options.audit?.reopen()
                case .reopenLogs:
                    journal.reopen(); options.audit?.reopen()
                    logger.info("log files reopened")
                case .dram(let alert):
                    logger.debug("woken by free DRAM falling: \(formatBytes(alert.freeBytes)) free, \(formatBytes(alert.fallRate))/s")
                    journal.write(["event": "wake", "cause": "dram", "dram_free": .bytes(alert.freeBytes), "dram_fall_rate": .bytes(alert.fallRate)])
                case .pressure(let group):
                    logger.debug("woken by a PSI trigger on \(group)")
                    journal.write(["event": "wake", "cause": "psi", "group": .string(group.description)])
                case .timer, .manual: break
                }
            }
        } onGracefulShutdown: {
            wake.yield(.stop)
        }
        logger.notice("tierd stopping", metadata: [
            "demoted": "\(formatBytes(controller.ledger.total(.demote)))",
            "promoted": "\(formatBytes(controller.ledger.total(.promote)))",
        ])
    }

    /// Starts the status socket and, if asked for, the TCP address. A socket that cannot be made
    /// stops tierd before its first tick: the operator asked for it.
    public static func startEndpoints(_ options: TierdOptions, board: StatusBoard, logger: Logger) throws(LocalServerError) -> [LocalHTTPServer] {
        var servers: [LocalHTTPServer] = []
        if let path = options.socketPath {
            servers.append(try LocalHTTPServer(address: .unix(path: path, mode: 0o600)) { board.respond(to: $0) })
        }
        if let address = options.metricsAddress {
            servers.append(try LocalHTTPServer(address: address) { board.respond(to: $0) })
        }
        for server in servers {
            server.start()
            logger.info("serving status and metrics on \(server.address)")
        }
        return servers
    }
}
