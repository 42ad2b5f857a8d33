import ArgumentParser
import Logging
import TierCore
import TierLinux
import TierService

#if canImport(Glibc)
import Glibc
#endif

/// tierctl: the operator's view of tierd's decisions, computed the same way the daemon does.
@main
struct Tierctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tierctl",
        abstract: "Validate tierd policies and see what tierd would do, and why.",
        subcommands: [Status.self, Top.self, Health.self, Validate.self, Plan.self, Explain.self, Demote.self, Promote.self])
}

/// Options shared by the commands that read the host.
struct HostOptions: ParsableArguments {
    @Option(help: "Policy file.") var config: String = "/etc/tierd/tierd.yaml"
    @Option(help: "Read /proc and /sys under this directory (a fixture tree).") var root: String = "/"

    func load() throws -> (Policy, SnapshotCollector) {
        let policy: Policy
        do { policy = try PolicyFileLoader.load(path: config) } catch {
            print("tierctl: \(error)")
            throw ExitCode(2)
        }
        do { return (policy, try SnapshotCollector(files: RootedHostFiles(root: root))) } catch {
            print("tierctl: \(error)")
            throw ExitCode(1)
        }
    }

    /// One dry-run tick: exactly what tierd would plan now, moving nothing.
    func dryRunTick() async throws -> (Policy, TierController, TickReport) {
        let (policy, collector) = try load()
        var logger = Logger(label: "tierctl")
        logger.logLevel = .critical
        let migrator = TaskMigrator(collector: collector, syscalls: LibnumaSyscalls(), dryRun: true)
        let controller = TierController(policy: policy, collector: collector, migrator: migrator, logger: logger, journal: try Journal(path: nil))
        return (policy, controller, await controller.tick(now: Instant(.zero)))
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check policy files; exit 2 if any is invalid.")
    @Argument(help: "Policy files.") var files: [String]
    @Flag(help: "Print one result per file as a JSON array.") var json = false

    func run() throws {
        let results = files.map(PolicyCheck.init(file:))
        if json {
            printJSON(results)
        } else {
            for result in results { print(result.text) }
        }
        if results.contains(where: { !$0.ok }) { throw ExitCode(2) }
    }
}

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what the running tierd would do now, with a reason per action and skip (moves nothing).",
        discussion: "The daemon plans a fresh snapshot with its own carried state (reclaiming or not, rate-limit tokens, held-back groups). With --offline, tierctl plans from --config and --root alone, as a tierd starting now would.")
    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var host: HostOptions
    @Flag(help: "Plan without the daemon, from --config and --root, with no carried state.") var offline = false
    @Flag(help: "Print the plan as JSON.") var json = false

    func run() async throws {
        if !offline {
            print(String(decoding: try daemon.get("/plan" + (json ? "?format=json" : "")), as: UTF8.self), terminator: "")
            return
        }
        let (_, _, report) = try await host.dryRunTick()
        let document = PlanDocument(report, dryRun: true)
        if json { printJSON(document) } else { print(document.text) }
    }
}

struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain the running tierd's view of one cgroup: its workload, memory, targets and decision.",
        discussion: "With --offline, from --config and --root alone, with no carried state.")
    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var host: HostOptions
    @Flag(help: "Explain without the daemon, from --config and --root.") var offline = false
    @Flag(help: "Print the explanation as JSON.") var json = false
    @Argument(help: "Cgroup path relative to the cgroup root, such as batch.slice/job1.") var group: String

    func run() async throws {
        let path = CgroupPath(group)
        if !offline {
            let query = "/explain?group=" + path.relative.percentEncoded + (json ? "&format=json" : "")
            print(String(decoding: try daemon.get(query), as: UTF8.self), terminator: "")
            return
        }
        let (policy, controller, report) = try await host.dryRunTick()
        guard var snapshot = report.snapshot else { print("tierctl: cannot read the host"); throw ExitCode(1) }
        // The plan came from a planning snapshot; the explanation also shows memory.stat and memory.current.
        if let detailed = try? controller.collector.collect(selection: policy.tiers, depth: .detailed) {
            snapshot.groups = detailed.groups
            snapshot.kernelMovers = detailed.kernelMovers
        }
        guard let cgroup = snapshot.groups.first(where: { $0.path == path }) else {
            print("tierctl: no cgroup \(path) under the cgroup root")
            throw ExitCode(1)
        }
        let explanation = Explanation(path: path, cgroup: cgroup, snapshot: snapshot, policy: policy, plan: report.plan,
                                      state: controller.carried)
        if json { printJSON(explanation) } else { print(explanation.text) }
    }
}

