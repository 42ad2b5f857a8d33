#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TierCore

/// Carries out `KernelShield`: raises `memory.low` (or `memory.min`, `ShieldProtection`) where the core asks, never below what the group
/// had, and puts every value back when the group no longer needs it, when tierd stops, and — from
/// the file it keeps them in — when a tierd that died is started again. Each group's value from
/// before tierd touched it is written to the file before the group is raised. The kernel settings
/// tierd owns (`KernelSetting`) are kept the same way, in the same file.
public final class KernelShieldKeeper: @unchecked Sendable {
    let collector: SnapshotCollector
    /// Where the values from before are kept (nil: kept in memory only, as in a one-shot run).
    let stateFile: String?
    private let lock = NSLock()
    /// Each file tierd raised (`memory.low`, `memory.min`) as it was before, by file and group, as
    /// the kernel wrote it ("0", "max").
    private var originals: [String: [String: String]] = [:]
    /// What tierd last wrote, by group, and into which file.
    private var applied: [CgroupPath: (file: String, value: UInt64)] = [:]
    /// Kernel settings as they were before tierd set them, by `KernelSetting` name, as the kernel wrote them.
    private var settingOriginals: [String: String] = [:]

    public init(collector: SnapshotCollector, stateFile: String?) {
        self.collector = collector; self.stateFile = stateFile
    }

    /// What one pass did.
    public struct Report: Sendable, Equatable {
        public var raised = 0, restored = 0, failed = 0
        /// Kernel settings put back (by `restoreLeftovers` and `restoreAll`), as `name=value`, and
        /// those that could not be, by name, with why (they stay in the file for the next start).
        public var settingsRestored: [String] = []
        public var settingsFailed: [String: String] = [:]
        public init() {}

        mutating func add(_ other: Report) {
            raised += other.raised; restored += other.restored; failed += other.failed
        }
    }

    /// Groups tierd holds raised now, with the value it wrote.
    public var shielded: [CgroupPath: UInt64] { lock.lock(); defer { lock.unlock() }; return applied.mapValues(\.value) }

    /// Puts back the values a tierd that died left raised, as its file has them, then forgets them.
    @discardableResult
    public func restoreLeftovers() -> Report {
        lock.lock(); defer { lock.unlock() }
        guard let stateFile, let data = Self.readWhole(stateFile),
              let saved = try? JSONDecoder().decode([String: [String: String]].self, from: data) else { return Report() }
        originals = saved.filter { $0.key != "settings" }
        settingOriginals = saved["settings"] ?? [:]
        return restoreEverything()
    }

    /// What one pass over the kernel settings did, each as `name=value`.
    public struct SettingsReport: Sendable, Equatable {
        /// Set now, with the value found: `kernel.numa_balancing=2 (was 1)`.
        public var set: [String] = []
        public var restored: [String] = []
        /// By sysctl name: why it could not be read or written.
        public var failed: [String: String] = [:]
        public init() {}
    }

