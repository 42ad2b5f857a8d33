import Foundation
import Testing
import TierCore

/// The policies the project ships must compile, and the default must opt nothing in.
struct ShippedConfigTests {
    static let configDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("config")

    static var shippedFiles: [String] {
        let examples = (try? FileManager.default.contentsOfDirectory(atPath: configDirectory.appendingPathComponent("examples").path)) ?? []
        return ["tierd.yaml"] + examples.filter { $0.hasSuffix(".yaml") }.sorted().map { "examples/" + $0 }
    }

    @Test func thereAreExamples() { #expect(Self.shippedFiles.count >= 3) }

    @Test(arguments: shippedFiles)
    func compiles(file: String) throws {
        let path = Self.configDirectory.appendingPathComponent(file).path
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        _ = try PolicyCompiler.compile(bytes: bytes, file: path)
    }

    @Test func theDefaultPolicyOnlyObserves() throws {
        let path = Self.configDirectory.appendingPathComponent("tierd.yaml").path
        let policy = try PolicyCompiler.compile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), file: path)
        #expect(policy.workloads.isEmpty)
        #expect(policy.defaultRule == .observeOnly)
    }
}
