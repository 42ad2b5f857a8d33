import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TierCore
import TierLinux

/// How a tick reads a cgroup directory (`RootedHostFiles.visitDirectory`): whole files with as few
/// reads as the kernel allows, and every child directory, on this machine's own kernel.
struct DirectoryVisitTests {
    let files = RootedHostFiles()

    /// The text `visitDirectory` hands over for one file of `directory`.
    func visited(_ directory: String, _ name: String) throws -> String {
        var text: String?
        _ = try files.visitDirectory(directory, names: [name], listSubdirectories: false) { _, bytes in
            text = bytes.map { String(decoding: $0, as: UTF8.self) }
        }
        return try #require(text)
    }

    /// A seq_file of many records stops a read short of what was asked at each page, not only at
    /// its end: `/proc/self/maps`, grown to many pages, is read to its last line.
    @Test func aManyPageSeqFileIsReadWhole() throws {
        let count = 400
        var regions: [UnsafeMutableRawPointer] = []
        defer { for region in regions { munmap(region, 4096) } }
        for index in 0..<count {
            // Alternate protections so that the kernel keeps each mapping a line of its own.
            let protection = index % 2 == 0 ? PROT_READ : PROT_READ | PROT_WRITE
            let region = try #require(mmap(nil, 4096, protection, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
            regions.append(region)
        }
        let text = try visited(KernelPaths.process(getpid()), "maps")
        let whole = try files.read(KernelPaths.process(getpid()) + "/maps")
        #expect(text.utf8.count > 3 * 4096)
        #expect(text.split(separator: "\n").last == whole.split(separator: "\n").last)
        #expect(text.hasSuffix("\n"))
    }

    /// Files of one line, and one larger than the read buffer, from a regular directory.
    @Test func smallAndLargeFilesAreReadWhole() throws {
        let dir = NSTemporaryDirectory() + "visit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let large = (0..<5000).map { "line \($0)\n" }.joined()
        try "0-1\n".write(toFile: dir + "/small", atomically: true, encoding: .utf8)
        try large.write(toFile: dir + "/large", atomically: true, encoding: .utf8)
        #expect(try visited(dir, "small") == "0-1\n")
        #expect(try visited(dir, "large") == large)
    }

    /// More child directories than one getdents64(2) call returns (long names, 3,000 of them),
    /// and no regular file among them.
    @Test func everyChildDirectoryIsListed() throws {
        let dir = NSTemporaryDirectory() + "children-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let names = (0..<3000).map { "kubepods-burstable-pod\($0)-" + String(repeating: "x", count: 40) }
        for name in names { try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: false) }
        try "x".write(toFile: dir + "/memory.stat", atomically: true, encoding: .utf8)
        let listed = try files.visitDirectory(dir, names: [], listSubdirectories: true) { _, _ in }
        #expect(listed.count == names.count)
        #expect(Set(listed) == Set(names))
        #expect(Set(try files.subdirectories(dir)) == Set(names))
    }
}