    /// Sets each setting of `wanted` that differs, keeping the value it had first (on disk before
    /// the write), and puts back the ones tierd set that are no longer wanted.
    @discardableResult
    public func own(_ wanted: [KernelSetting: SettingValue]) -> SettingsReport {
        lock.lock(); defer { lock.unlock() }
        var report = restoreSettings(Set(settingOriginals.keys).subtracting(wanted.keys.map(\.rawValue)))
        for (setting, value) in wanted.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let file = KernelPaths.setting(setting)
            let current: String
            do { current = try collector.files.read(file).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
                report.failed[setting.rawValue] = "cannot read \(file): \(error)"
                continue
            }
            let next: String
            switch value.write(over: current) {
            case .failure(let error): report.failed[setting.rawValue] = "\(file): \(error)"; continue
            case .success(nil): continue
            case .success(let text?): next = text
            }
            if settingOriginals[setting.rawValue] == nil {
                settingOriginals[setting.rawValue] = current
                persist()
            }
            do {
                try collector.files.write(file, next)
                report.set.append("\(setting)=\(next) (was \(current))")
            } catch {
                report.failed[setting.rawValue] = "cannot write \(next) to \(file): \(error)"
            }
        }
        return report
    }

    /// Raises the groups of `claims` to at least their claim in `protection`'s file (never below
    /// their own value) and restores what tierd raised that is no longer claimed there (a reload
    /// from `low` to `min` puts every `memory.low` back). A group is rewritten only when its claim
    /// outgrew what was written or fell well below it.
    @discardableResult
    public func apply(_ claims: [CgroupPath: UInt64], using protection: ShieldProtection = .low) -> Report {
        lock.lock(); defer { lock.unlock() }
        let name = protection.file
        var report = Report()
        for (other, groups) in originals {
            let released = other == name ? Set(groups.keys).subtracting(claims.keys.map(\.relative)) : Set(groups.keys)
            report.add(restore(released, file: other))
        }
        for (group, claim) in claims.sorted(by: { $0.key < $1.key }) {
            if let written = applied[group], written.file == name, claim <= written.value, written.value <= claim + 2 * Self.slack(claim) { continue }
            let file = collector.directory(of: group) + "/" + name
            if originals[name]?[group.relative] == nil {
                guard let text = try? collector.files.read(file) else { report.failed += 1; continue }
                originals[name, default: [:]][group.relative] = text.trimmingCharacters(in: .whitespacesAndNewlines)
                persist()
            }
            let found = originals[name]?[group.relative]
            let own = found.flatMap { UInt64($0) } ?? (found == "max" ? .max : 0)
            let target = claim + Self.slack(claim)
            guard own < target else { applied[group] = (name, target); continue }
            do {
                try collector.files.write(file, String(target))
                applied[group] = (name, target)
                report.raised += 1
            } catch { report.failed += 1 }
        }
        return report
    }

    /// Every raised group back to its value from before (at a stop).
    @discardableResult
    public func restoreAll() -> Report {
        lock.lock(); defer { lock.unlock() }
        return restoreEverything()
    }

    /// Lock held. Every raised group and every owned setting back to what tierd found.
    private func restoreEverything() -> Report {
        var report = Report()
        for (file, groups) in originals { report.add(restore(Set(groups.keys), file: file)) }
        let settings = restoreSettings(Set(settingOriginals.keys))
        (report.settingsRestored, report.settingsFailed) = (settings.restored, settings.failed)
        persist()
        return report
    }

    /// Written above the claim, so that a group growing by a few pages is not rewritten every tick.
    static func slack(_ claim: UInt64) -> UInt64 { max(claim / 16, 8 << 20) }

    /// Lock held. `file` of each group back to its value from before; a group that is gone needs nothing back.
    private func restore(_ groups: Set<String>, file: String) -> Report {
        var report = Report()
        for relative in groups.sorted() {
            guard let value = originals[file]?[relative] else { continue }
            let group = CgroupPath(relative)
            do {
                try collector.files.write(collector.directory(of: group) + "/" + file, value)
                report.restored += 1
            } catch HostFileError.vanished {
            } catch { report.failed += 1 }
            originals[file]?[relative] = nil
            if originals[file]?.isEmpty == true { originals[file] = nil }
            if applied[group]?.file == file { applied[group] = nil }
        }
        if report.restored > 0 || !groups.isEmpty { persist() }
        return report
    }

    /// Lock held. A setting that cannot be written back stays in the file, for the next start.
    private func restoreSettings(_ names: Set<String>) -> SettingsReport {
        var report = SettingsReport()
        for name in names.sorted() {
            guard let value = settingOriginals[name], let setting = KernelSetting(rawValue: name) else {
                settingOriginals[name] = nil
                continue
            }
            do {
                try collector.files.write(KernelPaths.setting(setting), value)
                report.restored.append("\(name)=\(value)")
                settingOriginals[name] = nil
            } catch {
                report.failed[name] = "cannot put \(value) back: \(error)"
            }
        }
        if !names.isEmpty { persist() }
        return report
    }

    /// Lock held. Written whole to a temporary file, then renamed over the old one, with the plain
    /// calls the DaemonSet's seccomp profile allows (open, write, rename, unlink, mkdir).
    private func persist() {
        guard let stateFile else { return }
        if originals.isEmpty && settingOriginals.isEmpty { unlink(stateFile); return }
        var saved = originals
        saved["settings"] = settingOriginals
        guard let data = try? JSONEncoder().encode(saved) else { return }
        if let slash = stateFile.lastIndex(of: "/"), slash != stateFile.startIndex { mkdir(String(stateFile[..<slash]), 0o700) }
        let temporary = stateFile + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        if written == data.count { rename(temporary, stateFile) } else { unlink(temporary) }
    }

    static func readWhole(_ path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return n == 0 ? data : nil }
            data.append(contentsOf: buffer[0..<n])
        }
    }
}
