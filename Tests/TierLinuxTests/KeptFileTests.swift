import Foundation
import Testing
import TierCore
import TierLinux

/// A kept-open kernel file is read anew from its start each time, on this machine's own kernel.
struct KeptFileTests {
    let files = RootedHostFiles()

    func residentKiB(_ text: String) -> UInt64? {
        text.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }
            .flatMap { UInt64($0) }
    }

    /// procfs renews the file's text on every read from offset 0: touching 64 MiB shows in the
    /// kept file's next reading, without opening it again.
    @Test func aKeptProcfsFileShowsWhatChanged() throws {
        let status = try #require(files.keepOpen(KernelPaths.selfStatus))
        let before = try #require(status.withContents { residentKiB(String(decoding: $0, as: UTF8.self)) } ?? nil)
        let size = 64 << 20
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { memory.deallocate() }
        for offset in stride(from: 0, to: size, by: 4096) { memory.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
        let after = try #require(status.withContents { residentKiB(String(decoding: $0, as: UTF8.self)) } ?? nil)
        #expect(after >= before + 60 * 1024)
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
