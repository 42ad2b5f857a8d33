/// Reads figures out of tierd's Prometheus text (`/metrics`), for the lab and the benchmarks.
public enum MetricsText {
    /// The sum of a family's series whose labels contain `label` (say `reason="x"`; "" for all):
    /// a line counts when its name is `family`, bare or followed by its labels. (An empty label
    /// must be asked for apart: Foundation's `contains("")` is false.)
    public static func sum(_ text: String, family: String, label: String = "") -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            let name = parts[0]
            guard name == family || name.hasPrefix(family + "{"), label.isEmpty || name.contains(label) else { continue }
            total += value
        }
        return total
    }
}
