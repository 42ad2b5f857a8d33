/// What a move decides at the moment it runs, from what is read then (free memory on the targets,
/// the task's mappings, the time): the migrator reads, these rules decide. Pure, so that unit
/// tests reach them without a syscall.
public enum MoveRules {
    /// What a promotion may move once free memory on its targets is read again right before it.
    public enum PromotionRoom: Sendable, Equatable, CustomStringConvertible {
        /// Up to this many bytes: what was planned, shrunk to the room above what must stay free.
        case budget(UInt64)
        /// None: the room planned was taken meanwhile (the job being promoted may still be
        /// allocating into it), and a move into a full node costs the kernel's reclaim attempts
        /// before it fails.
        case taken(free: UInt64, keepFree: UInt64)

        public var description: String {
            switch self {
            case .budget(let bytes): "up to \(formatBytes(bytes))"
            case .taken(let free, let keep):
                "the target nodes have \(formatBytes(free)) free, within the \(formatBytes(keep)) to keep free: the room planned was taken"
            }
        }
    }

    /// `planned` bytes of a promotion into targets that have `free` bytes now, of which `keepFree`
    /// must stay free.
    public static func promotionRoom(planned: UInt64, free: UInt64, keepFree: UInt64) -> PromotionRoom {
        let room = free > keepFree ? free - keepFree : 0
        return room == 0 ? .taken(free: free, keepFree: keepFree) : .budget(min(planned, room))
    }

    /// Whether moving a task whole (migrate_pages(2)) keeps within `budget`. A demotion leaves
    /// shared pages (`leavesSharedPages`), so the mappings other processes map too (`mapmax` in
    /// numa_maps) need not fit: the libraries every program maps (10 MiB for a small Swift
    /// program) put a 512 MiB task just over a budget of its own group's bytes and sent it down
    /// the page-by-page path, 14 % slower in the lab. Their unshared pages still move, so they
    /// are let off only while they come to at most a sixteenth of the budget: a forked worker's
    /// heap, shared with its parent page by page until written, can be most of the task.
    /// `mappings` nil: not read, so nothing is let off.
    public static func wholeMoveFits(_ mappings: [NumaMapsEntry]?, sourceBytes: UInt64, from source: NodeSet,
                                     leavesSharedPages: Bool, budget: UInt64) -> Bool {
        if sourceBytes <= budget { return true }
        guard leavesSharedPages, let mappings else { return false }
        let inSharedMappings = mappings.reduce(0) { $0 + ($1.isUnshared ? 0 : $1.bytes(on: source)) }
        return sourceBytes - min(sourceBytes, inSharedMappings) <= budget && inSharedMappings <= budget / 16
    }

    /// Whether an action stops before its next task or batch: only a step that yields to the next
    /// tick does (`ScheduleStep.watermarkDemotion`), once the tick is due and it has moved
    /// something (a yielding action that stopped at once would never move at all on a busy host).
    public static func yieldsNow(_ step: ScheduleStep, nextTickDue: Bool, movedBytes: UInt64) -> Bool {
        step == .watermarkDemotion && nextTickDue && movedBytes > 0
    }
}
