import Foundation
import Testing
import TierCore
import TierLinux

/// A tick's freed heap goes back to the kernel: glibc alone keeps freed small blocks below a live
/// one resident for the life of the process.
struct ProcessHeapTests {
    func residentKiB() -> UInt64 {
        KernelText.statusKiB((try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? "", key: "VmRSS") ?? 0
    }

    @Test func freedBlocksBelowALiveOneAreReleased() {
        // 64 MiB in blocks small enough for the heap (not mmap), then one block above them that
        // stays: glibc cannot shrink its heap's top past it, so only a trim returns the rest.
        let blocks = (0..<(64 << 20) / 512).map { _ in
            let block = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 16)
            block.initializeMemory(as: UInt8.self, repeating: 1, count: 512)
            return block
        }
        let pin = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 16)
        defer { pin.deallocate() }
        for block in blocks { block.deallocate() }
        let before = residentKiB()
        ProcessHeap.releaseFreed()
        let after = residentKiB()
        #expect(before > after + 32 * 1024, "resident \(before) KiB before the release, \(after) KiB after")
    }
}
