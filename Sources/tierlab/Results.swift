import Foundation

/// One claim a scenario checked, with what it saw.
struct Check: Codable, Sendable {
    var name: String
    var ok: Bool
    var detail: String
}

/// What a scenario found: its checks, its figures, its time series (for plots), and on failure
/// enough of what it saw (per-node bytes, tierd's last decisions) to diagnose from a CI log.
struct ScenarioResult: Codable, Sendable {
    var scenario: String
    /// `uname -r` of the guest it ran in (set by the host once the guest is done).
    var kernel: String = ""
    var checks: [Check]
    var figures: [String: Double] = [:]
    /// Named series of (seconds since the protected job finished allocating, value).
    var series: [String: [[Double]]] = [:]
    var diagnostics: String = ""

    var passed: Bool { !checks.isEmpty && checks.allSatisfy(\.ok) }

    static func load(_ path: String) -> [ScenarioResult] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(ScenarioResult.self, from: Data($0.utf8)) }
    }
}

/// The printed summary, the demo's comparison table and its plot.
struct Report {
    let results: [ScenarioResult]

    func text(suite: String) -> String {
        var lines: [String] = []
        for result in results {
            lines.append("\(result.passed ? "PASS" : "FAIL") \(result.scenario)" + (result.kernel.isEmpty ? "" : " [\(result.kernel)]"))
            for check in result.checks { lines.append("  [\(check.ok ? "ok" : "FAILED")] \(check.name): \(check.detail)") }
            for key in result.figures.keys.sorted() { lines.append("  \(key) = \(format(result.figures[key]!))") }
            if !result.passed && !result.diagnostics.isEmpty {
                lines.append("  what it saw:")
                lines += result.diagnostics.split(separator: "\n").map { "    " + $0 }
            }
        }
        if suite == "demo" { lines.append(""); lines.append(demoTable()) }
        let passed = results.filter(\.passed).count
        lines.append("")
        lines.append("lab: \(passed) passed, \(results.count - passed) failed")
        return lines.joined(separator: "\n")
    }

