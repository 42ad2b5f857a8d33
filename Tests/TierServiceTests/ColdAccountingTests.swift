import Testing
import TierCore
import TierLinux
import TierService
import TierTestSupport

/// What a `cold` demotion's requests took and did not demote is counted apart by kind, in the
/// daemon's ledger (the journal's tick totals) and in `/metrics`: lost (the group went to swap,
/// or swap could not be seen), the slow tier's dropped page cache, and the kernel's own losses.
struct ColdAccountingTests {
    func outcome(demoted: UInt64, lost: UInt64 = 0, slowTierDropped: UInt64 = 0, kernelLost: UInt64 = 0) -> ActionOutcome {
        var action = MigrationAction(group: CgroupPath("test.slice/batch"), workload: "batch", direction: .demote, pids: [700],
                                     from: NodeSet([0]), to: [1], bytes: 64 << 20, mempolicy: .respect, reason: "test")
        action.mechanism = .kernelReclaim(argument: "swappiness=max")
        var outcome = ActionOutcome(action: action, tasks: [])
        outcome.reclaimedBytes = demoted
        outcome.lostBytes = lost
        outcome.slowTierDroppedBytes = slowTierDropped
        outcome.kernelLostBytes = kernelLost
        return outcome
    }

    @Test func eachKindIsCountedApart() {
        let outcomes = [outcome(demoted: 32 << 20, slowTierDropped: 663_552), outcome(demoted: 8 << 20, lost: 4096, kernelLost: 8192)]
        var ledger = MoveLedger()
        ledger.recordMoves(outcomes)
        #expect(ledger.lostTotal == 4096)
        #expect(ledger.slowTierDroppedTotal == 663_552)
        #expect(ledger.demotedByMode[.cold] == 40 << 20)

        let metrics = TierMetrics()
        metrics.recordMoves(outcomes)
        let text = metrics.text()
        #expect(MetricsText.sum(text, family: "tierd_reclaim_lost_bytes_total") == 4096)
        #expect(MetricsText.sum(text, family: "tierd_reclaim_slow_tier_dropped_bytes_total") == 663_552)
        #expect(MetricsText.sum(text, family: "tierd_kernel_reclaim_lost_bytes_total") == 8192)
        #expect(MetricsText.sum(text, family: "tierd_moved_bytes_total", label: "mode=\"cold\"") == Double(40 << 20))
    }

    /// Written pages an opted-in workload got back count apart: the journal's `promoted_hot_total`
    /// and `/metrics`' mode "hot"; a protected promotion counts under "task" as before.
    @Test func hotPromotionsAreCountedApartFromProtectedOnes() {
        func promotion(_ pages: PageSelection, moved: UInt64) -> ActionOutcome {
            var action = MigrationAction(group: CgroupPath("test.slice/batch"), workload: "batch", direction: .promote, pids: [700],
                                         from: NodeSet([1]), to: [0], bytes: 64 << 20, mempolicy: .respect, reason: "test")
            action.step = pages == .recentlyWritten ? .promoteWrittenPages(keepFree: 0) : .promoteIntoFreeRoom(keepFree: 0)
            return ActionOutcome(action: action, tasks: [(700, .moved(bytes: moved))])
        }
        let outcomes = [promotion(.recentlyWritten, moved: 12 << 20), promotion(.all, moved: 5 << 20)]
        var ledger = MoveLedger()
        ledger.recordMoves(outcomes)
        #expect(ledger.promotedHotTotal == 12 << 20)
        #expect(ledger.total(.promote) == 17 << 20)
        let metrics = TierMetrics()
        metrics.recordMoves(outcomes)
        let text = metrics.text()
        #expect(MetricsText.sum(text, family: "tierd_moved_bytes_total", label: "mode=\"hot\"") == Double(12 << 20))
        #expect(MetricsText.sum(text, family: "tierd_moved_bytes_total", label: "mode=\"task\"") == Double(5 << 20))
    }

    /// `tierctl explain` says how an opted-in group's written slow pages come back, or why they stay.
    @Test func explainSaysWhetherWrittenSlowPagesComeBack() throws {
        let settings = try PolicyCompiler.compile(yaml: "controller: {hot_look_interval: 2s, hot_hold: 1m, hot_promotion_rate: 32MiB/s}\n", file: "t.yaml").controller
        #expect(Explanation.hotPages(settings, tracked: true)
            == "pages it writes on slow nodes, looked for every 2 s, come back to DRAM above the low watermark, at most 32.0 MiB/s, then are kept from demotion for 60 s")
        #expect(Explanation.hotPages(settings, tracked: false).hasPrefix("stay on the slow tier: the kernel keeps no soft-dirty bits"))
        var off = settings
        off.hotPages = .off
        #expect(Explanation.hotPages(off, tracked: true) == "stay on the slow tier (controller.hot_pages: off)")
    }
}
