import Foundation
import TierCore
import TierLinux

/// An append-only JSON-lines record of what tierd decided and did: one line per tick, per action
/// outcome, and per skip whose reason changed. The lab reads it; operators can tail it.
public final class Journal: @unchecked Sendable {
    private let handle: FileHandle?
    private let lock = NSLock()

    public init(path: String?) throws {
        guard let path else { handle = nil; return }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        self.handle = handle
    }

    public var isEnabled: Bool { handle != nil }

    public func write(_ fields: [String: JSONValue]) {
        guard let handle else { return }
        let line = JSONValue.object(fields).encoded + "\n"
        lock.lock(); defer { lock.unlock() }
        handle.write(Data(line.utf8))
    }
}

/// The little JSON tierd writes, without going through Codable for every line.
public enum JSONValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String), int(Int64), double(Double), bool(Bool), array([JSONValue]), object([String: JSONValue])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public static func bytes(_ value: UInt64) -> JSONValue { .int(Int64(clamping: value)) }

    public var encoded: String {
        switch self {
        case .string(let s): return JSONValue.quote(s)
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? String(format: "%.6g", d) : "null"
        case .bool(let b): return b ? "true" : "false"
        case .array(let a): return "[" + a.map(\.encoded).joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { JSONValue.quote($0) + ":" + o[$0]!.encoded }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
