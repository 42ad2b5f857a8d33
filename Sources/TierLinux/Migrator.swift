#if canImport(Glibc)
import Glibc
#endif
import CNuma
import TierCore

/// An errno from a page-moving system call.
public struct SyscallError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
    /// The errno's symbolic name for the errors move_pages(2) reports per page, for logs and
    /// the journal; "errno N" for others.
    public var name: String {
        switch code {
        case EACCES: "EACCES"
        case EBUSY: "EBUSY"
        case EFAULT: "EFAULT"
        case ENOENT: "ENOENT"
        case ENOMEM: "ENOMEM"
        case EINVAL: "EINVAL"
        case EIO: "EIO"
        case EAGAIN: "EAGAIN"
        case EPERM: "EPERM"
        case EHOSTUNREACH: "EHOSTUNREACH"
        default: "errno \(code)"
        }
    }
}

/// Pages a move of part of a task left where they were, by the errno move_pages(2) gave each:
/// EACCES (shared with another process), EBUSY (busy or pinned), EFAULT (not mapped) ... .
/// Filled by one task's move on one thread.
final class StayedPages {
    var byError: [Int32: Int] = [:]
}

/// Whether a whole-task move takes the pages the task shares with other processes along.
///
/// migrate_pages(2) moves shared pages only when the caller has CAP_SYS_NICE in effect
/// (MPOL_MF_MOVE_ALL); without it, it moves only the pages the task maps alone.
public enum SharedPages: Sendable, Equatable {
    /// Move them too: right for promotion, where bringing a shared page to DRAM harms no one.
    case include
    /// Leave them where they are: a shared page may belong to a protected workload as well.
    case leave
}

/// The two kernel calls that move pages. Production uses libnuma; the lab guest exercises
/// them for real, and unit tests on the host record them.
public protocol PageMoveSyscalls: Sendable {
    /// migrate_pages(2): every page of `pid` on `from` to `to`, including or leaving the pages
    /// it shares with other processes. Returns the pages that failed to move.
    func migratePages(pid: Int32, from: NodeSet, to: NodeSet, sharedPages: SharedPages) -> Result<Int, SyscallError>
    /// move_pages(2): with `node` nil, only where each page is; otherwise move each page there,
    /// with the pages `pid` shares with other processes (MPOL_MF_MOVE_ALL) or without them.
    /// Returns one status per address: a node id, or a negative errno (EACCES for a shared page left).
    func movePages(pid: Int32, addresses: [UInt64], to node: Int?, sharedPages: SharedPages) -> Result<[Int32], SyscallError>
}

extension PageMoveSyscalls {
    /// A query (`node` nil), or a move that leaves shared pages where they are.
    public func movePages(pid: Int32, addresses: [UInt64], to node: Int?) -> Result<[Int32], SyscallError> {
        movePages(pid: pid, addresses: addresses, to: node, sharedPages: .leave)
    }
}

/// `PageMoveSyscalls` through libnuma (`numa_migrate_pages`, `numa_move_pages`).
public struct LibnumaSyscalls: PageMoveSyscalls {
    /// libnuma must be initialised (numa_available) before its node masks are used.
    public static let isAvailable: Bool = numa_available() >= 0

    public init() {}

    /// With `.leave`, CAP_SYS_NICE is lowered in this thread's effective set for the one call
    /// and raised again after it: the kernel then moves only pages the task maps alone, in the
    /// same page-table walk migratepages(8) uses, and refuses targets outside the task's cpuset.
    public func migratePages(pid: Int32, from: NodeSet, to: NodeSet, sharedPages: SharedPages) -> Result<Int, SyscallError> {
        guard Self.isAvailable else { return .failure(SyscallError(ENOSYS)) }
        var wasRaised: Int32 = 0
        if sharedPages == .leave {
            guard tierd_set_thread_capability(CAP_SYS_NICE, 0, &wasRaised) == 0 else { return .failure(SyscallError(errno)) }
        }
        defer {
            var ignored: Int32 = 0
            if wasRaised != 0 { _ = tierd_set_thread_capability(CAP_SYS_NICE, 1, &ignored) }
        }
        let fromMask = mask(from), toMask = mask(to)
        defer { numa_bitmask_free(fromMask); numa_bitmask_free(toMask) }
        let result = numa_migrate_pages(pid, fromMask, toMask)
        return result < 0 ? .failure(SyscallError(errno)) : .success(Int(result))
    }

    public func movePages(pid: Int32, addresses: [UInt64], to node: Int?, sharedPages: SharedPages) -> Result<[Int32], SyscallError> {
        guard Self.isAvailable else { return .failure(SyscallError(ENOSYS)) }
        var pages: [UnsafeMutableRawPointer?] = addresses.map { UnsafeMutableRawPointer(bitPattern: UInt($0)) }
        var status = [Int32](repeating: 0, count: addresses.count)
        let result: Int32
        if let node {
            var nodes = [Int32](repeating: Int32(node), count: addresses.count)
            let flags = sharedPages == .include ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE
            result = numa_move_pages(pid, UInt(addresses.count), &pages, &nodes, &status, flags)
        } else {
            result = numa_move_pages(pid, UInt(addresses.count), &pages, nil, &status, 0)
        }
        return result < 0 ? .failure(SyscallError(errno)) : .success(status)
    }

