import Foundation

/// How a guest's clock runs.
enum GuestClock: Sendable {
    /// Guest time is host time, as on hardware: what PSI, timers and time-to-DRAM scenarios need.
    case host
    /// QEMU's instruction counter (`-icount shift=0`): one virtual nanosecond per guest
    /// instruction, one vCPU at a time. The lab's host CPUs run the same loop 1.1 to 3.8 s from
    /// one second to the next (docs/BENCHMARKS.md), so a host-clock timing of a move carries the
    /// host's swings; counted, two moves differ only by the instructions the guest ran for them.
    case instructions

    var qemuOptions: [String] {
        switch self {
        case .host: []
        case .instructions: ["-icount shift=0,sleep=on"]
        }
    }
}

/// A guest's NUMA layout: node 0 is DRAM with both CPUs; the others are CPU-less and slower
/// (HMAT latency 30 ns vs 10 ns, bandwidth 2 vs 10 GB/s), which makes 6.12 put them in a lower tier.
struct GuestTopology: Sendable {
    var name: String
    /// MiB per node, node 0 first.
    var nodeMiB: [Int]
    var clock: GuestClock = .host

    static let twoTier = GuestTopology(name: "2node", nodeMiB: [1024, 2048])
    /// The two-tier guest timed by instructions, for the migration throughput pairs.
    static let twoTierCounted = GuestTopology(name: "2node-counted", nodeMiB: [1024, 2048], clock: .instructions)
    static let threeNode = GuestTopology(name: "3node", nodeMiB: [1024, 1024, 1024])

