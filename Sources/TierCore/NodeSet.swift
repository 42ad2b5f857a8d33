/// A set of NUMA node ids, as the kernel writes them in list form ("0-2,4").
///
/// Node sets are intersected on every decision (slow tier ∩ cpuset ∩ tierd's own
/// allowed nodes), so they are a value type with cheap set algebra over a bitmap.
public struct NodeSet: Hashable, Sendable, Sequence, CustomStringConvertible {
    /// The largest node id accepted: the kernel's MAX_NUMNODES on x86-64 distribution kernels.
    public static let maxNodeID = 1023
    private var words: [UInt64]

    public init() { words = [] }

    public init<S: Sequence>(_ ids: S) where S.Element == Int {
        self.init()
        for id in ids { insert(id) }
    }

    public static var empty: NodeSet { NodeSet() }

    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }
    public var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    public func contains(_ id: Int) -> Bool {
        guard id >= 0, id / 64 < words.count else { return false }
        return words[id / 64] & (1 << UInt64(id % 64)) != 0
    }

    public mutating func insert(_ id: Int) {
        precondition(id >= 0 && id <= NodeSet.maxNodeID, "node id out of range")
        while words.count <= id / 64 { words.append(0) }
        words[id / 64] |= 1 << UInt64(id % 64)
    }

    public func intersection(_ other: NodeSet) -> NodeSet {
        var result = NodeSet()
        result.words = zip(words, other.words).map { $0 & $1 }
        result.trim()
        return result
    }

    public func union(_ other: NodeSet) -> NodeSet {
        var result = NodeSet()
        let n = Swift.max(words.count, other.words.count)
        result.words = (0..<n).map { i in
            (i < words.count ? words[i] : 0) | (i < other.words.count ? other.words[i] : 0)
        }
        result.trim()
        return result
    }

    public func subtracting(_ other: NodeSet) -> NodeSet {
        var result = self
        for i in 0..<Swift.min(words.count, other.words.count) { result.words[i] &= ~other.words[i] }
        result.trim()
        return result
    }

    public func isSubset(of other: NodeSet) -> Bool { subtracting(other).isEmpty }
    public func isDisjoint(with other: NodeSet) -> Bool { intersection(other).isEmpty }

    public var first: Int? { sorted.first }

    /// Node ids in ascending order.
    public var sorted: [Int] { Array(self) }

    /// Iterates set bits in ascending order without building an array.
    public struct Iterator: IteratorProtocol {
        let words: [UInt64]
        var wordIndex = 0
        var current: UInt64
        init(_ words: [UInt64]) { self.words = words; current = words.first ?? 0 }
        public mutating func next() -> Int? {
            while current == 0 {
                wordIndex += 1
                guard wordIndex < words.count else { return nil }
                current = words[wordIndex]
            }
            let bit = current.trailingZeroBitCount
            current &= current - 1
            return wordIndex * 64 + bit
        }
    }

    public func makeIterator() -> Iterator { Iterator(words) }

    /// The kernel's list form: "0-2,4"; empty for the empty set.
    public var description: String {
        var parts: [String] = []
        var ids = sorted[...]
        while let start = ids.popFirst() {
            var end = start
            while ids.first == end + 1 { end = ids.removeFirst() }
            parts.append(start == end ? "\(start)" : "\(start)-\(end)")
        }
        return parts.joined(separator: ",")
    }

    private mutating func trim() {
        while let last = words.last, last == 0 { words.removeLast() }
    }

    public static func == (lhs: NodeSet, rhs: NodeSet) -> Bool {
        var l = lhs, r = rhs
        l.trim(); r.trim()
        return l.words == r.words
    }

    public func hash(into hasher: inout Hasher) {
        var t = self
        t.trim()
        hasher.combine(t.words)
    }

    /// Parses the kernel's list form ("0-2,4", "" or a lone newline for none).
    /// - Returns: nil when the text is not a node list.
    public static func parseList<S: StringProtocol>(_ text: S) -> NodeSet? { parseList(utf8: text.utf8) }

    /// The same, from the file's bytes.
    public static func parseList<B: Sequence>(utf8 text: B) -> NodeSet? where B.Element == UInt8 {
        var set = NodeSet()
        var low: Int?, current: Int?
        func close() -> Bool {
            guard let value = current else { return low == nil }
            let start = low ?? value
            guard start <= value, value <= maxNodeID else { return false }
            for id in start...value { set.insert(id) }
            low = nil; current = nil
            return true
        }
        for byte in text {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                current = (current ?? 0) * 10 + Int(byte - 48)
                if current! > maxNodeID { return nil }
            case UInt8(ascii: "-"):
                guard low == nil, let value = current else { return nil }
                low = value; current = nil
            case UInt8(ascii: ","):
                guard current != nil, close() else { return nil }
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                continue
            default:
                return nil
            }
        }
        if low != nil && current == nil { return nil }
        guard close() else { return nil }
        return set
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines.
    var trimmingWhitespace: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        let s = self[...]
        guard let start = s.firstIndex(where: { !isSpace($0) }) else { return Substring() }
        let end = s.lastIndex(where: { !isSpace($0) })!
        return Substring(s[start...end])
    }
}