    private func mask(_ set: NodeSet) -> UnsafeMutablePointer<bitmask> {
        let mask = numa_allocate_nodemask()!
        for id in set { numa_bitmask_setbit(mask, UInt32(id)) }
        return mask
    }
}

/// One task as its move first saw it: the pid and the start time the kernel gave the task.
///
/// The kernel moves pages by pid alone, and a pid freed by a task that exits may be given to the
/// next task forked, in any group. Checking the start time before every call of a move that runs
/// for seconds narrows a wrong move to the instant between that check and the call.
public struct TaskIdentity: Hashable, Sendable {
    public var pid: Int32
    public var startTime: UInt64
    public init(pid: Int32, startTime: UInt64) { self.pid = pid; self.startTime = startTime }
}

/// What happened to one task of an action.
public enum TaskResult: Sendable, Equatable, CustomStringConvertible {
    case moved(bytes: UInt64)
    /// Dry run: what would have moved.
    case wouldMove(bytes: UInt64)
    /// Some pages stayed: migrate_pages reported them, or move_pages statuses said so.
    case partial(movedBytes: UInt64, notMovedPages: Int)
    /// The target nodes ran out of room part-way: the move stopped there.
    case targetsFull(movedBytes: UInt64)
    case nothingToMove
    /// ESRCH or its /proc entry vanished: the task exited before or during the move.
    case exited
    /// The pid now belongs to another cgroup (it moved, or the pid was reused).
    case leftGroup(now: CgroupPath?)
    /// The group's cpuset, or tierd's own, no longer allows the target part-way: the move stopped there.
    case cpusetChanged(now: NodeSet, movedBytes: UInt64)
    case mempolicy(Mempolicy)
    case isTierd
    case failed(String)

    /// A short stable name, used as a metrics label.
    public var code: String {
        switch self {
        case .moved: "moved"
        case .wouldMove: "would_move"
        case .partial: "partial"
        case .targetsFull: "targets_full"
        case .nothingToMove: "nothing_to_move"
        case .exited: "exited"
        case .leftGroup: "left_group"
        case .cpusetChanged: "cpuset_changed"
        case .mempolicy: "mempolicy"
        case .isTierd: "is_tierd"
        case .failed: "failed"
        }
    }

    public var movedBytes: UInt64 {
        switch self {
        case .moved(let b), .partial(let b, _), .targetsFull(let b), .cpusetChanged(_, let b): b
        default: 0
        }
    }

    public var description: String {
        switch self {
        case .moved(let b): "moved \(formatBytes(b))"
        case .wouldMove(let b): "would move \(formatBytes(b)) (dry run)"
        case .partial(let b, let n): "moved \(formatBytes(b)), \(n) pages stayed"
        case .targetsFull(let b): "moved \(formatBytes(b)), then the target nodes had no room left"
        case .nothingToMove: "nothing on the source nodes"
        case .exited: "exited before or during the move"
        case .leftGroup(let now): "no longer in the group (now \(now.map { "\($0)" } ?? "outside the cgroup tree tierd sees")): skipped"
        case .cpusetChanged(let now, let b): "the nodes its cpuset and tierd's allow became \(now) part-way: stopped after moving \(formatBytes(b))"
        case .mempolicy(let policy): "its mempolicy \(policy) excludes the targets: left alone (mempolicy: respect)"
        case .isTierd: "tierd's own process: skipped"
        case .failed(let why): "failed: \(why)"
        }
    }
}