    func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.3f", value)
    }

    static let modes: [(scenario: String, label: String)] = [
        ("demo-kernel", "kernel demotion only"), ("demo-numa-balancing", "kernel, numa_balancing=2"), ("late-protected", "tierd, task"),
        ("late-protected-cold", "tierd, cold (batch hot set hot while it allocates)"),
    ]

    /// One table per kernel the demo ran on.
    func demoTable() -> String {
        let kernels = results.map(\.kernel).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        return kernels.map { kernel in
            (kernel.isEmpty ? "" : "Kernel \(kernel):\n") + Report(results: results.filter { $0.kernel == kernel }).demoTableOfOneKernel()
        }.joined(separator: "\n\n")
    }

    func demoTableOfOneKernel() -> String {
        func share(_ r: ScenarioResult, _ key: String) -> String {
            r.figures[key].map { String(format: "%5.1f%%", $0 * 100) } ?? "    –"
        }
        var rows = ["Late protected job (400 MiB, all hot) after a batch job filled DRAM (900 MiB, 50 MiB hot); DRAM share of the protected job:",
                    "| mode | +5 s | +15 s | +30 s | +60 s | end | time to ≥99 % | batch hot in DRAM (end) | batch hot set in DRAM (lowest sample) | demoted from batch | demoted from protected | pages moved | bytes moved / DRAM deficit |",
                    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for (scenario, label) in Self.modes {
            guard let r = results.first(where: { $0.scenario == scenario }) else { continue }
            let reach = r.figures["seconds_to_99"].map { String(format: "%.1f s", $0) } ?? "never (\(Int(r.figures["observed_seconds"] ?? 0)) s)"
            let moved = (r.figures["pages_moved"] ?? 0) * 4096, deficit = r.figures["dram_deficit_bytes"] ?? 0
            let perDeficit = deficit > 0 && r.figures["pages_moved"] != nil ? String(format: "%.0f / %.0f MiB = %.2f", moved / 1048576, deficit / 1048576, moved / deficit) : "–"
            rows.append("| \(label) | \(share(r, "share_at_5s")) | \(share(r, "share_at_15s")) | \(share(r, "share_at_30s")) | \(share(r, "share_at_60s")) | \(share(r, "share_final")) | \(reach) | \(share(r, "batch_hot_share_final")) | \(share(r, "batch_hot_share_lowest")) | \(mib(r.figures["batch_demoted_bytes"])) | \(mib(r.figures["protected_demoted_bytes"])) | \(Int(r.figures["pages_moved"] ?? 0)) | \(perDeficit) |")
        }
        if let tierd = results.first(where: { $0.scenario == "late-protected" }), tierd.figures["bytes_that_had_to_move"] == 0 {
            rows.append("")
            rows.append(String(format: "tierd: %.1f s to ≥99 %%, its first placement report after the allocation: %.1f MiB of its 400 MiB were on the slow node, so nothing had to move and there is no floor to compare with (tierd demoted the batch job ahead of the allocation).",
                               tierd.figures["seconds_to_99"] ?? .nan, (tierd.figures["protected_slow_bytes_at_start"] ?? 0) / 1048576))
        } else if let tierd = results.first(where: { $0.scenario == "late-protected" }), let floor = tierd.figures["floor_seconds"] {
            rows.append("")
            rows.append(String(format: "tierd: %.1f s to ≥99 %%. Floor, migratepages moving the %.0f MiB that had to move: %.1f s at its rate in the idle guest (median of 5 moves around the run, %.0f MiB/s): ratio %.2f (goal ≤ 2); %.1f s at its rate under the same load (%.0f MiB/s): ratio %.2f.",
                               tierd.figures["seconds_to_99"] ?? .nan, (tierd.figures["bytes_that_had_to_move"] ?? 0) / 1048576,
                               tierd.figures["floor_idle_seconds"] ?? .nan, tierd.figures["migratepages_idle_mib_per_s"] ?? .nan,
                               tierd.figures["ratio_to_idle_floor"] ?? .nan, floor,
                               tierd.figures["migratepages_loaded_mib_per_s"] ?? .nan, tierd.figures["ratio_to_floor"] ?? .nan))
        }
        if let tp = results.first(where: { $0.scenario == "throughput" }) {
            rows.append(String(format: "migration throughput, one 512 MiB task moved by each way in %d rounds, timed by the guest's instruction-counted clock: median paired ratio tierd / migratepages %.2f (goal ≥ 0.95); medians tierd %.1f vs migratepages %.1f MiB/s; best rounds %.1f vs %.1f MiB/s; tierd / the bare migrate_pages(2) call %.2f (%.1f MiB/s)",
                               Int(tp.figures["rounds"] ?? 0), tp.figures["throughput_ratio"] ?? .nan,
                               tp.figures["tierd_mib_per_s"] ?? .nan, tp.figures["migratepages_mib_per_s"] ?? .nan,
                               tp.figures["tierd_best_mib_per_s"] ?? .nan, tp.figures["migratepages_best_mib_per_s"] ?? .nan,
                               tp.figures["throughput_ratio_to_bare_call"] ?? .nan, tp.figures["bare_call_mib_per_s"] ?? .nan))
        }
        return rows.joined(separator: "\n")
    }

    func mib(_ bytes: Double?) -> String { bytes.map { String(format: "%.0f MiB", $0 / 1048576) } ?? "–" }

    /// Writes the table as Markdown and a PNG of DRAM share against time for the three modes (gnuplot).
    func writeDemoArtifacts(directory: String) throws {
        try (demoTable() + "\n").write(toFile: directory + "/demo-table.md", atomically: true, encoding: .utf8)
        var plots: [String] = []
        let kernels = results.map(\.kernel).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for kernel in kernels {
            for (scenario, label) in Self.modes {
                guard let points = results.first(where: { $0.scenario == scenario && $0.kernel == kernel })?.series["protected_share"],
                      !points.isEmpty else { continue }
                let file = directory + "/\(scenario)\(kernel.isEmpty ? "" : "-" + kernel).dat"
                try points.map { "\($0[0]) \($0[1] * 100)" }.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
                plots.append("'\(file)' using 1:2 with linespoints title '\(label)\(kernels.count > 1 ? " (\(kernel))" : "")'")
            }
        }
        guard !plots.isEmpty else { return }
        let script = """
        set terminal png size 900,500 noenhanced
        set output '\(directory)/demo-dram-share.png'
        set title 'Late protected job: share of its memory in DRAM'
        set xlabel 'seconds after its allocation finished'
        set ylabel '% in DRAM'
        set yrange [0:105]
        set key outside below horizontal
        set grid
        plot \(plots.joined(separator: ", "))
        """
        try script.write(toFile: directory + "/plot.gp", atomically: true, encoding: .utf8)
        let gnuplot = Process()
        gnuplot.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gnuplot.arguments = ["gnuplot", directory + "/plot.gp"]
        try? gnuplot.run()
        gnuplot.waitUntilExit()
        if gnuplot.terminationStatus == 0 { print("plot: \(directory)/demo-dram-share.png") }
    }
}
