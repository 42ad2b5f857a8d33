import Foundation
import TierCore

#if canImport(Glibc)
import Glibc
#endif

/// The pages each task wrote since tierd last looked, from the kernel's soft-dirty bits: cleared
/// per task by writing 4 to `/proc/PID/clear_refs`, read per page from `/proc/PID/pagemap`.
/// What `controller.hot_pages: written` finds hot slow pages with. Debian's kernels have no idle
/// page tracking, and the soft-dirty bits need no privilege beyond the ptrace access tierd already
/// has (a page's frame number, which would need CAP_SYS_ADMIN, is not used).
///
/// A task's bits say something only after tierd cleared them once: until then every page the
/// task ever wrote is set. Keyed by the task's identity, so a reused pid starts unarmed.
public final class WrittenPages: @unchecked Sendable {
    let files: any HostFiles
    private let lock = NSLock()
    private var armed: Set<TaskIdentity> = []
    private var refused: Set<TaskIdentity> = []
    /// Beyond this many tasks the set is emptied: losing it costs each task one look that moves nothing.
    let capacity: Int

    public init(files: any HostFiles, capacity: Int = 4096) { self.files = files; self.capacity = capacity }

    /// Whether tierd cleared this task's bits before, so that set bits mean "written since".
    public func isArmed(_ task: TaskIdentity) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return armed.contains(task)
    }

    /// What clearing a task's bits came to.
    public enum Clearing: Equatable, Sendable {
        case cleared
        /// The task exited.
        case exited
        /// The kernel refused the write: a task of another user needs CAP_DAC_OVERRIDE
        /// (`clear_refs` is writable by its owner only). Said once per task, then the task is passed over.
        case refused(HostFileError)
    }

    /// Whether an earlier clear of this task was refused: its looks find nothing, and say nothing more.
    public func wasRefused(_ task: TaskIdentity) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return refused.contains(task)
    }

    /// Clears the task's soft-dirty bits.
    @discardableResult
    public func clear(_ task: TaskIdentity) -> Clearing {
        do { try files.write(KernelPaths.process(task.pid) + "/clear_refs", ClearRefs.softDirty) } catch {
            if case .vanished = error { return .exited }
            lock.lock(); defer { lock.unlock() }
            if refused.count >= capacity { refused.removeAll(keepingCapacity: true) }
            refused.insert(task)
            return .refused(error)
        }
        lock.lock(); defer { lock.unlock() }
        if !armed.contains(task) && armed.count >= capacity { armed.removeAll(keepingCapacity: true) }
        armed.insert(task)
        return .cleared
    }

    /// Appends to `pages` the address of each page of `range` the task wrote since its bits were
    /// cleared and that is in memory; false when its pagemap cannot be read (the task exited).
    /// Reads the words into one buffer and keeps only the addresses: an idle task's look makes no
    /// array the size of its range.
    public func appendWritten(pid: Int32, range: Range<UInt64>, pageSize: UInt64, to pages: inout [UInt64]) -> Bool {
        let count = Int((range.upperBound - range.lowerBound) / pageSize)
        guard count > 0 else { return true }
        let fd = open(files.resolve(KernelPaths.process(pid) + "/pagemap"), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let wanted = count * 8
        let offset = off_t((range.lowerBound / pageSize) * 8)
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: count) { words -> Bool in
            let raw = UnsafeMutableRawPointer(words.baseAddress!)
            var filled = 0
            while filled < wanted {
                let n = pread(fd, raw + filled, wanted - filled, offset + off_t(filled))
                if n < 0 { if errno == EINTR { continue }; return false }
                if n == 0 { break }
                filled += n
            }
            guard filled == wanted else { return false }
            for index in 0..<count where PagemapEntry.writtenAndPresent(UInt64(littleEndian: words[index])) {
                pages.append(range.lowerBound + UInt64(index) * pageSize)
            }
            return true
        }
    }

    /// Whether this kernel keeps soft-dirty bits (CONFIG_MEM_SOFT_DIRTY): tierd clears its own,
    /// writes one page of its own and reads the bit back. Only on the host's own files.
    public static func kernelTracks(files: any HostFiles) -> Bool {
        guard files.root == "/" else { return false }
        let pageSize = Int(TaskMigrator.systemPageSize)
        guard let page = mmap(nil, pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), page != MAP_FAILED else { return false }
        defer { munmap(page, pageSize) }
        page.storeBytes(of: 1, as: UInt8.self)
        let address = UInt64(UInt(bitPattern: page))
        let me = TaskIdentity(pid: getpid(), startTime: 0)
        let probe = WrittenPages(files: files)
        func written() -> Bool? {
            var found: [UInt64] = []
            return probe.appendWritten(pid: me.pid, range: address..<address + UInt64(pageSize), pageSize: UInt64(pageSize), to: &found)
                ? !found.isEmpty : nil
        }
        guard probe.clear(me) == .cleared, written() == false else { return false }
        page.storeBytes(of: 2, as: UInt8.self)
        return written() == true
    }
}
