import Foundation
import TierCore

/// Where each task's last partial move stopped, so that the next one resumes there.
///
/// A move of part of a task first asks the kernel where each page is (move_pages(2) without
/// target nodes), chunk by chunk from the lowest address. A batch job demoted 64 MiB a tick
/// would so have every tick query again all the pages the earlier ticks already moved, a cost
/// that grows with each tick. The cursor is only a hint: the scan goes on past the end of the
/// address space from its lowest address up to the cursor, so a reused pid or a remapped task
/// is still moved right. Keyed by the task's identity, not its pid alone, so that a task never
/// starts where another one that had its pid stopped.
public final class MoveCursors: @unchecked Sendable {
    private struct Key: Hashable {
        var task: TaskIdentity
        var direction: MigrationAction.Direction
    }
    private let lock = NSLock()
    private var cursors: [Key: UInt64] = [:]
    /// Beyond this many tasks the hints are dropped: they are cheap to lose, and exited tasks
    /// must not pile up in a long-running daemon.
    let capacity: Int

    public init(capacity: Int = 4096) { self.capacity = capacity }

    /// The address the task's last move in this direction stopped at, if any.
    public func resumeAddress(task: TaskIdentity, direction: MigrationAction.Direction) -> UInt64? {
        lock.lock(); defer { lock.unlock() }
        return cursors[Key(task: task, direction: direction)]
    }

    /// Records where a move stopped; nil when it scanned the whole task (the next starts afresh).
    public func record(task: TaskIdentity, direction: MigrationAction.Direction, stoppedAt address: UInt64?) {
        lock.lock(); defer { lock.unlock() }
        let key = Key(task: task, direction: direction)
        guard let address else { cursors[key] = nil; return }
        if cursors[key] == nil && cursors.count >= capacity { cursors.removeAll(keepingCapacity: true) }
        cursors[key] = address
    }

    /// The task's mapped ranges in scan order from `address`: the part at or above it first, then
    /// the part below it, so that one pass still covers every mapped page once.
    public static func scanOrder(_ ranges: [Range<UInt64>], from address: UInt64?) -> [Range<UInt64>] {
        guard let address else { return ranges }
        let above = ranges.compactMap { $0.upperBound > address ? max($0.lowerBound, address)..<$0.upperBound : nil }
        let below = ranges.compactMap { $0.lowerBound < address ? $0.lowerBound..<min($0.upperBound, address) : nil }
        return above + below
    }
}
