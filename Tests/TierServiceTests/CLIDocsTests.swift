import Foundation
import Testing
import TierTestSupport

/// The man pages in docs/man are generated from the command definitions
/// (scripts/generate-cli-docs.sh): each subcommand has its page and each page names every long
/// option the built binary takes, so a flag added without regenerating them fails here. Shell
/// completions come from the binary itself.
struct CLIDocsTests {
    static let manDirectory = FixtureTree.fixtures + "/../../docs/man"

    /// (page name, long options) for the binary and each of its subcommands, from its own help dump.
    func commands(_ binary: String) throws -> [(page: String, options: [String])] {
        let (_, output) = try TierdExecutableTests().runBinary(binary, ["--experimental-dump-help"])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let root = try #require(document["command"] as? [String: Any])
        func longOptions(_ command: [String: Any]) -> [String] {
            ((command["arguments"] as? [[String: Any]]) ?? []).flatMap { argument in
                ((argument["names"] as? [[String: Any]]) ?? []).compactMap { $0["kind"] as? String == "long" ? $0["name"] as? String : nil }
            }.filter { $0 != "help" && $0 != "version" }
        }
        let subcommands = ((root["subcommands"] as? [[String: Any]]) ?? []).filter { $0["commandName"] as? String != "help" }
        return [(binary, longOptions(root))] + subcommands.map { ("\(binary).\($0["commandName"] as? String ?? "")", longOptions($0)) }
    }

    @Test(arguments: ["tierd", "tierctl"])
    func everyCommandHasAPageNamingEachOfItsOptions(binary: String) throws {
        let found = try commands(binary)
        #expect(found.count >= (binary == "tierctl" ? 6 : 1))
        for command in found {
            let page = try String(contentsOfFile: Self.manDirectory + "/\(command.page).1", encoding: .utf8)
            for option in command.options {
                #expect(page.contains("Fl -\(option)"), "docs/man/\(command.page).1 lacks --\(option): run scripts/generate-cli-docs.sh")
            }
        }
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionsKnowTheSubcommands(shell: String) throws {
        let (status, script) = try TierdExecutableTests().runBinary("tierctl", ["--generate-completion-script", shell])
        #expect(status == 0)
        for subcommand in ["status", "health", "plan", "explain", "validate"] { #expect(script.contains(subcommand), "\(shell): \(subcommand)") }
    }
}
