#if canImport(Glibc)
import Glibc
#endif
import CNuma
import Foundation
import Synchronization
import TierCore

/// An event from a PSI trigger on a cgroup's `memory.pressure`.
public enum PressureEvent: Sendable, Equatable {
    /// The group stalled past the trigger's threshold within its window.
    case stalled(CgroupPath)
    /// POLLERR: the group was removed. Its trigger is dropped.
    case vanished(CgroupPath)
}

/// Arms a PSI trigger ("some <stall µs> <window µs>") on each watched group's `memory.pressure`
/// and polls them all on one thread, so the control loop wakes on stalls instead of waiting for
/// its timer. Events arrive on `events`.
public final class PressureTriggerWatcher: Sendable {
    public let events: AsyncStream<PressureEvent>
    private let continuation: AsyncStream<PressureEvent>.Continuation
    private let files: RootedHostFiles
    /// Each fd has one owner at a time: this state, under its lock, or a `watch` call that took it
    /// out. Only the owner closes it, so no fd is closed twice (a second close could hit whatever
    /// file reused the number meanwhile).
    private struct Armed {
        var fds: [CgroupPath: Int32] = [:]
        /// Bumped whenever `fds` is replaced: a poll that began on older fds has nothing to close.
        var generation = 0
        /// The trigger every fd in `fds` was armed with (one `watch` arms them all alike).
        var fdsTrigger: String?
        var trigger: String
        var stopped = false
    }
    private let armed: Mutex<Armed>
    private let wakeRead: Int32, wakeWrite: Int32

    /// The trigger text the kernel takes: "some <stall µs> <window µs>".
    public static func trigger(stall: Duration, window: Duration) -> String {
        "some \(Int64(stall.seconds * 1e6)) \(Int64(window.seconds * 1e6))"
    }

    public init(files: RootedHostFiles, stall: Duration, window: Duration) {
        self.files = files
        armed = Mutex(Armed(trigger: Self.trigger(stall: stall, window: window)))
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(256))
        var pipeFds: [Int32] = [0, 0]
        if pipe(&pipeFds) == 0 {
            for fd in pipeFds { _ = fcntl(fd, F_SETFL, O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } else {
            pipeFds = [-1, -1]
        }
        wakeRead = pipeFds[0]; wakeWrite = pipeFds[1]
        let thread = Thread { [self] in pollLoop() }
        thread.name = "tierd-psi"
        thread.start()
    }

    /// The trigger armed from now on; true if it differs from the one before. The groups armed
    /// with the old one are re-armed at the next ``watch(_:)``.
    @discardableResult
    public func configure(stall: Duration, window: Duration) -> Bool {
        let trigger = Self.trigger(stall: stall, window: window)
        return armed.withLock { state in
            defer { state.trigger = trigger }
            return state.trigger != trigger
        }
    }

    /// The trigger text new arms get.
    public var trigger: String { armed.withLock { $0.trigger } }

    /// Arms triggers for `groups` (by their cgroupfs directory) and disarms all others; a group
    /// armed with an older trigger is armed anew (a trigger's file descriptor keeps the trigger
    /// it was written, so it is closed and the file opened again).
    /// - Returns: groups whose trigger could not be armed, with why.
    @discardableResult
    public func watch(_ groups: [CgroupPath: String]) -> [CgroupPath: String] {
        var failures: [CgroupPath: String] = [:]
        let (current, stale, trigger) = armed.withLock { state in
            defer { state.fds = [:]; state.generation += 1 }
            return (state.fds, state.fdsTrigger != state.trigger, state.trigger)
        }
        var next: [CgroupPath: Int32] = [:]
        for (group, fd) in current {
            if groups[group] != nil && !stale { next[group] = fd } else { close(fd) }
        }
        for (group, dir) in groups where next[group] == nil {
            let path = files.resolve(dir + "/memory.pressure")
            let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { failures[group] = String(cString: strerror(errno)); continue }
            // Only the kernel's file takes a trigger: written to anything else (a fixture tree's
            // plain file) it would overwrite the pressure figures instead.
            guard Self.isOnCgroup2(fd) else { failures[group] = "not a cgroup2 file: no trigger"; close(fd); continue }
            let written = trigger.withCString { write(fd, $0, strlen($0) + 1) }
            guard written >= 0 else { failures[group] = String(cString: strerror(errno)); close(fd); continue }
            next[group] = fd
        }
        armed.withLock { state in
            state.fds = next
            state.fdsTrigger = trigger
            state.generation += 1
        }
        wake()
        return failures
    }

    static func isOnCgroup2(_ fd: Int32) -> Bool { tierd_is_on_cgroup2(fd) == 1 }

    public var watchedCount: Int { armed.withLock { $0.fds.count } }

    public func stop() {
        armed.withLock { $0.stopped = true }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func pollLoop() {
        while true {
            let (stopped, fds, generation) = armed.withLock { ($0.stopped, $0.fds, $0.generation) }
            if stopped { break }
            let groups = Array(fds.keys)
            var pollfds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            pollfds += groups.map { pollfd(fd: fds[$0]!, events: Int16(POLLPRI), revents: 0) }
            let ready = poll(&pollfds, nfds_t(pollfds.count), -1)
            if ready < 0 { if errno == EINTR { continue } else { break } }
            if pollfds[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakeRead, &drain, drain.count) > 0 {}
            }
            // Polled fds that a `watch` replaced meanwhile may have been closed and their numbers
            // reused: what they report is not about these groups. The timer tick covers a lost wake.
            guard armed.withLock({ $0.generation }) == generation else { continue }
            var gone: [CgroupPath] = []
            for (index, group) in groups.enumerated() {
                let revents = Int32(pollfds[index + 1].revents)
                if revents & Int32(POLLERR) != 0 { gone.append(group); continuation.yield(.vanished(group)) }
                else if revents & Int32(POLLPRI) != 0 { continuation.yield(.stalled(group)) }
            }
            if !gone.isEmpty {
                armed.withLock { state in
                    guard state.generation == generation else { return }
                    for group in gone { if let fd = state.fds.removeValue(forKey: group) { close(fd) } }
                }
            }
        }
        let fds = armed.withLock { state in defer { state.fds = [:] }; return state.fds }
        for fd in fds.values { close(fd) }
        continuation.finish()
    }
}
