import Dispatch
import Foundation
import TierCore
import TierLinux

/// Runs one tick's actions in two lanes, each on its own thread at the mover's nice: the
/// promotions in plan order on one, the demotions in plan order on the other.
///
/// A promotion into room that a demotion makes (`usesRoomMade`) follows that demotion
/// (`makesRoom`) batch by batch through a `RoomPacer`, instead of waiting for it to finish; the
/// protected job's pages so come back while the batch job's leave, and DRAM is never promised
/// before it is free. Outcomes come back in plan order.
enum MoveLanes {
    static let promotionQueue = DispatchQueue(label: "tierd.promotions")
    static let demotionQueue = DispatchQueue(label: "tierd.demotions")

    /// Outcomes in plan order, and whether the mover's nice was in effect on both lanes. Not
    /// `parallel`, one thread runs every action in plan order, unpaced.
    static func run(_ actions: [MigrationAction], migrator: any PageMigrator, nice: Int32,
                    parallel: Bool) async -> (outcomes: [ActionOutcome], niceApplied: Bool) {
        guard !actions.isEmpty else { return ([], true) }
        guard parallel else {
            return await withCheckedContinuation { done in
                demotionQueue.async {
                    let (outcomes, applied) = ThreadPriority.withNice(nice) { actions.map { migrator.execute($0, pacer: nil) } }
                    done.resume(returning: (outcomes, applied))
                }
            }
        }
        let promotions = actions.indices.filter { actions[$0].direction == .promote }
        let demotions = actions.indices.filter { actions[$0].direction == .demote }
        let roomMaking = demotions.filter { actions[$0].makesRoom }
        let pacer: RoomPacer? = !roomMaking.isEmpty && promotions.contains { actions[$0].usesRoomMade } ? RoomPacer() : nil
        let results = LaneResults(count: actions.count)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let lanes = DispatchGroup()
            lanes.enter()
            promotionQueue.async {
                let (_, applied) = ThreadPriority.withNice(nice) {
                    for index in promotions {
                        results.set(index, migrator.execute(actions[index], pacer: actions[index].usesRoomMade ? pacer : nil))
                    }
                }
                results.noteNice(applied)
                lanes.leave()
            }
            lanes.enter()
            demotionQueue.async {
                let (_, applied) = ThreadPriority.withNice(nice) {
                    for index in demotions {
                        let makesRoom = actions[index].makesRoom
                        results.set(index, migrator.execute(actions[index], pacer: makesRoom ? pacer : nil))
                        // The promotion waiting for room stops waiting once the last room-maker is done.
                        if makesRoom, index == roomMaking.last { pacer?.finish() }
                    }
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
