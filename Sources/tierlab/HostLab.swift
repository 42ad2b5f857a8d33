import Foundation

/// A guest's NUMA layout: node 0 is DRAM with both CPUs; the others are CPU-less and slower
/// (HMAT latency 30 ns vs 10 ns, bandwidth 2 vs 10 GB/s), which makes 6.12 put them in a lower tier.
struct GuestTopology: Sendable {
    var name: String
    /// MiB per node, node 0 first.
    var nodeMiB: [Int]

    static let twoTier = GuestTopology(name: "2node", nodeMiB: [1024, 2048])
    static let threeNode = GuestTopology(name: "3node", nodeMiB: [1024, 1024, 1024])

    var qemuOptions: String {
        var opts = ["-machine hmat=on"]
        // prealloc: the host backs all guest RAM before boot, as real DRAM and CXL memory are there
        // from power-on; otherwise the guest's first touch of each page costs a host page fault.
        for (node, mib) in nodeMiB.enumerated() { opts.append("-object memory-backend-ram,id=m\(node),size=\(mib)M,prealloc=on") }
        for node in nodeMiB.indices {
            opts.append("-numa node,nodeid=\(node),memdev=m\(node)" + (node == 0 ? ",cpus=0-1" : "") + ",initiator=0")
        }
        for a in nodeMiB.indices { for b in nodeMiB.indices where a < b { opts.append("-numa dist,src=\(a),dst=\(b),val=20") } }
        for node in nodeMiB.indices {
            let (latency, bandwidth) = node == 0 ? (10, "10G") : (30, "2G")
            opts.append("-numa hmat-lb,initiator=0,target=\(node),hierarchy=memory,data-type=access-latency,latency=\(latency)")
            opts.append("-numa hmat-lb,initiator=0,target=\(node),hierarchy=memory,data-type=access-bandwidth,bandwidth=\(bandwidth)")
        }
        return opts.joined(separator: " ")
    }

    var memoryMiB: Int { nodeMiB.reduce(0, +) }
}

/// One guest boot: a topology and the scenarios that share it.
struct Boot: Sendable {
    var topology: GuestTopology
    var scenarios: [String]
    /// Wall-clock limit for the whole boot, scenarios included.
    var timeoutSeconds: Int
}

/// Which boots each suite needs. Scenarios share boots: booting under emulation costs ~20 s.
enum Suites {
    static let twoTierScenarios = ["throughput", "late-protected", "opt-out-holds", "mempolicy", "pressure-guard"]
    static let threeNodeScenarios = ["cpuset"]
    static let demoScenarios = ["throughput", "demo-kernel", "demo-numa-balancing", "late-protected"]

    static func boots(_ suite: String, only: [String]?) -> [Boot]? {
        func keep(_ list: [String]) -> [String] { only.map { wanted in list.filter(wanted.contains) } ?? list }
        if suite == "probe" { return [Boot(topology: .twoTier, scenarios: only ?? ["probe-moves"], timeoutSeconds: 900)] }
        switch suite {
        case "tests":
            return [Boot(topology: .twoTier, scenarios: keep(twoTierScenarios), timeoutSeconds: 1500),
                    Boot(topology: .threeNode, scenarios: keep(threeNodeScenarios), timeoutSeconds: 600)]
                .filter { !$0.scenarios.isEmpty }
        case "demo":
            return [Boot(topology: .twoTier, scenarios: keep(demoScenarios), timeoutSeconds: 1500)]
        default:
            return nil
        }
    }
}

/// The host side of the lab: finds what scripts/provision.sh installed and boots guests with virtme-ng.
struct HostLab {
    let project: String
    let out: String
    let kernel: String
    let vng: String
    let bin: String

    init(outDirectory: String) throws {
        let fm = FileManager.default
        project = fm.currentDirectoryPath
        let cache = project + "/.lab-cache"
        guard let version = try? String(contentsOfFile: cache + "/kernel-version", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines) else {
            throw LabError("the lab is not provisioned: run scripts/provision.sh (no \(cache)/kernel-version)")
        }
        kernel = cache + "/kernel/boot/vmlinuz-" + version
        vng = cache + "/venv/bin/vng"
        guard fm.fileExists(atPath: kernel), fm.isExecutableFile(atPath: vng) else {
            throw LabError("the lab is not provisioned: run scripts/provision.sh (missing \(kernel) or \(vng))")
        }
        bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        out = outDirectory.hasPrefix("/") ? outDirectory : project + "/" + outDirectory
        try? fm.removeItem(atPath: out)
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
    }

