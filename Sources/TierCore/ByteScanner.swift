/// Byte-level helpers for the parsers on the hot path: cgroupfs text is ASCII, and a tick parses
/// thousands of files, so lines and fields are found on UTF-8 bytes, not on Characters.
enum ByteScanner {
    static let newline = UInt8(ascii: "\n"), space = UInt8(ascii: " "), equals = UInt8(ascii: "=")

    /// Calls `body` with each line's bytes (without the newline).
    @inline(__always)
    static func forEachLine(_ all: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        scanLines(all) { body($0); return true }
    }

    /// Calls `body` with each non-empty line of `all` while it returns true.
    static func scanLines(_ all: UnsafeBufferPointer<UInt8>, while body: (UnsafeBufferPointer<UInt8>) -> Bool) {
        var start = 0
        for index in 0..<all.count where all[index] == newline {
            if index > start && !body(UnsafeBufferPointer(rebasing: all[start..<index])) { return }
            start = index + 1
        }
        if start < all.count { _ = body(UnsafeBufferPointer(rebasing: all[start..<all.count])) }
    }

    /// Runs `body` over the UTF-8 bytes of `text` (no copy for native strings).
    @inline(__always)
    static func withBytes<T>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        var copy = text
        return copy.withUTF8(body)
    }

    /// Calls `body` with each space- or tab-separated field of `line`.
    @inline(__always)
    static func forEachField(_ line: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        var start = -1
        for index in 0..<line.count {
            let byte = line[index]
            if byte == space || byte == UInt8(ascii: "\t") {
                if start >= 0 { body(UnsafeBufferPointer(rebasing: line[start..<index])); start = -1 }
            } else if start < 0 {
                start = index
            }
        }
        if start >= 0 { body(UnsafeBufferPointer(rebasing: line[start..<line.count])) }
    }

    /// A decimal unsigned integer filling the whole buffer, or nil.
    @inline(__always)
    static func uint64(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 48 && byte <= 57 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - 48))
            guard !o1 && !o2 else { return nil }
            value = sum
        }
        return value
    }

    @inline(__always)
    static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        let other = literal.utf8Start
        for index in 0..<bytes.count where bytes[index] != other[index] { return false }
        return true
    }

    /// Where `literal` first starts in `bytes`.
    static func firstIndex(of literal: StaticString, in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let count = literal.utf8CodeUnitCount, other = literal.utf8Start
        guard count > 0, bytes.count >= count else { return nil }
        for start in 0...(bytes.count - count) where bytes[start] == other[0] {
            if equals(UnsafeBufferPointer(rebasing: bytes[start..<(start + count)]), literal) { return start }
        }
        return nil
    }

    /// "N<node>=<value>" fields, as numa_stat and numa_maps write them.
    @inline(__always)
    static func nodeValue(_ field: UnsafeBufferPointer<UInt8>) -> (node: Int, value: UInt64)? {
        guard field.count >= 4, field[0] == UInt8(ascii: "N"),
              let eq = field.firstIndex(of: equals),
              let node = uint64(UnsafeBufferPointer(rebasing: field[1..<eq])),
              let value = uint64(UnsafeBufferPointer(rebasing: field[(eq + 1)...])),
              node <= UInt64(NodeSet.maxNodeID) else { return nil }
        return (Int(node), value)
    }

    /// A non-negative decimal such as "4.64" (PSI averages), or nil.
    @inline(__always)
    static func decimal(_ bytes: UnsafeBufferPointer<UInt8>) -> Double? {
        guard let dot = bytes.firstIndex(of: UInt8(ascii: ".")) else { return uint64(bytes).map(Double.init) }
        guard let whole = uint64(UnsafeBufferPointer(rebasing: bytes[..<dot])) else { return nil }
        let fractionBytes = UnsafeBufferPointer(rebasing: bytes[(dot + 1)...])
        guard let fraction = uint64(fractionBytes), fractionBytes.count <= 18 else { return fractionBytes.isEmpty ? Double(whole) : nil }
        var scale = 1.0
        for _ in 0..<fractionBytes.count { scale *= 10 }
        return Double(whole) + Double(fraction) / scale
    }
}