/// The outcome of one planned action, task by task.
public struct ActionOutcome: Sendable, Equatable {
    public var action: MigrationAction
    public var tasks: [(pid: Int32, result: TaskResult)]
    /// Set when the action was dropped as a whole (its cgroup vanished, its cpuset changed).
    public var dropped: String?
    /// Wall time the action took, system calls included.
    public var duration: Duration = .zero
    /// Of which inside migrate_pages(2)/move_pages(2): the rest is tierd's own checks.
    public var syscallDuration: Duration = .zero
    /// CPU time the moving thread used meanwhile, in the kernel's copying mostly: short of
    /// `duration` when something else had the CPU.
    public var cpuSeconds: Double = 0
    /// Times the scheduler put another task on the moving thread's CPU during the action.
    public var involuntarySwitches = 0
    /// Tasks whose pages were moved from the CPU they last ran on (`onTaskCPU`).
    public var movedOnTaskCPU = 0
    /// Tasks moved whole, by one migrate_pages(2) call each; the others went by move_pages(2) batches.
    public var wholeMoves = 0
    /// A demotion that yields to the next tick stopped short of its bytes because that tick was due.
    public var stoppedForNextTick = false
    /// Pages move_pages(2) left where they were, by errno: where a promotion's time went when it
    /// keeps meeting pages it cannot move. (migrate_pages(2) reports a count only.)
    public var stayedByError: [Int32: Int] = [:]
    /// A `cold` demotion: bytes the kernel's reclaim demoted from the group (its `pgdemote_*`).
    public var reclaimedBytes: UInt64 = 0
    /// A `cold` demotion: bytes the requests took from the group and did not demote while some of
    /// the group went to swap (or swap could not be seen). Must stay zero; any makes the workload
    /// demote by `task`.
    public var lostBytes: UInt64 = 0
    /// A `cold` demotion: the group's page cache on the slow tier the requests dropped (the
    /// kernel's reclaim of a node with nowhere to demote to), with none of the group swapped.
    public var slowTierDroppedBytes: UInt64 = 0
    /// A `cold` demotion: bytes the kernel's own reclaim (kswapd's; an allocating task's where the
    /// kernel counts `memory.reclaim` apart) took
    /// from the group and did not demote while the requests ran; reported, not held against them.
    public var kernelLostBytes: UInt64 = 0
    /// A `cold` demotion a task's mempolicy refused before any request (the kernel's reclaim would
    /// demote that task's pages whatever its policy): why, for the group's fallback to `task`.
    public var coldRefused: String?
    /// A `cold` demotion in a dry run: the bytes it would have asked for.
    public var wouldReclaimBytes: UInt64 = 0

    public var movedBytes: UInt64 { tasks.reduce(0) { $0 + $1.result.movedBytes } + reclaimedBytes }

    public init(action: MigrationAction, tasks: [(pid: Int32, result: TaskResult)], dropped: String? = nil) {
        self.action = action; self.tasks = tasks; self.dropped = dropped
    }

    public static func == (a: ActionOutcome, b: ActionOutcome) -> Bool {
        a.action == b.action && a.dropped == b.dropped && a.stoppedForNextTick == b.stoppedForNextTick && a.tasks.count == b.tasks.count
            && a.reclaimedBytes == b.reclaimedBytes && a.lostBytes == b.lostBytes && a.kernelLostBytes == b.kernelLostBytes
            && a.slowTierDroppedBytes == b.slowTierDroppedBytes
            && a.coldRefused == b.coldRefused
            && zip(a.tasks, b.tasks).allSatisfy { $0.pid == $1.pid && $0.result == $1.result }
    }
}

/// Carries out planned actions, one task at a time.
public protocol PageMigrator: Sendable {
    /// With a pacer, a demotion signals each batch it moves, and a promotion into the room made
    /// moves a batch whenever its targets have room, waiting for the next signal otherwise. With
    /// `nextTickDue`, an action that `yieldsToNextTick` moves in batches and stops between two
    /// once that time has come.
    func execute(_ action: MigrationAction, pacer: RoomPacer?, nextTickDue: ContinuousClock.Instant?) -> ActionOutcome
}

extension PageMigrator {
    public func execute(_ action: MigrationAction, pacer: RoomPacer?) -> ActionOutcome { execute(action, pacer: pacer, nextTickDue: nil) }
    public func execute(_ action: MigrationAction) -> ActionOutcome { execute(action, pacer: nil, nextTickDue: nil) }
}

