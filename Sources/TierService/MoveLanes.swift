import Dispatch
import Foundation
import TierCore
import TierLinux

/// Runs one tick's actions in two lanes, each on its own thread at the mover's nice: the
/// promotions in plan order on one, the demotions in plan order on the other.
///
/// A promotion into room that a demotion makes (`usesRoomMade`) follows the tick's demotions
/// (`makesRoom` first, then the watermark's) batch by batch through a `RoomPacer`, instead of
/// waiting for them to finish; the protected job's pages so come back while the batch job's
/// leave, and DRAM is never promised before it is free. Room the kernel does not show as free
/// at once (other allocations, pages not yet back on the free lists) is made up from the
/// watermark's demotion in the same tick instead of a tick later. Outcomes come back in plan order.
enum MoveLanes {
    static let promotionQueue = DispatchQueue(label: "tierd.promotions")
    static let demotionQueue = DispatchQueue(label: "tierd.demotions")

    /// Outcomes in plan order, and whether the mover's nice was in effect on both lanes. Not
    /// `parallel`, one thread runs every action in plan order, unpaced.
    /// `nextTickDue`: when the next tick should start; demotions that yield to it stop then.
    static func run(_ actions: [MigrationAction], migrator: any PageMigrator, nice: Int32,
                    parallel: Bool, nextTickDue: ContinuousClock.Instant? = nil) async -> (outcomes: [ActionOutcome], niceApplied: Bool) {
        guard !actions.isEmpty else { return ([], true) }
        guard parallel else {
            return await withCheckedContinuation { done in
                demotionQueue.async {
                    let (outcomes, applied) = ThreadPriority.withNice(nice) {
                        actions.map { migrator.execute($0, pacer: nil, nextTickDue: nextTickDue) }
                    }
                    done.resume(returning: (outcomes, applied))
                }
            }
        }
        let promotions = actions.indices.filter { actions[$0].direction == .promote }
        let demotions = actions.indices.filter { actions[$0].direction == .demote }
        let pacer: RoomPacer? = demotions.contains { actions[$0].makesRoom } && promotions.contains { actions[$0].usesRoomMade }
            ? RoomPacer() : nil
        let results = LaneResults(count: actions.count)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let lanes = DispatchGroup()
            lanes.enter()
            promotionQueue.async {
                let (_, applied) = ThreadPriority.withNice(nice) {
                    for index in promotions {
                        results.set(index, migrator.execute(actions[index], pacer: actions[index].usesRoomMade ? pacer : nil,
                                                            nextTickDue: nextTickDue))
                    }
                    pacer?.promotionsFinished()
                }
                results.noteNice(applied)
                lanes.leave()
            }
            lanes.enter()
            demotionQueue.async {
                let (_, applied) = ThreadPriority.withNice(nice) {
                    for index in demotions {
                        results.set(index, migrator.execute(actions[index], pacer: pacer, nextTickDue: nextTickDue))
                    }
                    // The promotion waiting for room stops waiting once no more is being made.
                    pacer?.finish()
                }
                results.noteNice(applied)
                lanes.leave()
            }
            lanes.notify(queue: .global()) { done.resume() }
        }
        return (results.outcomes(actions), results.niceApplied)
    }
}

/// What the two lanes hand back, written from their threads.
private final class LaneResults: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [ActionOutcome?]
    private var allNiceApplied = true

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ outcome: ActionOutcome) { lock.lock(); slots[index] = outcome; lock.unlock() }
    func noteNice(_ applied: Bool) { lock.lock(); allNiceApplied = allNiceApplied && applied; lock.unlock() }
    var niceApplied: Bool { lock.lock(); defer { lock.unlock() }; return allNiceApplied }

    func outcomes(_ actions: [MigrationAction]) -> [ActionOutcome] {
        lock.lock(); defer { lock.unlock() }
        return slots.enumerated().map { $1 ?? ActionOutcome(action: actions[$0], tasks: [], dropped: "not run") }
    }
}