    var qemuOptions: String {
        var opts = ["-machine hmat=on"] + clock.qemuOptions
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

/// A kernel the lab boots, as scripts/provision.sh left it in `.lab-cache/kernels/LABEL`.
struct LabKernel: Sendable {
    /// `lts` (the long-term series) or `newest` (the newest series Debian packages); provision.sh names the series.
    var label: String
    /// `uname -r` of the guest, say 6.12.95+deb12-amd64.
    var version: String
    var image: String

    static let labels = ["lts", "newest"]

    static func provisioned(_ label: String, cache: String) throws -> LabKernel {
        let stamp = cache + "/kernels/\(label).version"
        guard let version = try? String(contentsOfFile: stamp, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              !version.isEmpty else {
            throw LabError("the \(label) kernel is not provisioned: run scripts/provision.sh --kernels \(label) (no \(stamp))")
        }
        let image = cache + "/kernels/\(label)/vmlinuz"
        guard FileManager.default.fileExists(atPath: image) else {
            throw LabError("the \(label) kernel is not provisioned: run scripts/provision.sh --kernels \(label) (no \(image))")
        }
        return LabKernel(label: label, version: version, image: image)
    }
}

/// One guest boot: a kernel, a topology and the scenarios that share it.
struct Boot: Sendable {
    /// `LabKernel.label` of the kernel it boots.
    var kernel: String = "lts"
    var topology: GuestTopology
    var scenarios: [String]
    /// Wall-clock limit for the whole boot, scenarios included.
    var timeoutSeconds: Int
}

/// Which boots each suite needs. Scenarios share boots: booting under emulation costs ~20 s.
enum Suites {
    static let twoTierScenarios = ["late-protected", "late-protected-cold", "late-protected-reserve", "phase-change", "numa-balancing-default", "kernel-demotion-neighbours", "late-protected-pod", "opt-out-holds", "mempolicy", "pressure-guard", "killed-mid-demotion", "slow-tier-full", "churn", "systemd-unit"]
    static let countedScenarios = ["throughput"]
    static let threeNodeScenarios = ["cpuset", "faults-mid-move"]
    static let demoScenarios = ["demo-kernel", "demo-numa-balancing", "late-protected", "late-protected-cold"]
    /// What the kernel's own behaviour decides (demotion, cpusets, mempolicies, faults around a
    /// move), run on every kernel; the rest tests tierd alone and runs on the first kernel only.
    static let kernelDependent: Set<String> = ["late-protected", "late-protected-cold", "late-protected-reserve", "phase-change", "numa-balancing-default", "kernel-demotion-neighbours", "opt-out-holds", "mempolicy", "pressure-guard",
                                               "killed-mid-demotion", "slow-tier-full", "cpuset", "faults-mid-move",
                                               "demo-kernel", "demo-numa-balancing"]

    /// The boots of `suite` on each kernel of `kernels`, in order: the first kernel runs every
    /// scenario, later ones the kernel-dependent ones.
    static func boots(_ suite: String, kernels: [String], only: [String]?, countedProbes: Bool = false, throughput: Bool = false) -> [Boot]? {
        guard let base = boots(suite, only: only, countedProbes: countedProbes, throughput: throughput) else { return nil }
        return kernels.enumerated().flatMap { index, kernel in
            base.compactMap { boot -> Boot? in
                var boot = boot
                boot.kernel = kernel
                if index > 0 && suite != "probe" { boot.scenarios = boot.scenarios.filter(kernelDependent.contains) }
                return boot.scenarios.isEmpty ? nil : boot
            }
        }
    }

    /// - Parameter countedProbes: probes boot the counted-clock guest instead of the host-clock one.
    /// - Parameter throughput: the demo also boots the counted-clock guest for the throughput pairs
    ///   (5 minutes more); the tests always do.
    static func boots(_ suite: String, only: [String]?, countedProbes: Bool = false, throughput: Bool = false) -> [Boot]? {
        func keep(_ list: [String]) -> [String] { only.map { wanted in list.filter(wanted.contains) } ?? list }
        if suite == "probe" {
            return [Boot(topology: countedProbes ? .twoTierCounted : .twoTier, scenarios: only ?? ["probe-moves"], timeoutSeconds: 1500)]
        }
        let counted = Boot(topology: .twoTierCounted, scenarios: keep(countedScenarios), timeoutSeconds: 1200)
        switch suite {
        case "tests":
            return [Boot(topology: .twoTier, scenarios: keep(twoTierScenarios), timeoutSeconds: 1500), counted,
                    Boot(topology: .threeNode, scenarios: keep(threeNodeScenarios), timeoutSeconds: 600)]
                .filter { !$0.scenarios.isEmpty }
        case "demo":
            return ((throughput ? [counted] : []) + [Boot(topology: .twoTier, scenarios: keep(demoScenarios), timeoutSeconds: 1500)])
                .filter { !$0.scenarios.isEmpty }
        default:
            return nil
        }
    }
}

/// The host side of the lab: finds what scripts/provision.sh installed and boots guests with virtme-ng.
struct HostLab {
    let project: String
    let out: String
    let kernels: [String: LabKernel]
    let vng: String
    let bin: String

    /// - Parameter kernels: the labels of the kernels it will boot (`LabKernel.labels`).
    init(outDirectory: String, kernels labels: [String]) throws {
        let fm = FileManager.default
        project = fm.currentDirectoryPath
        let cache = project + "/.lab-cache"
        var kernels: [String: LabKernel] = [:]
        for label in labels { kernels[label] = try LabKernel.provisioned(label, cache: cache) }
        self.kernels = kernels
        vng = cache + "/venv/bin/vng"
        guard fm.isExecutableFile(atPath: vng) else {
            throw LabError("the lab is not provisioned: run scripts/provision.sh (missing \(vng))")
        }
        bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        out = outDirectory.hasPrefix("/") ? outDirectory : project + "/" + outDirectory
        try? fm.removeItem(atPath: out)
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
    }

    /// Boots one guest, runs its scenarios, and returns their results (a failed boot is a failed result).
    func boot(_ boot: Boot) throws -> [ScenarioResult] {
        guard let kernel = kernels[boot.kernel] else { throw LabError("no \(boot.kernel) kernel loaded for this run") }
        let dir = out + "/\(boot.kernel)-\(boot.topology.name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func command(_ scenarios: [String]) -> String {
            "\(bin)/tierlab guest --out \(dir) --bin \(bin) --project \(project) --scenarios \(scenarios.joined(separator: ","))"
        }
        FileHandle.standardError.write(Data("tierlab: booting the \(boot.topology.name) guest on \(kernel.version) for \(boot.scenarios.joined(separator: ", "))\n".utf8))
        let started = Date()
        var status = try runGuest(kernel: kernel, topology: boot.topology, rwdir: dir, command: command(boot.scenarios), log: dir + "/console.log",
                                  timeout: boot.timeoutSeconds)
        // An emulated kernel can die: an int3 oops while it boots, or later in the middle of the
        // scenarios (seen on 7.3 as a scenario turned NUMA balancing's switch: live code patching
        // under TCG). Such a guest is booted once more for the scenarios without a result (the one
        // that was running among them, none of its checks judged); results written stand, passed
        // or failed. Its first console is kept.
        let cameUp = ((try? String(contentsOfFile: dir + "/guest.log", encoding: .utf8)) ?? "").contains("guest up")
        let written = ScenarioResult.load(dir + "/results.jsonl").map(\.scenario)
        let unfinished = boot.scenarios.filter { name in !written.contains { $0.hasPrefix(name) } }
        let firstConsole = (try? String(contentsOfFile: dir + "/console.log", encoding: .utf8)) ?? ""
        if !unfinished.isEmpty && (!cameUp || Self.diedOfEmulatorOops(firstConsole)) {
            try? FileManager.default.removeItem(atPath: dir + "/console-failed-boot.log")
            try? FileManager.default.moveItem(atPath: dir + "/console.log", toPath: dir + "/console-failed-boot.log")
            let why = cameUp ? "its kernel died of an int3 oops" : "never came up (\(Self.guestEnding(status: status, console: firstConsole)))"
            FileHandle.standardError.write(Data("tierlab: the \(boot.topology.name) guest \(why); console in \(dir)/console-failed-boot.log: booting it once more for \(unfinished.joined(separator: ", "))\n".utf8))
            status = try runGuest(kernel: kernel, topology: boot.topology, rwdir: dir, command: command(unfinished), log: dir + "/console.log",
                                  timeout: boot.timeoutSeconds)
        }
        let results = ScenarioResult.load(dir + "/results.jsonl").map { result in
            var result = result
            result.kernel = kernel.version
            return result
        }
        let console = (try? String(contentsOfFile: dir + "/console.log", encoding: .utf8)) ?? ""
        let ending = Self.guestEnding(status: status, console: console)
        FileHandle.standardError.write(Data(String(format: "tierlab: %@ guest done in %.0f s (%@)\n",
                                                    boot.topology.name, Date().timeIntervalSince(started), ending).utf8))
        let missing = boot.scenarios.filter { name in !results.contains { $0.scenario.hasPrefix(name) } }
        let guestLog = (try? String(contentsOfFile: dir + "/guest.log", encoding: .utf8)) ?? ""
        return results + missing.map { name in
            ScenarioResult(scenario: name, kernel: kernel.version, checks: [Check(name: "scenario ran to completion", ok: false,
                detail: "\(ending); last guest log lines:\n\(guestLog.suffix(3000))\nconsole:\n\(console.suffix(2000))")])
        }
    }

    /// Whether the guest's kernel panicked on an int3 trap it did not expect: the emulator and the
    /// kernel's live code patching (static keys flipped by a sysctl), not a scenario's doing.
    static func diedOfEmulatorOops(_ console: String) -> Bool {
        console.contains("Oops: int3") && console.contains("Kernel panic")
    }

    /// How a guest run ended, in words. Without virtio-serial script ports virtme-ng runs the
    /// command on the console and exits 255 whatever the command returned; the guest's init
    /// prints the command's own status on the console, which is the one that matters.
    static func guestEnding(status: Int32, console: String) -> String {
        if status == 124 || status == 137 { return "timed out: killed after its time limit" }
        let marker = "script exited with code "
        if let found = console.range(of: marker, options: .backwards) {
            return "its command exited \(console[found.upperBound...].prefix { $0.isNumber || $0 == "-" })"
        }
        return "virtme-ng exit \(status), no command status on the console"
    }

    /// Parameters every lab guest's kernel boots with.
    static let guestKernelArgs = "transparent_hugepage=never"

    func runGuest(kernel: LabKernel, topology: GuestTopology, rwdir: String, command: String, log: String, timeout: Int) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=10", String(timeout), vng, "--run", kernel.image, "--disable-kvm",
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

    /// Captures a fixture tree in a 3-node guest with `script` (a file of scripts/, run in the guest).
    func capture(into directory: String, script: String) throws {
        guard let kernel = kernels["lts"] else { throw LabError("captures boot the lts kernel") }
        let dir = out + "/3node"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let status = try runGuest(kernel: kernel, topology: .threeNode, rwdir: dir,
                                  command: "\(project)/scripts/\(script) \(dir)/tree", log: dir + "/console.log", timeout: 400)
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
