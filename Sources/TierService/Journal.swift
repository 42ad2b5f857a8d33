import Foundation
import TierCore
import TierLinux

/// An append-only JSON-lines record of what tierd decided and did: one line per tick, per action
/// outcome, and per skip whose reason changed. The lab reads it; operators can tail it. A write
/// that fails is counted, never fatal (`LineFile`).
public final class Journal: Sendable {
    let file: LineFile?

    public init(path: String?, onTrouble: @escaping @Sendable (String) -> Void = { _ in }) throws {
        file = try path.map { path throws(LineFileError) in try LineFile(path: path, onTrouble: onTrouble) }
    }

    public var isEnabled: Bool { file != nil }

    public func write(_ fields: [String: JSONValue]) {
        file?.append(JSONValue.object(fields).encoded)
    }

    /// After logrotate moved the file away (SIGUSR1, SIGHUP).
    public func reopen() { file?.reopen() }

    public var failedWrites: UInt64 { file?.failedWrites ?? 0 }
}

/// One JSON line per task move, for an operator's audit: when, which group and pid, from and to
/// which nodes, in which mode, the bytes the action asked for, the bytes that moved, and what was
/// left behind and why. Rotated by size (`path.1` … `path.3`), reopened on SIGUSR1 and SIGHUP, and
/// never fatal when the disk is full.
public final class AuditLog: Sendable {
    let file: LineFile

    public init(path: String, maxBytes: UInt64, onTrouble: @escaping @Sendable (String) -> Void = { _ in }) throws(LineFileError) {
        file = try LineFile(path: path, maxBytes: maxBytes, keep: 3, onTrouble: onTrouble)
    }

    /// The lines of one tick's outcomes; `time` is the wall-clock time, as an operator reads it.
    public static func lines(_ outcomes: [ActionOutcome], tick: UInt64, time: String) -> [String] {
        outcomes.flatMap { outcome -> [String] in
            let action = outcome.action
            let leftByError = JSONValue.object(Dictionary(uniqueKeysWithValues: outcome.stayedByError.map {
                (SyscallError($0.key).name, JSONValue.int(Int64($0.value)))
            }))
            if case .kernelReclaim(let argument) = action.mechanism, outcome.tasks.isEmpty {
                var record: [String: JSONValue] = [
                    "time": .string(time), "tick": .int(Int64(tick)), "group": .string(action.group.description),
                    "workload": .string(action.workload), "direction": .string(action.direction.rawValue),
                    "mode": "cold", "from": .string(action.from.description), "to": .string(NodeSet(action.to).description),
                    "asked": .bytes(action.bytes), "moved": .bytes(outcome.reclaimedBytes), "lost": .bytes(outcome.lostBytes),
                    "result": .string(outcome.lostBytes > 0 ? "lost" : outcome.dropped != nil ? "dropped" : "reclaimed"),
                    "detail": .string("memory.reclaim" + (argument.map { " " + $0 } ?? "") + (outcome.dropped.map { ": " + $0 } ?? "")),
                    "reason": .string(action.reason),
                ]
                if outcome.kernelLostBytes > 0 { record["kernel_lost"] = .bytes(outcome.kernelLostBytes) }
                if outcome.slowTierDroppedBytes > 0 { record["slow_tier_dropped"] = .bytes(outcome.slowTierDroppedBytes) }
                return [JSONValue.object(record).encoded]
            }
            return outcome.tasks.map { task in
                var pagesLeft: UInt64 = 0
                if case .partial(_, let notMoved) = task.result { pagesLeft = UInt64(notMoved) }
                return JSONValue.object([
                    "time": .string(time), "tick": .int(Int64(tick)), "group": .string(action.group.description),
                    "workload": .string(action.workload), "pid": .int(Int64(task.pid)), "direction": .string(action.direction.rawValue),
                    "mode": .string(action.mechanism.mode.rawValue), "from": .string(action.from.description), "to": .string(NodeSet(action.to).description),
                    "asked": .bytes(action.bytes), "moved": .bytes(task.result.movedBytes), "result": .string(task.result.code),
                    "detail": .string(task.result.description), "pages_left": .bytes(pagesLeft), "action_pages_left_by_error": leftByError,
                    "reason": .string(action.reason),
                ]).encoded
            }
        }
    }

    public func record(_ outcomes: [ActionOutcome], tick: UInt64, time: String) {
        for line in Self.lines(outcomes, tick: tick, time: time) { file.append(line) }
    }

    public func reopen() { file.reopen() }
    public var failedWrites: UInt64 { file.failedWrites }
}

/// The little JSON tierd writes, without going through Codable for every line.
public enum JSONValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String), int(Int64), double(Double), bool(Bool), array([JSONValue]), object([String: JSONValue])
    /// A value the kernel did not show (a file absent from this build).
    case null

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public static func bytes(_ value: UInt64) -> JSONValue { .int(Int64(clamping: value)) }

    public var encoded: String {
        switch self {
        case .string(let s): return JSONValue.quote(s)
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? String(format: "%.6g", d) : "null"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
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