/// The migrator: for each task, right before its move, checks that it is still in the group and
/// that its mempolicy allows the move. A task whose pages on the source nodes fit the byte budget
/// moves whole with migrate_pages(2) — a promotion with its shared pages, a demotion without them
/// (never a page it shares with another workload); a partial move uses move_pages(2) in chunks,
/// likewise with shared pages (MPOL_MF_MOVE_ALL) for a promotion and without them for a
/// demotion. Moved bytes are what left the source
/// nodes, read back from numa_maps. Targets are re-checked against the group's cpuset at
/// execution time, and a promotion shrinks to the room its targets still have.
public struct TaskMigrator: PageMigrator {
    public let collector: SnapshotCollector
    public let syscalls: any PageMoveSyscalls
    public let dryRun: Bool
    public let selfPid: Int32
    /// Pages per move_pages(2) call: bounds the arrays and lets a large move stop at its budget.
    public var chunkPages = 8192
    /// Pages per call in a paced move: the promotion beside a demotion follows it batch by batch.
    public var pacedChunkPages = 2048
    /// Where each task's last partial move stopped: the next resumes there.
    public let cursors = MoveCursors()
    /// What each task wrote since the last hot promotion looked (`PageSelection.recentlyWritten`).
    public let written: WrittenPages
    /// Counts the bytes moves bring into and take out of DRAM as they go (for the free-DRAM watch).
    public var ownMoves: OwnMoves?
    /// The kernel's base page: the step between the addresses handed to move_pages(2), and what
    /// each page it reports moved or left behind counts for (16 or 64 KiB on some arm64 kernels).
    public var pageSize = TaskMigrator.systemPageSize
    public static let systemPageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 4096))

    public init(collector: SnapshotCollector, syscalls: any PageMoveSyscalls, dryRun: Bool, selfPid: Int32 = getpid()) {
        self.collector = collector; self.syscalls = syscalls; self.dryRun = dryRun; self.selfPid = selfPid
        written = WrittenPages(files: collector.files)
    }

    var files: any HostFiles { collector.files }

    public func execute(_ action: MigrationAction, pacer: RoomPacer?, nextTickDue: ContinuousClock.Instant?) -> ActionOutcome {
        let clock = ContinuousClock()
        let started = clock.now, cpuBefore = ProcessCPU.thisThread()
        let deadline = action.yieldsToNextTick ? nextTickDue.map { Deadline(at: $0, pacer: pacer) } : nil
        var outcome = perform(action, pacer: pacer, deadline: deadline)
        outcome.duration = clock.now - started
        let cpuAfter = ProcessCPU.thisThread()
        outcome.cpuSeconds = cpuAfter.seconds - cpuBefore.seconds
        outcome.involuntarySwitches = cpuAfter.involuntarySwitches - cpuBefore.involuntarySwitches
        outcome.stoppedForNextTick = deadline?.passed == true && outcome.movedBytes < action.bytes && outcome.dropped == nil
        return outcome
    }

    func perform(_ action: MigrationAction, pacer: RoomPacer?, deadline: Deadline? = nil) -> ActionOutcome {
        if case .kernelReclaim(let argument) = action.mechanism {
            return reclaimColdest(action, argument: argument, pacer: pacer, deadline: deadline)
        }
        var outcome = ActionOutcome(action: action, tasks: [])
        var targets: [Int]
        switch allowedTargets(action) {
        case .success(let allowed): targets = allowed
        case .failure(let why): outcome.dropped = why.description; return outcome
        }
        var remaining = action.bytes
        // A paced promotion's room is still being made: it looks for room batch by batch.
        if action.keepFreeOnTargets > 0, pacer == nil, let free = collector.freeBytes(on: targets) {
            switch MoveRules.promotionRoom(planned: remaining, free: free, keepFree: action.keepFreeOnTargets) {
            case .budget(let bytes): remaining = bytes
            case let taken: outcome.dropped = taken.description; return outcome
            }
        }
        // Every task is pinned before the first one moves: a pid that names another task by its
        // turn (the first exited during a long move, its pid reused) is not the task planned on.
        let pinned = dryRun ? [:] : pin(action.pids)
        for pid in action.pids {
            // Past the next tick's time, a yielding action stops once it moved something.
            guard remaining > 0, !MoveRules.yieldsNow(action.step, nextTickDue: deadline?.passed == true, movedBytes: outcome.movedBytes) else { break }
            // A cpuset may change between two tasks: each goes only where it allows now.
            if pid != action.pids.first {
                switch allowedTargets(action) {
                case .success(let allowed): targets = allowed
                case .failure(let why): outcome.dropped = why.description
                }
                if outcome.dropped != nil { break }
            }
            let result = moveTask(pid, pinned: pinned[pid], action, targets: NodeSet(targets), first: targets[0], budget: remaining,
                                  pacer: pacer, deadline: deadline, outcome: &outcome)
            remaining -= min(remaining, result.movedBytes)
            if case .wouldMove(let bytes) = result { remaining -= min(remaining, bytes) }
            outcome.tasks.append((pid, result))
            if case .targetsFull = result { break }
        }
        return outcome
    }

    /// Why an action or a task's move has no target left.
    enum NoTarget: Error, CustomStringConvertible {
        case vanished(CgroupPath)
        case outsideNodes(CgroupPath, allowed: NodeSet)
        var description: String {
            switch self {
            case .vanished(let group): "cgroup \(group) vanished before the move"
            case .outsideNodes(let group, let allowed):
                "cpuset.mems.effective of \(group) and tierd's own cpuset now allow \(allowed): no target left"
            }
        }
    }

    /// The nodes a move into the group may target now: its cpuset.mems.effective and tierd's own.
    /// With CAP_SYS_NICE in effect (a promotion) migrate_pages(2) does not check a task's cpuset
    /// itself, so this is the check.
    func allowedNodes(_ group: CgroupPath) throws(NoTarget) -> NodeSet {
        let cpuset: NodeSet
        do { cpuset = try currentCpuset(group) } catch { throw .vanished(group) }
        return collector.tierdAllowedNodes().map(cpuset.intersection) ?? cpuset
    }

    /// The action's targets allowed now, in its order of preference.
    func allowedTargets(_ action: MigrationAction) -> Result<[Int], NoTarget> {
        let allowed: NodeSet
        do { allowed = try allowedNodes(action.group) } catch { return .failure(error) }
        let targets = action.to.filter { allowed.contains($0) }
        return targets.isEmpty ? .failure(.outsideNodes(action.group, allowed: allowed)) : .success(targets)
    }

    func currentCpuset(_ group: CgroupPath) throws(HostFileError) -> NodeSet {
        var path: CgroupPath? = group
        while let current = path {
            let dir = collector.directory(of: current)
            if current == group, !files.exists(dir + "/cgroup.procs") { throw .vanished(dir) }
            if let text = try? files.read(dir + "/cpuset.mems.effective"), let set = NodeSet.parseList(text) { return set }
            path = current.parent
        }
        return NodeSet((try? collector.topology(selection: .auto))?.nodes.map(\.id) ?? [])
    }

    func stillInGroup(_ pid: Int32, _ group: CgroupPath) -> TaskResult? {
        guard let text = try? files.read(KernelPaths.process(pid) + "/cgroup") else { return .exited }
        let now = KernelText.cgroupOfProcess(text).flatMap(collector.namespace.mountPath(of:))
        return now == group ? nil : .leftGroup(now: now)
    }

    /// Each pid's identity now; pids with none (exited) are left out.
    func pin(_ pids: [Int32]) -> [Int32: TaskIdentity] {
        var pinned: [Int32: TaskIdentity] = [:]
        for pid in pids { if let task = identity(of: pid) { pinned[pid] = task } }
        return pinned
    }

    /// The task the pid names now, by its start time; nil once no task has that pid.
    func identity(of pid: Int32) -> TaskIdentity? {
        guard let text = try? files.read(KernelPaths.process(pid) + "/stat"), let started = KernelText.startTime(stat: text) else { return nil }
        return TaskIdentity(pid: pid, startTime: started)
    }

    /// Why the next call of a task's move must not be made: its pid names another task now (or
    /// none), the task left the group, or `target` is no longer a node the move may use.
    enum Interruption {
        case taskGone(TaskResult)
        case outsideNodes(NodeSet)
    }

    /// Checked before every call that moves pages: a move may run for seconds of calls.
    func interruption(_ task: TaskIdentity, _ action: MigrationAction, target: Int) -> Interruption? {
        guard identity(of: task.pid) == task else { return .taskGone(.exited) }
        if let gone = stillInGroup(task.pid, action.group) { return .taskGone(gone) }
        let allowed: NodeSet
        do { allowed = try allowedNodes(action.group) } catch { return .taskGone(.exited) }
        return allowed.contains(target) ? nil : .outsideNodes(allowed)
    }

    /// What a task's move that was interrupted after moving `moved` bytes comes to.
    func stopped(by interruption: Interruption, moved: UInt64, stayed: Int) -> TaskResult {
        switch interruption {
        case .taskGone(let why): moved == 0 ? why : .partial(movedBytes: moved, notMovedPages: stayed)
        case .outsideNodes(let allowed): .cpusetChanged(now: allowed, movedBytes: moved)
        }
    }

    /// `pinned`: the task's identity when the action began (nil: it had exited, or a dry run).
    func moveTask(_ pid: Int32, pinned: TaskIdentity?, _ action: MigrationAction, targets: NodeSet, first: Int, budget: UInt64,
                  pacer: RoomPacer?, deadline: Deadline?, outcome: inout ActionOutcome) -> TaskResult {
        if pid == selfPid { return .isTierd }
        if let gone = stillInGroup(pid, action.group) { return gone }
        let entries: [NumaMapsEntry]
        do {
            entries = KernelText.numaMaps(try files.read(KernelPaths.process(pid) + "/numa_maps"))
        } catch {
            return .exited
        }
        if let policy = MempolicyGate.blockingPolicy(entries, targets: targets, mode: action.mempolicy) {
            return .mempolicy(policy)
        }
        let sourceBytes = entries.reduce(0) { $0 + $1.bytes(on: action.from) }
        guard sourceBytes > 0 else { return .nothingToMove }
        // A dry run does not clear a task's soft-dirty bits: it cannot tell what a hot promotion would find.
        if dryRun { return action.pages == .recentlyWritten ? .nothingToMove : .wouldMove(bytes: min(sourceBytes, budget)) }
        // Still the task pinned, then the group checked again: that task is the one moved, to the last call.
        guard let task = pinned, identity(of: pid) == task else { return .exited }
        if let gone = stillInGroup(pid, action.group) { return gone }
        let clock = ContinuousClock()
        let started = clock.now
        let stayed = StayedPages()
        defer {
            outcome.syscallDuration += clock.now - started
            outcome.stayedByError.merge(stayed.byError, uniquingKeysWith: +)
        }
        guard action.onTaskCPU, let text = try? files.read(KernelPaths.process(pid) + "/stat"),
              let cpu = KernelText.lastCPU(stat: text) else {
            return move(task, action, targets: targets, first: first, budget: budget, sourceBytes: sourceBytes,
                        pacer: pacer, deadline: deadline, mappings: entries, stayed: stayed, outcome: &outcome)
        }
        let (result, applied) = ThreadPlacement.onCPU(cpu) {
            move(task, action, targets: targets, first: first, budget: budget, sourceBytes: sourceBytes,
                 pacer: pacer, deadline: deadline, mappings: entries, stayed: stayed, outcome: &outcome)
        }
        if applied { outcome.movedOnTaskCPU += 1 }
        return result
    }

    /// The move itself: whole with migrate_pages(2) when the budget allows, else in chunks; a
    /// paced move, or one that may have to stop for the next tick, in batches.
    ///
    /// Tried and backed out: a paced promotion that could take all the task's slow pages waiting
    /// for room for all of them, then moving whole. In three of seven lab runs that one
    /// migrate_pages(2) call took 6.6 to 19 s, reporting some 2,700 pages it could not move,
    /// where batches of move_pages(2) never took more than 4.3 s.
    func move(_ task: TaskIdentity, _ action: MigrationAction, targets: NodeSet, first: Int, budget: UInt64, sourceBytes: UInt64,
              pacer: RoomPacer?, deadline: Deadline?, mappings: [NumaMapsEntry]? = nil, stayed: StayedPages? = nil,
              outcome: inout ActionOutcome) -> TaskResult {
        if action.pages == .recentlyWritten {
            return moveWritten(task, action, targets: targets, budget: budget, mappings: mappings, stayed: stayed)
        }
        let pid = task.pid
        // A page shared with another process (a library, shared memory) may be a protected
        // workload's too: demotion leaves it; promotion brings it along, which harms no one.
        let shared: SharedPages = action.direction == .promote ? .include : .leave
        if pacer != nil || deadline != nil
            || !MoveRules.wholeMoveFits(mappings, sourceBytes: sourceBytes, from: action.from, leavesSharedPages: shared == .leave, budget: budget) {
            let result = movePart(task, action, targets: targets.sorted, budget: budget, pacer: pacer, deadline: deadline,
                                  mappings: mappings, stayed: stayed)
            return withBytesLeft(result, pid, action.from, before: sourceBytes)
        }
        if let stop = interruption(task, action, target: first) { return stopped(by: stop, moved: 0, stayed: 0) }
        let started = ContinuousClock.now
        switch syscalls.migratePages(pid: pid, from: action.from, to: NodeSet([first]), sharedPages: shared) {
        case .success(let notMoved):
            outcome.wholeMoves += 1
            let moved = bytesLeft(pid, action.from, before: sourceBytes, notMovedPages: notMoved)
            ownMoves?.add(moved, action.direction, since: started)
            // The nearest target may have run out of room: the next ones get the rest page by page.
            if notMoved > 0, targets.count > 1, budget > moved {
                let rest = movePart(task, action, targets: targets.sorted, budget: budget - moved, stayed: stayed)
                return combine(moved: moved, notMovedPages: notMoved, with: rest)
            }
            return notMoved == 0 ? .moved(bytes: moved) : .partial(movedBytes: moved, notMovedPages: notMoved)
        case .failure(let error) where error.code == ESRCH:
            return .exited
        case .failure where action.direction == .demote:
            // Lowering CAP_SYS_NICE can fail, or the kernel refuse a whole move (EPERM for a target
            // outside the task's own cpuset): page by page gives the same guarantee.
            return movePart(task, action, targets: targets.sorted, budget: budget, stayed: stayed)
        case .failure(let error):
            return failure(error)
        }
    }

    /// A hot promotion: the task's pages on the source nodes that it wrote since tierd last
    /// cleared its soft-dirty bits move, then the bits are cleared for the next look. A task seen
    /// for the first time is only cleared: every page it ever wrote is set until then.
    /// A task whose bits the kernel refused to clear is reported once, then passed over.
    func moveWritten(_ task: TaskIdentity, _ action: MigrationAction, targets: NodeSet, budget: UInt64,
                     mappings: [NumaMapsEntry]?, stayed: StayedPages?) -> TaskResult {
        if written.wasRefused(task) { return .nothingToMove }
        let result = written.isArmed(task)
            ? movePart(task, action, targets: targets.sorted, budget: budget, mappings: mappings, stayed: stayed) : .nothingToMove
        switch written.clear(task) {
        case .cleared: return result
        case .exited: return result.movedBytes > 0 ? result : .exited
        case .refused(let error):
            return .failed("cannot clear its soft-dirty bits (\(error)): a task of another user needs CAP_DAC_OVERRIDE; its written pages are not looked for again")
        }
    }

    /// What left the source nodes in a whole move, read back from the task's numa_maps; if the task
    /// is gone by then, what the kernel did not report as failed.
    func bytesLeft(_ pid: Int32, _ source: NodeSet, before: UInt64, notMovedPages: Int) -> UInt64 {
        guard let text = try? files.read(KernelPaths.process(pid) + "/numa_maps") else {
            return before - min(before, UInt64(notMovedPages) * pageSize)
        }
        let after = KernelText.numaMaps(text).reduce(0) { $0 + $1.bytes(on: source) }
        return before - min(before, after)
    }

    /// A move of part of a task counts the pages move_pages(2) reported on the target, which
    /// misses the rest of a huge page moved through one of its subpages (in the lab, 450 MiB
    /// reported of 512 moved). What left the source nodes, read back from numa_maps, is the better
    /// count whenever it is larger; it can only be smaller if the task allocated there meanwhile.
    func withBytesLeft(_ result: TaskResult, _ pid: Int32, _ source: NodeSet, before: UInt64) -> TaskResult {
        guard result.movedBytes > 0 else { return result }
        let left = bytesLeft(pid, source, before: before, notMovedPages: 0)
        guard left > result.movedBytes else { return result }
        switch result {
        case .moved: return .moved(bytes: left)
        case .partial(_, let stayed): return .partial(movedBytes: left, notMovedPages: stayed)
        case .targetsFull: return .targetsFull(movedBytes: left)
        default: return result
        }
    }

    func combine(moved: UInt64, notMovedPages: Int, with rest: TaskResult) -> TaskResult {
        switch rest {
        case .moved(let bytes): .moved(bytes: moved + bytes)
        case .partial(let bytes, let stayed): .partial(movedBytes: moved + bytes, notMovedPages: stayed)
        case .targetsFull(let bytes): .targetsFull(movedBytes: moved + bytes)
        default: .partial(movedBytes: moved, notMovedPages: notMovedPages)
        }
    }

    func failure(_ error: SyscallError) -> TaskResult {
        switch error.code {
        case ESRCH: .exited
        // migrate_pages(2) fails whole with ENOMEM when the target nodes have no room.
        case ENOMEM: .targetsFull(movedBytes: 0)
        case EPERM: .failed("EPERM: no permission to move this task's pages (tierd needs CAP_SYS_NICE and ptrace access)")
        default: .failed("\(error) (errno \(error.code))")
        }
    }

    /// Free bytes on `targets` now, and how many of them lie above `keeping`.
    func room(on targets: [Int], keeping: UInt64) -> (free: UInt64, room: UInt64)? {
        collector.freeBytes(on: targets).map { ($0, $0 > keeping ? $0 - keeping : 0) }
    }

    /// Free bytes on `targets` above `keeping`, waiting for the pacer's demotion to free at least
    /// `atLeast` of them; zero once it is done and they are not there.
    func waitForRoom(targets: [Int], keeping: UInt64, atLeast: UInt64, pacer: RoomPacer) -> UInt64 {
        var seen = pacer.state.made
        while true {
            guard let (_, room) = room(on: targets, keeping: keeping) else { return 0 }
            if room >= max(atLeast, pageSize) { return room }
            let progress = pacer.waitForProgress(after: seen)
            if progress.finished && progress.made == seen { return 0 }
            seen = progress.made
        }
    }

    /// Moves up to `budget` bytes of the task's pages on the source nodes, mapping by mapping:
    /// one move_pages(2) query per chunk finds the pages on the source nodes, one more moves them.
    /// Paced, a demotion reports each batch it moved, and a promotion waits for room for each. With
    /// a deadline, the move stops between two batches once it has passed.
    /// `mappings`, the task's numa_maps read just before: mappings it shows no page of on the
    /// source nodes are not queried (a promotion of a few MiB of a 400 MiB job spent seconds
    /// querying pages already in DRAM).
    func movePart(_ task: TaskIdentity, _ action: MigrationAction, targets: [Int], budget: UInt64, pacer: RoomPacer? = nil,
                  deadline: Deadline? = nil, mappings: [NumaMapsEntry]? = nil, stayed stayedPages: StayedPages? = nil) -> TaskResult {
        let pid = task.pid
        // Where the next move of this task resumes: the first page this one did not look at, or
        // the start of a chunk whose pages found no room; nil after a whole pass.
        func resume(at address: UInt64?) { cursors.record(task: task, direction: action.direction, stoppedAt: address) }
        let ranges: [Range<UInt64>]
        do {
            var mapped = KernelText.mapRanges(try files.read(KernelPaths.process(pid) + "/maps"))
            if let mappings {
                let known = Set(mappings.map(\.start))
                let withSourcePages = Set(mappings.filter { $0.bytes(on: action.from) > 0 }.map(\.start))
                // A mapping numa_maps did not list (new since) is still looked at.
                mapped = mapped.filter { withSourcePages.contains($0.lowerBound) || !known.contains($0.lowerBound) }
            }
            ranges = MoveCursors.scanOrder(mapped, from: cursors.resumeAddress(task: task, direction: action.direction))
        } catch {
            resume(at: nil)
            return .exited
        }
        // As in a whole move: a promotion brings the pages the task shares along (without them,
        // every tick found a protected job's library pages on the slow node and failed on them
        // again), a demotion leaves them.
        let shared: SharedPages = action.direction == .promote ? .include : .leave
        var moved: UInt64 = 0, stayed = 0
        let orderedTargets = action.to.filter { targets.contains($0) }
        let sourceNodes = action.from
        let chunkPages = pacer == nil && deadline == nil ? self.chunkPages : pacedChunkPages
        let takesRoom = pacer != nil && action.direction == .promote
        var pages = [UInt64](), candidates = [UInt64]()
        pages.reserveCapacity(chunkPages)
        candidates.reserveCapacity(chunkPages)
        var stoppedAt: UInt64?
        for range in ranges {
            var address = range.lowerBound
            while address < range.upperBound && moved < budget {
                // At least one batch per task, so that every tick makes progress.
                if MoveRules.yieldsNow(action.step, nextTickDue: deadline?.passed == true, movedBytes: moved) { break }
                let chunkStart = address
                let count = min(UInt64(chunkPages), (range.upperBound - address) / pageSize)
                pages.removeAll(keepingCapacity: true)
                if action.pages == .recentlyWritten {
                    guard written.appendWritten(pid: pid, range: address..<address + count * pageSize, pageSize: pageSize, to: &pages) else {
                        resume(at: nil)
                        return moved == 0 ? .exited : .partial(movedBytes: moved, notMovedPages: stayed)
                    }
                    address += count * pageSize
                    if pages.isEmpty { continue }
                } else {
                    for index in 0..<count { pages.append(address + index * pageSize) }
                    address += count * pageSize
                }
                guard case .success(let location) = syscalls.movePages(pid: pid, addresses: pages, to: nil) else {
                    resume(at: nil)
                    return moved == 0 ? .exited : .partial(movedBytes: moved, notMovedPages: stayed)
                }
                let wanted = max(Int((budget - moved) / pageSize), 1)
                candidates.removeAll(keepingCapacity: true)
                for index in 0..<pages.count where candidates.count < wanted {
                    let node = location[index]
                    if node >= 0 && sourceNodes.contains(Int(node)) { candidates.append(pages[index]) }
                }
                // The budget ends inside this chunk: the pages after the last one taken are looked at again next time.
                if candidates.count == wanted, let last = candidates.last { address = last + pageSize }
                if takesRoom, let pacer, !candidates.isEmpty {
                    // Only as many pages as the targets have room for above the reserve; none yet:
                    // wait for the demotion beside this move to free more.
                    // A batch waits for room worth the query that found it (2 MiB, or all it wants):
                    // moving crumbs of room as they appear costs a 2,048-page query each.
                    let wanted = UInt64(candidates.count) * pageSize
                    let room = waitForRoom(targets: orderedTargets, keeping: action.keepFreeOnTargets,
                                           atLeast: min(wanted, 2 << 20), pacer: pacer)
                    let fits = Int(room / pageSize)
                    if fits == 0 { resume(at: chunkStart); return .targetsFull(movedBytes: moved) }
                    if fits < candidates.count {
                        candidates.removeLast(candidates.count - fits)
                        address = candidates.last! + pageSize
                    }
                }
                let movedBefore = moved, started = ContinuousClock.now
                for target in orderedTargets where !candidates.isEmpty {
                    if let stop = interruption(task, action, target: target) {
                        resume(at: chunkStart)
                        return stopped(by: stop, moved: moved, stayed: stayed)
                    }
                    switch syscalls.movePages(pid: pid, addresses: candidates, to: target, sharedPages: shared) {
                    case .success(let status):
                        var retry = [UInt64]()
                        for (index, code) in status.enumerated() {
                            if code == Int32(target) { moved += pageSize }
                            // The target had no room: the next target may.
                            else if code == -ENOMEM { retry.append(candidates[index]) }
                            else if code < 0 && code != -ENOENT {
                                stayed += 1
                                stayedPages?.byError[-code, default: 0] += 1
                            }
                        }
                        candidates = retry
                    case .failure(let error):
                        resume(at: chunkStart)
                        if moved > 0 { return .partial(movedBytes: moved, notMovedPages: stayed) }
                        return failure(error)
                    }
                }
                if !takesRoom { pacer?.roomMade(moved - movedBefore) }
                ownMoves?.add(moved - movedBefore, action.direction, since: started)
                // Every target refused these pages for want of room: later chunks would fare no better.
                if !candidates.isEmpty { resume(at: chunkStart); return .targetsFull(movedBytes: moved) }
            }
            if moved >= budget || MoveRules.yieldsNow(action.step, nextTickDue: deadline?.passed == true, movedBytes: moved) { stoppedAt = address; break }
        }
        resume(at: stoppedAt)
        if moved == 0 && stayed == 0 { return .nothingToMove }
        return stayed == 0 ? .moved(bytes: moved) : .partial(movedBytes: moved, notMovedPages: stayed)
    }
}

/// The time a move that yields to the next tick must stop by, checked between batches; not
/// while a promotion beside it still waits for the room it makes.
struct Deadline {
    let at: ContinuousClock.Instant
    let pacer: RoomPacer?
    var passed: Bool { ContinuousClock.now >= at && pacer?.promotionsWaiting != true }
}