    /// Boots one guest, runs its scenarios, and returns their results (a failed boot is a failed result).
    func boot(_ boot: Boot) throws -> [ScenarioResult] {
        let dir = out + "/" + boot.topology.name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let command = "\(bin)/tierlab guest --out \(dir) --bin \(bin) --scenarios \(boot.scenarios.joined(separator: ","))"
        FileHandle.standardError.write(Data("tierlab: booting the \(boot.topology.name) guest for \(boot.scenarios.joined(separator: ", "))\n".utf8))
        let started = Date()
        var status = try runGuest(topology: boot.topology, rwdir: dir, command: command, log: dir + "/console.log",
                                  timeout: boot.timeoutSeconds)
        // An emulated kernel can panic while it boots (seen once: an int3 oops in early boot under
        // TCG). A guest that never reached its scenarios is booted once more; its console is kept.
        let cameUp = { ((try? String(contentsOfFile: dir + "/guest.log", encoding: .utf8)) ?? "").contains("guest up") }
        if !cameUp() && ScenarioResult.load(dir + "/results.jsonl").isEmpty {
            try? FileManager.default.removeItem(atPath: dir + "/console-failed-boot.log")
            try? FileManager.default.moveItem(atPath: dir + "/console.log", toPath: dir + "/console-failed-boot.log")
            FileHandle.standardError.write(Data("tierlab: the \(boot.topology.name) guest never came up (exit \(status); console in \(dir)/console-failed-boot.log): booting it once more\n".utf8))
            status = try runGuest(topology: boot.topology, rwdir: dir, command: command, log: dir + "/console.log",
                                  timeout: boot.timeoutSeconds)
        }
        let results = ScenarioResult.load(dir + "/results.jsonl")
        FileHandle.standardError.write(Data(String(format: "tierlab: %@ guest done in %.0f s (exit %d)\n",
                                                    boot.topology.name, Date().timeIntervalSince(started), status).utf8))
        let missing = boot.scenarios.filter { name in !results.contains { $0.scenario.hasPrefix(name) } }
        let console = (try? String(contentsOfFile: dir + "/console.log", encoding: .utf8)) ?? ""
        let guestLog = (try? String(contentsOfFile: dir + "/guest.log", encoding: .utf8)) ?? ""
        return results + missing.map { name in
            ScenarioResult(scenario: name, checks: [Check(name: "scenario ran to completion", ok: false,
                detail: "guest exit \(status); last guest log lines:\n\(guestLog.suffix(3000))\nconsole:\n\(console.suffix(2000))")])
        }
    }

    /// Parameters every lab guest's kernel boots with.
    static let guestKernelArgs = "transparent_hugepage=never"

    func runGuest(topology: GuestTopology, rwdir: String, command: String, log: String, timeout: Int) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=10", String(timeout), vng, "--run", kernel, "--disable-kvm",
                             "--memory", "\(topology.memoryMiB)M", "--cpus", "2", "--rwdir", rwdir,
                             "--qemu-opts=\(topology.qemuOptions)", "--verbose", "--exec", command]
        // Huge pages off: under emulation their migration runs in spells at a tenth of its speed
        // (docs/BENCHMARKS.md, "Huge pages and the emulator"), which no time ratio survives.
        // For experiments on the emulated guest (say `idle=poll`, or `transparent_hugepage=always`,
        // which wins as the later value): extra kernel parameters.
        let extra = ProcessInfo.processInfo.environment["TIERLAB_KERNEL_ARGS"] ?? ""
        process.arguments! += ["--append", (Self.guestKernelArgs + " " + extra).trimmingCharacters(in: .whitespaces)]
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = project + "/.lab-cache/venv/bin:" + (environment["PATH"] ?? "/usr/bin:/bin")
        process.environment = environment
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func capture(into directory: String) throws {
        let dir = out + "/3node"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let status = try runGuest(topology: .threeNode, rwdir: dir,
                                  command: "\(project)/scripts/capture-fixtures.sh \(dir)/tree", log: dir + "/console.log", timeout: 400)
        guard status == 0 || FileManager.default.fileExists(atPath: dir + "/tree/KERNEL") else {
            throw LabError("capture failed (exit \(status)); see \(dir)/console.log")
        }
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.copyItem(atPath: dir + "/tree", toPath: directory)
        print("captured into \(directory)")
    }
}

struct LabError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
