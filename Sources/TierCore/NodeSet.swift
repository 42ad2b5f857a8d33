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
    public var sorted: [Int] {
        var ids: [Int] = []
        for (w, word) in words.enumerated() where word != 0 {
            for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 { ids.append(w * 64 + bit) }
        }
        return ids
    }

    public func makeIterator() -> IndexingIterator<[Int]> { sorted.makeIterator() }

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
    public static func parseList<S: StringProtocol>(_ text: S) -> NodeSet? {
        var set = NodeSet()
        let trimmed = text.trimmingWhitespace
        if trimmed.isEmpty { return set }
        for part in trimmed.split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                  let lo = Int(bounds[0]), let hi = Int(bounds[bounds.count - 1]),
                  lo >= 0, lo <= hi, hi <= maxNodeID else { return nil }
            for id in lo...hi { set.insert(id) }
        }
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
