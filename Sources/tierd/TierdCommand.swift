import ArgumentParser
import Logging
import ServiceLifecycle
import TierCore
import TierLinux
import TierService

#if canImport(Glibc)
import Glibc
#endif

/// The tierd daemon: parses flags, checks the host, then hands over to `TierdService`.
@main
struct TierdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tierd",
        abstract: "Per-workload memory tiering controller for cgroup v2 hosts with a slow memory tier.")

    @Option(name: .long, help: "Policy file (YAML).")
    var config: String = "/etc/tierd/tierd.yaml"

    @Option(name: .long, help: "Directory to read /proc and /sys under (a fixture tree); / in production.")
    var root: String = "/"

    @Flag(name: .long, help: "Plan and log, but move nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Run one tick, print the plan with a reason per action and skip, and exit.")
    var once = false

    @Option(name: .long, help: "Append a JSON line per tick, action and skip to this file.")
    var journal: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Append a JSON line per task move (time, group, pid, nodes, bytes asked and moved, what stayed and why) to this file.")
    var auditLog: String?

    @Option(name: .long, help: "Rotate the audit log to FILE.1, FILE.2 and FILE.3 past this size.")
    var auditLogMaxSize: String = "64MiB"

    @Option(name: .long, help: "The status socket (root only, mode 0600) tierctl reads; 'none' for no socket.")
    var socket: String = "/run/tierd/tierd.sock"

    @Option(name: .long, help: "Also serve status and /metrics over TCP at this numeric address, such as 127.0.0.1:9477 (default: no port).")
    var metricsAddress: String?

    @Option(name: .long, help: "Also write /metrics to this file after each tick, for node_exporter's textfile collector (a *.prom path).")
    var metricsTextfile: String?
    @Option(name: .long, help: "Where tierd keeps the memory.low values it raised to shield groups from the kernel's demotion, to put them back after a crash; 'none': in memory only.")
    var stateFile = "/run/tierd/kernel-settings.json"

    func run() async throws {
        let policy: Policy
        do {
            policy = try PolicyFileLoader.load(path: config)
        } catch {
            printError("tierd: \(error)")
            throw ExitCode(2)
        }
        var logger = Logger(label: "tierd")
        guard let level = Logger.Level(rawValue: logLevel) else {
            printError("tierd: --log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error")
            throw ExitCode(2)
        }
        logger.logLevel = level
        let files = RootedHostFiles(root: root)
        let collector: SnapshotCollector
        do { collector = try SnapshotCollector(files: files) } catch {
            printError("tierd: \(error)")
            throw ExitCode(1)
        }
        let (_, findings) = StartupChecks.run(collector: collector, policy: policy, dryRun: dryRun)
        let fatal = findings.contains { $0.level == .fatal }
        if once {
            // A fatal finding stops the daemon before its first move: --once shows the plan it found and moves nothing either.
            let journal = try Journal(path: journal)
            let migrator = TaskMigrator(collector: collector, syscalls: LibnumaSyscalls(), dryRun: dryRun || fatal)
            let controller = TierController(policy: policy, collector: collector, migrator: migrator, logger: logger, journal: journal)
            let report = await controller.tick(now: Instant(.zero))
            print(PlanDocument(report, findings: findings, dryRun: dryRun || fatal).text)
            if fatal { throw ExitCode(1) }
            return
        }
        for finding in findings {
            switch finding.level {
            case .fatal: logger.critical("\(finding.message)")
            case .warning: logger.warning("\(finding.message)")
            case .info: logger.info("\(finding.message)")
            }
        }
        if fatal { throw ExitCode(1) }
        var tcp: LocalAddress?
        if let metricsAddress {
            guard let address = LocalAddress.tcp(parsing: metricsAddress) else {
                printError("tierd: --metrics-address: '\(metricsAddress)' is not a numeric address and port such as 127.0.0.1:9477 or [::1]:9477")
                throw ExitCode(2)
            }
            tcp = address
        }
        var audit: AuditLog?
        if let auditLog {
            guard case .success(let maxBytes) = Quantity.parseSize(auditLogMaxSize), maxBytes >= 4096 else {
                printError("tierd: --audit-log-max-size: '\(auditLogMaxSize)' is not a size of at least 4KiB, such as 64MiB")
                throw ExitCode(2)
            }
            do {
                audit = try AuditLog(path: auditLog, maxBytes: maxBytes) { [logger] in logger.error("audit log: \($0)") }
            } catch {
                printError("tierd: --audit-log: \(error)")
                throw ExitCode(1)
            }
        }
        var textfile: MetricsTextfile?
        if let metricsTextfile {
            do { textfile = try MetricsTextfile(path: metricsTextfile) { [logger] in logger.error("metrics textfile: \($0)") } } catch {
                printError("tierd: --metrics-textfile: \(error)")
                throw ExitCode(2)
            }
        }
        let options = TierdOptions(configPath: config, root: root, dryRun: dryRun, journalPath: journal,
                                   socketPath: socket == "none" ? nil : socket, metricsAddress: tcp, audit: audit, textfile: textfile,
                                   stateFile: stateFile == "none" ? nil : stateFile)
        let board = StatusBoard(stallLimit: TierdService.stallLimit(policy), view: DaemonView(collector: collector))
        let endpoints: [LocalHTTPServer]
        do { endpoints = try TierdService.startEndpoints(options, board: board, logger: logger) } catch {
            printError("tierd: cannot serve the status endpoint: \(error)")
            throw ExitCode(1)
        }
        defer { endpoints.forEach { $0.stop() } }
        let service = TierdService(options: options, policy: policy, collector: collector, logger: logger, board: board)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
