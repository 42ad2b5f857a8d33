#if canImport(Glibc)
import Glibc
#endif

/// Prints one line to standard error: the executables' error messages, kept off standard output,
/// which scripts read.
public func printError(_ message: String) {
    var stderr = StandardError()
    print(message, to: &stderr)
}

/// Standard error as a `TextOutputStream`, written with write(2).
public struct StandardError: TextOutputStream {
    public init() {}
    public mutating func write(_ string: String) {
        string.withCString { _ = Glibc.write(2, $0, strlen($0)) }
    }
}
