/// Parsers for the quantities a policy file states: sizes, rates, durations and percentages.
///
/// They are strict on purpose: a policy that says "512M" could mean MB or MiB, so only the
/// binary units are accepted and every rejection says what would have been accepted.
public enum Quantity {
    static let sizeUnits: [(suffix: String, multiplier: UInt64)] = [
        ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1),
    ]

    /// "256MiB", "1GiB", "4096B" or a bare byte count. Returns bytes, or a message why not.
    public static func parseSize(_ text: String) -> Result<UInt64, QuantityError> {
        let t = String(text.trimmingWhitespace)
        if let bare = UInt64(t) { return .success(bare) }
        for (suffix, multiplier) in sizeUnits where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count).trimmingWhitespace
            if let whole = UInt64(number) {
                let (product, overflow) = whole.multipliedReportingOverflow(by: multiplier)
                return overflow ? .failure(.init("'\(text)' is too large")) : .success(product)
            }
            if let fractional = Double(number), fractional >= 0, fractional.isFinite {
                let bytes = fractional * Double(multiplier)
                guard bytes < 1.8e19 else { return .failure(.init("'\(text)' is too large")) }
                return .success(UInt64(bytes.rounded()))
            }
            break
        }
        return .failure(.init("'\(text)' is not a size: use a byte count or a number with KiB, MiB, GiB or TiB"))
    }

    /// "512MiB/s": bytes per second.
    public static func parseRate(_ text: String) -> Result<UInt64, QuantityError> {
        let t = String(text.trimmingWhitespace)
        guard t.hasSuffix("/s") else {
            return .failure(.init("'\(text)' is not a rate: expected a size per second, such as 256MiB/s"))
        }
        return parseSize(String(t.dropLast(2)))
    }

    /// "500ms", "2s", "1m", "250us". Returns a `Duration`.
    public static func parseDuration(_ text: String) -> Result<Duration, QuantityError> {
        let t = String(text.trimmingWhitespace)
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, seconds) in units where t.hasSuffix(suffix) {
            guard let value = Double(t.dropLast(suffix.count)), value >= 0, value.isFinite else { break }
            let nanoseconds = (value * seconds * 1e9).rounded()
            guard nanoseconds < 9e18 else { return .failure(.init("'\(text)' is too long")) }
            return .success(.nanoseconds(Int64(nanoseconds)))
        }
        return .failure(.init("'\(text)' is not a duration: use a number with ms, s, m or h, such as 2s"))
    }

    /// "10%", "2.5%": a fraction in 0...1.
    public static func parsePercent(_ text: String) -> Result<Double, QuantityError> {
        let t = String(text.trimmingWhitespace)
        guard t.hasSuffix("%"), let value = Double(t.dropLast()), value.isFinite else {
            return .failure(.init("'\(text)' is not a percentage: write it with a % sign, such as 10%"))
        }
        guard (0...100).contains(value) else {
            return .failure(.init("'\(text)' is out of range: a percentage is between 0% and 100%"))
        }
        return .success(value / 100)
    }
}

/// Why a quantity did not parse, in words meant for the operator.
public struct QuantityError: Error, Equatable, Sendable {
    public let message: String
    init(_ message: String) { self.message = message }
}

/// Human-readable byte counts for logs and tables ("1.5 GiB").
public func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    if unit == 0 { return "\(bytes) B" }
    let rounded = (value * 10).rounded() / 10
    return "\(rounded) \(units[unit])"
}