/// A document as the endpoint serves it (snake_case keys, sorted), on standard output.
func printJSON(_ value: some Encodable, oneLine: Bool = false) {
    print(String(decoding: StatusBoard.encodeJSON(value, oneLine: oneLine), as: UTF8.self), terminator: "")
}

extension String {
    /// For a query value: everything but unreserved characters and "/" as %XX.
    var percentEncoded: String {
        utf8.map { byte -> String in
            let plain = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || "-_.~/".utf8.contains(byte)
            let hex = String(byte, radix: 16, uppercase: true)
            return plain ? String(UnicodeScalar(byte)) : "%" + (hex.count == 1 ? "0" : "") + hex
        }.joined()
    }
}

/// Where tierctl finds the running daemon.
struct DaemonOptions: ParsableArguments {
    @Option(help: "tierd's status socket.") var socket: String = "/run/tierd/tierd.sock"

    /// GETs `path` from the daemon; a daemon that does not run, or refuses, is a clear error (exit 1).
    func get(_ path: String) throws -> [UInt8] { try ask("GET", path, expecting: 200) }

    /// POSTs to `path` (a manual move), which the daemon accepts with 202.
    func post(_ path: String) throws -> [UInt8] { try ask("POST", path, expecting: 202) }

    /// The daemon's answer whatever its status; no daemon is a clear error (exit 1).
    func answer(_ path: String, method: String = "GET") throws -> (status: Int, body: [UInt8]) {
        do { return try LocalHTTPClient.request(method, path, from: .unix(path: socket, mode: 0o600)) } catch {
            printError("tierctl: \(error)")
            throw ExitCode(1)
        }
    }

    private func ask(_ method: String, _ path: String, expecting: Int) throws -> [UInt8] {
        let answer = try answer(path, method: method)
        guard answer.status == expecting else {
            printError("tierctl: tierd answered \(answer.status): \(String(decoding: answer.body, as: UTF8.self))")
            throw ExitCode(1)
        }
        return answer.body
    }

    /// The daemon's `/status`, decoded; a document this tierctl cannot read is a clear exit 1.
    func status() throws -> DaemonStatus {
        let body = try get("/status")
        do { return try StatusBoard.decode(body) } catch {
            printError("tierctl: the daemon's status could not be read (\(error)); is tierctl as new as tierd?")
            throw ExitCode(1)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the running tierd's view: nodes, workloads, groups with their rule and last action, what it moved.")
    @OptionGroup var daemon: DaemonOptions
    @Flag(help: "Print the daemon's status document as JSON.") var json = false

    func run() throws {
        if json { print(String(decoding: try daemon.get("/status"), as: UTF8.self), terminator: ""); return }
        print(StatusText.render(try daemon.status()), terminator: "")
    }
}

/// A live view: the status redrawn in place every `--interval`, until interrupted (or `--count` frames).
struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the running tierd's status, refreshed in place.")
    @OptionGroup var daemon: DaemonOptions
    @Option(help: "Seconds between refreshes.") var interval: Double = 2
    @Option(help: "Stop after this many frames (default: until interrupted).") var count: Int?
    @Flag(help: "Print each frame's status document as one JSON line, without redrawing.") var json = false

    func validate() throws {
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be between 0.1 and 3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        var frame = 0
        while count.map({ frame < $0 }) ?? true {
            let status = try daemon.status()
            if json {
                printJSON(status, oneLine: true)
            } else {
                // Home the cursor and clear the screen, then draw: the frame replaces the one before.
                print("\u{1B}[H\u{1B}[2J" + StatusText.render(status), terminator: "")
            }
            fflush(nil)
            frame += 1
            if count.map({ frame < $0 }) ?? true { usleep(useconds_t(interval * 1_000_000)) }
        }
    }
}

/// For a container's probes and a unit's checks: exit 0 when the daemon answers healthy (or ready).
struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exit 0 if the running tierd is healthy (its loop completes ticks), or with --ready, ready (one full cycle done).")
    @OptionGroup var daemon: DaemonOptions
    @Flag(help: "Ask whether tierd is ready rather than alive.") var ready = false
    @Flag(help: "Print {\"ok\": …, \"answer\": …} as JSON.") var json = false

    func run() throws {
        guard json else {
            print(String(decoding: try daemon.get(ready ? "/readyz" : "/healthz"), as: UTF8.self), terminator: "")
            return
        }
        let answer = try daemon.answer(ready ? "/readyz" : "/healthz")
        let ok = answer.status == 200
        let text = String(decoding: answer.body, as: UTF8.self).split(separator: "\n").joined(separator: " ")
        printJSON(HealthAnswer(ok: ok, answer: text))
        if !ok { throw ExitCode(1) }
    }
}

/// `tierctl health --json`.
struct HealthAnswer: Encodable {
    var ok: Bool
    var answer: String
}
