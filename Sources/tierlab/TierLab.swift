import ArgumentParser

/// The two-tier lab: boots QEMU guests whose kernel puts a CPU-less node in a lower memory tier,
/// and runs tierd's end-to-end scenarios in them. `run` is the host side; `guest` runs inside.
@main
struct TierLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tierlab",
        abstract: "Boot two-tier guests and prove tierd's claims on a real kernel.",
        subcommands: [Run.self, Guest.self, Capture.self])
}

/// Host side: boot guests for a suite, print what they found, exit non-zero on any failed check.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a suite: `tests` (every scenario) or `demo` (kernel vs tierd).")

    @Argument(help: "tests or demo") var suite: String
    @Option(help: "Results directory (default .lab-out/<suite>).") var out: String?
    @Option(help: "Only these scenarios (comma-separated), for a quicker look.") var only: String?
    @Flag(help: "probe: boot the guest whose clock counts instructions (timings free of the host's speed swings).")
    var countedClock = false
    @Option(help: "Kernels to boot, in order: lts, newest or both (default: both for tests, lts otherwise).")
    var kernels: String?
    @Flag(help: "demo: also measure migration throughput in the counted-clock guest (5 minutes more).")
    var throughput = false

    func run() throws {
        let chosen = kernels ?? (suite == "tests" ? "both" : "lts")
        let labels = chosen == "both" ? LabKernel.labels : chosen.split(separator: ",").map(String.init)
        guard !labels.isEmpty, labels.allSatisfy(LabKernel.labels.contains) else {
            throw ValidationError("unknown kernels '\(chosen)': use lts, newest, both, or a comma-separated list of lts and newest")
        }
        guard let plan = Suites.boots(suite, kernels: labels, only: only?.split(separator: ",").map(String.init), countedProbes: countedClock,
                                      throughput: throughput) else {
            throw ValidationError("unknown suite '\(suite)': use tests or demo")
        }
        let lab = try HostLab(outDirectory: out ?? ".lab-out/\(suite)", kernels: labels)
        var results: [ScenarioResult] = []
        for boot in plan { results += try lab.boot(boot) }
        let report = Report(results: results)
        print(report.text(suite: suite))
        if suite == "demo" { try report.writeDemoArtifacts(directory: lab.out) }
        if results.isEmpty || results.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}

/// Guest side: run scenarios in order in this boot, writing results to `--out`.
struct Guest: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inside the lab guest: run scenarios (used by `run`).")
    @Option var out: String
    @Option var scenarios: String
    @Option(help: "Directory holding tierd and tierload.") var bin: String
    @Option(help: "The project's checkout (deploy/ and scripts/ come from it).") var project: String

    func run() throws {
        let lab = try GuestLab(out: out, bin: bin, project: project)
        lab.runAll(scenarios.split(separator: ",").map(String.init))
    }
}

/// Capture kernel text for unit-test fixtures from a three-node guest.
struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Capture fixture trees from the 3-node guest into Tests/Fixtures.")
    @Option(help: "host: cgroups and workloads as tierd sees them on a host; pod: as tierd sees them from a Kubernetes pod.")
    var shape: String = "host"
    @Option(help: "Where the tree goes (default Tests/Fixtures/guest-3node, or guest-pod for --shape pod).") var out: String?

    func run() throws {
        let scripts = ["host": "capture-fixtures.sh", "pod": "capture-pod-fixture.sh"]
        guard let script = scripts[shape] else { throw ValidationError("unknown shape '\(shape)': use host or pod") }
        let lab = try HostLab(outDirectory: ".lab-out/capture-\(shape)", kernels: ["lts"])
        try lab.capture(into: out ?? (shape == "pod" ? "Tests/Fixtures/guest-pod" : "Tests/Fixtures/guest-3node"), script: script)
    }
}
