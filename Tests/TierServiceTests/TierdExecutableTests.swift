import Foundation
import Testing
import TierTestSupport

/// The built `tierd` binary, run as an operator would: bad policies exit 2 with a precise message,
/// and `--once --dry-run` on a captured kernel tree prints the plan with its reasons.
struct TierdExecutableTests {
    static var binDirectory: URL {
        // Tests run from the package's build products directory, beside the executables.
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? "")
        while url.path != "/" && !FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("tierd").path) {
            url.deleteLastPathComponent()
        }
        return url
    }

    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = Self.binDirectory.appendingPathComponent("tierd")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func policyFile(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "tierd-exe-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: [
        ("workloads:\n  - name: a\n    match: [x]\n    demote: maybe\n", "4:13: workloads[0].demote: 'maybe' is not `allowed` or `never`"),
        ("controller:\n  rate_limit: 1GB/s\n", "2:15: controller.rate_limit: '1GB' is not a size"),
        ("bogus: true\n", "1:1: bogus: unknown key"),
    ])
    func aBadPolicyExitsTwoNamingLineColumnAndField(yaml: String, message: String) throws {
        let path = try policyFile(yaml)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, output) = try run(["--config", path, "--once", "--dry-run", "--root", FixtureTree.capturedGuest])
        #expect(status == 2)
        #expect(output.contains("tierd: \(path):\(message)"))
    }

    @Test func onceDryRunPrintsThePlanWithReasons() throws {
        let path = try policyFile("workloads: []\ndefault: {demote: never, promote: true}\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, output) = try run(["--config", path, "--once", "--dry-run", "--root", FixtureTree.capturedGuest, "--log-level", "error"])
        #expect(status == 0)
        #expect(output.contains("topology: fast 0 slow 1-2 (kernel memory tiers)"))
        #expect(output.contains("skip /batch.slice/job2 [default]: cpuset.mems.effective is 1, no DRAM node: never promoted"))
        #expect(output.contains("(dry run: nothing was moved)"))
    }
}
