import Foundation
import Testing
import TierTestSupport

/// The lab's systemd trial runs the README's install lines as written: if the README changes its
/// steps, this fails until the trial runs the new ones.
struct ReadmeInstallTests {
    @Test func theSystemdTrialRunsTheReadmesOwnSteps() throws {
        let path = ShippedConfigTests.configDirectory.deletingLastPathComponent().appendingPathComponent("README.md").path
        // A command wrapped over two lines of a list item reads as one line.
        let readme = try String(contentsOfFile: path, encoding: .utf8)
            .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        for step in SystemdTrialSteps.readmeInstall + [SystemdTrialSteps.readmeEnable] {
            #expect(readme.contains(step), "the README no longer says: \(step)")
        }
    }
}
