import ArgumentParser
import TierCore
import TierService

#if canImport(Glibc)
import Glibc
#endif

/// What `tierctl demote` and `tierctl promote` share: ask the running daemon, wait for its answer.
struct ManualOptions: ParsableArguments {
    @OptionGroup var daemon: DaemonOptions
    @Argument(help: "Cgroup path relative to the cgroup root, such as batch.slice/job1.") var group: String
    @Option(help: "Move at most this much (a byte count or a size such as 64MiB); default: all that fits.") var bytes: String?
    @Option(help: "Seconds to wait for the move to finish.") var timeout: Double = 120
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if let bytes {
            guard case .success(let value) = Quantity.parseSize(bytes), value > 0 else {
                throw ValidationError("--bytes \(bytes): a positive size, such as 64MiB or 1GiB")
            }
        }
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be between 0 and 86400 seconds") }
    }

    /// Submits the request, polls its result until it is no longer queued, prints it; a refusal exits 1.
    func run(_ direction: MigrationAction.Direction) throws {
        var path = (direction == .demote ? "/demote" : "/promote") + "?group=" + CgroupPath(group).relative.percentEncoded
        if let bytes, case .success(let value) = Quantity.parseSize(bytes) { path += "&bytes=\(value)" }
        var result = try decode(try daemon.post(path))
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while result.state == .queued {
            guard ContinuousClock.now < deadline else {
                printError("tierctl: request \(result.id) still waits after \(timeout) s; `tierctl status` shows what tierd is doing")
                throw ExitCode(1)
            }
            usleep(200_000)
            result = try decode(try daemon.get("/manual?id=\(result.id)"))
        }
        if json { printJSON(result) } else { print(ManualText.render(result), terminator: "") }
        if result.state == .refused { throw ExitCode(1) }
    }

    private func decode(_ body: [UInt8]) throws -> ManualResult {
        do { return try StatusBoard.decodeJSON(body) } catch {
            printError("tierctl: the daemon's answer could not be read (\(error)); is tierctl as new as tierd?")
            throw ExitCode(1)
        }
    }
}

struct Demote: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running tierd to demote an opted-in group's memory to the slow tier now.",
        discussion: """
            Placement rules hold as for tierd's own moves: only a workload opted in to demotion, never \
            below its DRAM floor, only to slow nodes in the group's cpuset, each task's mempolicy \
            respected. The pressure guard and the rate limit do not apply; the bytes moved are charged \
            to the rate limit afterwards.
            """)
    @OptionGroup var options: ManualOptions
    func run() throws { try options.run(.demote) }
}

struct Promote: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running tierd to bring a group's memory back from the slow tier to DRAM now.",
        discussion: """
            Any workload may be promoted, to DRAM nodes in the group's cpuset, each task's mempolicy \
            respected, as far as DRAM has room above its high watermark.
            """)
    @OptionGroup var options: ManualOptions
    func run() throws { try options.run(.promote) }
}
