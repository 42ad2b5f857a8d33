import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TierCore
import TierLinux

/// A kept-open kernel file is read anew from its start each time, on this machine's own kernel.
struct KeptFileTests {
    let files = RootedHostFiles()

    /// Minor faults of the whole process (`/proc/self/stat` field 10): they only grow.
    func minorFaults(_ text: String) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 7 ? UInt64(fields[7]) : nil
    }

    /// procfs renews the file's text on every read from offset 0: touching 16,384 new pages shows
    /// in the kept file's next reading, without opening it again.
    @Test func aKeptProcfsFileShowsWhatChanged() throws {
        let stat = try #require(files.keepOpen(KernelPaths.process(getpid()) + "/stat"))
        let before = try #require(stat.withContents { minorFaults(String(decoding: $0, as: UTF8.self)) } ?? nil)
        let size = 64 << 20
        let memory = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(memory, size) }
        _ = madvise(memory, size, MADV_NOHUGEPAGE)   // one fault per base page
        for offset in stride(from: 0, to: size, by: 4096) { memory.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
        let after = try #require(stat.withContents { minorFaults(String(decoding: $0, as: UTF8.self)) } ?? nil)
        #expect(after >= before + 16_000)
    }

    /// A node's sysfs meminfo kept open reads as it does by path, again and again.
    @Test func aKeptNodeMeminfoReadsItsMemFree() throws {
        let path = KernelPaths.node(0) + "/meminfo"
        let kept = try #require(files.keepOpen(path))
        for _ in 0..<3 {
            let free = try #require(kept.withContents(KernelText.nodeMemFree(bytes:)) ?? nil)
            let byPath = try #require(KernelText.nodeMemFree(try files.read(path)))
            #expect(free > 0 && byPath > 0)
            #expect(max(free, byPath) - min(free, byPath) < 256 << 20)
        }
        #expect(files.keepOpen(KernelPaths.node(4096) + "/meminfo") == nil)
    }
}
