import Foundation

#if FUZZING
/// libFuzzer's entry: `TIERFUZZ_TARGET` names the target (built by scripts/fuzz.sh).
private let selected: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["TIERFUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget.named(name) else {
        fatalError("TIERFUZZ_TARGET must be one of: \(FuzzTarget.all.map(\.name).joined(separator: ", "))")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

public typealias FuzzArguments = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

/// libFuzzer's driver, which its own `main` would call.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<FuzzArguments>,
                     _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The package manager links an executable's entry as `<module>_main`; libFuzzer's own `main`
/// is then never linked in, so this one hands over to its driver.
@_cdecl("tierfuzz_main")
public func tierfuzzMain(_ argc: CInt, _ argv: FuzzArguments) -> CInt {
    var count = argc, arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzOneInput)
}
#else
/// The fuzz targets without the fuzzer: lists them, writes their seed corpora, and replays a
/// corpus through a target (the test command replays the corpora kept in the repository).
@main
struct TierFuzz {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "list":
            for target in FuzzTarget.all { print(target.name) }
        case "seed" where arguments.count == 4:
            exit(seed(target(arguments[1]), fixtures: arguments[2], into: arguments[3]))
        case "replay" where arguments.count >= 3:
            exit(replay(target(arguments[1]), paths: Array(arguments.dropFirst(2))))
        default:
            FileHandle.standardError.write(Data("""
            usage: tierfuzz list
                   tierfuzz seed TARGET FIXTURES_DIR CORPUS_DIR
                   tierfuzz replay TARGET FILE_OR_DIR...

            """.utf8))
            exit(2)
        }
    }

    static func target(_ name: String) -> FuzzTarget {
        guard let target = FuzzTarget.named(name) else {
            FileHandle.standardError.write(Data("tierfuzz: no target \(name); targets: \(FuzzTarget.all.map(\.name).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return target
    }

    static func seed(_ target: FuzzTarget, fixtures: String, into corpus: String) -> Int32 {
        let manager = FileManager.default
        try? manager.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        var written = 0
        for (index, path) in target.seeds.enumerated() {
            guard let data = manager.contents(atPath: fixtures + "/" + path) else {
                FileHandle.standardError.write(Data("tierfuzz: seed \(fixtures)/\(path) of \(target.name) is missing\n".utf8))
                return 1
            }
            _ = manager.createFile(atPath: "\(corpus)/seed-\(index)", contents: data)
            written += 1
        }
        for (index, text) in target.literalSeeds.enumerated() {
            _ = manager.createFile(atPath: "\(corpus)/seed-literal-\(index)", contents: Data(text.utf8))
            written += 1
        }
        print("tierfuzz: \(target.name): \(written) seeds in \(corpus)")
        return 0
    }

    static func replay(_ target: FuzzTarget, paths: [String]) -> Int32 {
        let manager = FileManager.default
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("tierfuzz: \(path): no such file or directory\n".utf8))
                return 1
            }
            if isDirectory.boolValue {
                files += ((try? manager.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        guard !files.isEmpty else {
            FileHandle.standardError.write(Data("tierfuzz: \(target.name): nothing to replay in \(paths.joined(separator: " "))\n".utf8))
            return 1
        }
        for file in files {
            guard let data = manager.contents(atPath: file) else { return 1 }
            target.run(Array(data))
        }
        print("tierfuzz: \(target.name): \(files.count) inputs replayed")
        return 0
    }
}
#endif
