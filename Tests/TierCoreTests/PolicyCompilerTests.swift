import Testing
import TierCore

struct PolicyCompilerTests {
    static let full = """
    tiers: auto
    controller:
      interval: 2s
      dram: {low: 10%, high: 20%, watch: 250ms, lookahead: 2s, reserve: 1GiB}
      rate_limit: 512MiB/s
      psi_trigger: {stall: 150ms, window: 1s}
      mover_nice: -5
      demotion_per_tick: 256MiB
      move_on_task_cpu: false
      parallel_moves: false
      numa_balancing: tiering
      hot_promotion_rate: 128MiB/s
    workloads:
      - name: latency-critical
        match: ["kubepods.slice/kubepods-pod*.slice/**", "system.slice/postgresql.service"]
        demote: never
      - name: batch
        match: ["batch.slice/**"]
        demote: allowed
        priority: 10
        dram_floor: 256MiB
        pressure_guard: {some_avg10: 20%}
        mempolicy: override
        rate_limit: 64MiB/s
    default: {demote: never, promote: false}
    """

    @Test func compilesTheDesignExample() throws {
        let policy = try PolicyCompiler.compile(yaml: Self.full, file: "t.yaml")
        #expect(policy.controller.interval == .seconds(2))
        #expect(policy.controller.idleInterval == .seconds(10))
        #expect(policy.controller.rateLimit == 512 << 20)
        #expect(policy.controller.moverNice == -5)
        #expect(policy.controller.demotionPerTick == 256 << 20)
        #expect(policy.controller.dramWatch == .milliseconds(250) && policy.controller.dramLookahead == .seconds(2))
        #expect(policy.controller.dramReserve == 1 << 30 && ControllerSettings().dramReserve == 0)
        #expect(ControllerSettings().dramWatch == .milliseconds(100) && ControllerSettings().dramLookahead == .seconds(1))
        #expect(!policy.controller.moveOnTaskCPU)
        #expect(ControllerSettings().moveOnTaskCPU)
        #expect(!policy.controller.parallelMoves && ControllerSettings().parallelMoves)
        #expect(policy.controller.numaBalancing == .tiering && ControllerSettings().numaBalancing == .leave)
        #expect(KernelSetting.wanted(by: policy.controller) == [.numaBalancing: "2", .promoteRateLimit: "128"])
        #expect(KernelSetting.wanted(by: ControllerSettings()).isEmpty)
        #expect(ControllerSettings().hotPages == .written && ControllerSettings().hotHold == .seconds(30))
        #expect(ControllerSettings().kernelShield == .low)
        #expect(try PolicyCompiler.compile(yaml: "controller: {kernel_shield: min}\n", file: "t.yaml").controller.kernelShield == .min)
        #expect(ControllerSettings().hotLookInterval == .seconds(5))
        let hot = try PolicyCompiler.compile(yaml: "controller: {hot_pages: written, hot_hold: 2m, hot_promotion_rate: 16MiB/s}\n", file: "t.yaml").controller
        #expect(hot.hotPages == .written && hot.hotHold == .seconds(120) && hot.hotPromotionRate == 16 << 20)
        #expect(try PolicyCompiler.compile(yaml: "controller: {hot_pages: off}\n", file: "t.yaml").controller.hotPages == .off)
        var lru = ControllerSettings()
        lru.lruGenBatchClearing = .off
        #expect(KernelSetting.wanted(by: lru) == [.lruGenFeatures: .clearing(0x0002)])
        #expect(policy.workloads.count == 2)
        let batch = policy.workloads[1].rule
        #expect(batch == WorkloadRule(demote: .allowed, priority: 10, dramFloor: 256 << 20,
                                      pressureGuard: PressureGuard(kind: .some, threshold: 0.2),
                                      mempolicy: .override, promote: false, rateLimit: 64 << 20))
        #expect(policy.workloads[0].rule.promote)
        #expect(policy.defaultRule == .observeOnly)
    }

    @Test func explicitTiers() throws {
        let policy = try PolicyCompiler.compile(yaml: "tiers: {fast: [0], slow: \"1-2\"}\nworkloads: []\n", file: "t")
        #expect(policy.tiers == .explicit(fast: NodeSet([0]), slow: NodeSet([1, 2])))
    }

    /// Each malformed file gets its own message naming line, column and field.
    @Test(arguments: [
        ("bogus: 1\n", "t.yaml:1:1: bogus: unknown key; expected one of tiers, controller, workloads, default"),
        ("controller:\n  interval: 2 seconds\n", "t.yaml:2:13: controller.interval: '2 seconds' is not a duration: use a number with ms, s, m or h, such as 2s"),
        ("controller:\n  interval: 5s\n  idle_interval: 2s\n", "t.yaml:3:18: controller.idle_interval: must be at least controller.interval and at most 1h (equal to the interval: no idle pacing)"),
        ("controller:\n  dram: {low: 30%, high: 20%}\n", "t.yaml:2:26: controller.dram.high: must be above dram.low (30.0%), or demotion would never stop"),
        ("controller:\n  dram: {low: 10%, high: 20%, watch: 1ms}\n", "t.yaml:2:38: controller.dram.watch: must be 0s (off) or between 10ms and 10s"),
        ("controller:\n  dram: {low: 10%, high: 20%, lookahead: soon}\n", "t.yaml:2:42: controller.dram.lookahead: 'soon' is not a duration: use a number with ms, s, m or h, such as 2s"),
        ("controller:\n  dram: {low: 10%, high: 20%, reserve: lots}\n", "t.yaml:2:40: controller.dram.reserve: 'lots' is not a size: use a byte count or a number with KiB, MiB, GiB or TiB"),
        ("controller:\n  dram: {low: 10}\n", "t.yaml:2:15: controller.dram.low: '10' is not a percentage: write it with a % sign, such as 10%"),
        ("controller:\n  rate_limit: 512MB/s\n", "t.yaml:2:15: controller.rate_limit: '512MB' is not a size: use a byte count or a number with KiB, MiB, GiB or TiB"),
        ("controller:\n  demotion_per_tick: 512KiB\n", "t.yaml:2:22: controller.demotion_per_tick: must be at least 1MiB"),
        ("controller:\n  move_on_task_cpu: sometimes\n", "t.yaml:2:21: controller.move_on_task_cpu: expected true or false"),
        ("controller:\n  parallel_moves: 2\n", "t.yaml:2:19: controller.parallel_moves: expected true or false"),
        ("controller:\n  kernel_shield: hard\n", "t.yaml:2:18: controller.kernel_shield: 'hard' is not `low` (memory.low, best effort) or `min` (memory.min, a guarantee the OOM killer backs)"),
        ("controller:\n  numa_balancing: on\n", "t.yaml:2:19: controller.numa_balancing: 'on' is not `leave` (the host's setting), `off` or `tiering` (the kernel promotes hot slow pages)"),
        ("controller:\n  numa_balancing: off\n  hot_pages: off\n  hot_promotion_rate: 64MiB/s\n", "t.yaml:4:23: controller.hot_promotion_rate: applies only with `hot_pages: written` or `numa_balancing: tiering`"),
        ("controller:\n  hot_pages: dirty\n", "t.yaml:2:14: controller.hot_pages: 'dirty' is not `written` (pages written on the slow tier come back) or `off`"),
        ("controller:\n  hot_pages: off\n  hot_hold: 10s\n", "t.yaml:3:13: controller.hot_hold: applies only with `hot_pages: written`"),
        ("controller:\n  hot_look_interval: 100ms\n", "t.yaml:2:22: controller.hot_look_interval: must be at least 500ms: each look reads every looked-at task's page map"),
        ("controller:\n  hot_pages: off\n  hot_look_interval: 5s\n", "t.yaml:3:22: controller.hot_look_interval: applies only with `hot_pages: written`"),
        ("controller:\n  hot_hold: soon\n", "t.yaml:2:13: controller.hot_hold: 'soon' is not a duration: use a number with ms, s, m or h, such as 2s"),
        ("controller:\n  numa_balancing: tiering\n  hot_promotion_rate: 512KiB/s\n", "t.yaml:3:23: controller.hot_promotion_rate: must be at least 1MiB/s (the kernel counts whole MiB per second)"),
        ("controller:\n  lru_gen_batch_clearing: no\n", "t.yaml:2:27: controller.lru_gen_batch_clearing: 'no' is not `leave` (the host's setting) or `off`"),
        ("controller:\n  mover_nice: -30\n", "t.yaml:2:15: controller.mover_nice: expected a nice value, a whole number from -20 to 19"),
        ("controller:\n  rate_limit: 512MiB\n", "t.yaml:2:15: controller.rate_limit: '512MiB' is not a rate: expected a size per second, such as 256MiB/s"),
        ("controller:\n  psi_trigger: {stall: 150ms, window: 20s}\n", "t.yaml:2:39: controller.psi_trigger.window: the kernel accepts windows from 500ms to 10s"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: maybe\n", "t.yaml:4:13: workloads[0].demote: 'maybe' is not `allowed` or `never`"),
        ("workloads:\n  - name: a\n    match: [x]\n", "t.yaml:2:5: workloads[0]: `demote: allowed` (opt-in) or `demote: never` (opt-out) is required"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: never\n  - name: a\n    match: [y]\n    demote: never\n", "t.yaml:5:11: workloads[1].name: 'a' is already the name of workloads[0]"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: never\n    dram_floor: 1GiB\n", "t.yaml:5:5: workloads[0].dram_floor: applies only to `demote: allowed` workloads"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: allowed\n    promote: true\n", "t.yaml:5:5: workloads[0].promote: applies only to `demote: never` workloads"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: allowed\n    dram_floor: 1.5XB\n", "t.yaml:5:17: workloads[0].dram_floor: '1.5XB' is not a size: use a byte count or a number with KiB, MiB, GiB or TiB"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: allowed\n    priority: high\n", "t.yaml:5:15: workloads[0].priority: expected a whole number from -1000 to 1000 (lower is demoted first)"),
        ("workloads:\n  - name: a\n    match: [\"a/../b\"]\n    demote: never\n", "t.yaml:3:13: workloads[0].match[0]: 'a/../b' is not a cgroup path glob: components may not be empty, '.' or '..'"),
        ("workloads:\n  - name: a\n    match: []\n    demote: never\n", "t.yaml:3:12: workloads[0].match: the list is empty: this workload would match nothing"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: allowed\n    pressure_guard: {some_avg10: 20%, full_avg10: 5%}\n", "t.yaml:5:21: workloads[0].pressure_guard: give exactly one of some_avg10 or full_avg10"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: allowed\n    mempolicy: ignore\n", "t.yaml:5:16: workloads[0].mempolicy: 'ignore' is not `respect` or `override`"),
        ("tiers: {fast: [0], slow: [0, 1]}\n", "t.yaml:1:26: tiers.slow: node 0 is listed as both fast and slow"),
        ("workloads:\n  - name: a\n    match: [x]\n    demote: never\n    demote: allowed\n", "t.yaml:4:5: duplicate key 'demote' in this mapping"),
        ("base: &b {demote: never}\n", "t.yaml:1:7: YAML anchors and aliases (& and *) are not allowed in a policy; quote a glob that starts with *"),
        // CRLF line endings: the anchor starts the second line.
        ("base:\r\n  &b {demote: never}\r\n", "t.yaml:2:3: YAML anchors and aliases (& and *) are not allowed in a policy; quote a glob that starts with *"),
        ("workloads:\n  - name: a\n    match:\n      - **/batch\n", "t.yaml:4:9: YAML anchors and aliases (& and *) are not allowed in a policy; quote a glob that starts with *"),
        ("workloads: [\n", "t.yaml:2:1: invalid YAML: did not find expected node content"),
        ("", "t.yaml:1:1: the file is empty; a policy needs at least `workloads: []`"),
    ])
    func rejects(yaml: String, message: String) {
        #expect(throws: PolicyError.self) { try PolicyCompiler.compile(yaml: yaml, file: "t.yaml") }
        do {
            _ = try PolicyCompiler.compile(yaml: yaml, file: "t.yaml")
        } catch {
            #expect("\(error)" == message)
        }
    }

    @Test func quotedGlobsWithStarsAreNotAliases() throws {
        let yaml = "workloads:\n  - name: a  # a comment with *star\n    match: [\"**/batch\", 'kube*']\n    demote: never\n"
        let policy = try PolicyCompiler.compile(yaml: yaml, file: "t")
        #expect(policy.workloads[0].matches.map(\.pattern) == ["**/batch", "kube*"])
    }

    @Test func refusesHostileBytes() {
        let big = [UInt8](repeating: UInt8(ascii: "#"), count: PolicyCompiler.maxFileBytes + 1)
        #expect(throws: PolicyError.self) { try PolicyCompiler.compile(bytes: big, file: "big.yaml") }
        let invalid: [UInt8] = Array("workloads: []\n# caf".utf8) + [0xC3, 0x28]
        do {
            _ = try PolicyCompiler.compile(bytes: invalid, file: "bad.yaml")
            Issue.record("invalid UTF-8 accepted")
        } catch {
            #expect("\(error)" == "bad.yaml:2:6: not valid UTF-8 (byte offset 19)")
        }
        let laughs = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n"
        #expect(throws: PolicyError.self) { try PolicyCompiler.compile(yaml: laughs, file: "l") }
    }

    @Test(arguments: [("256MiB", UInt64(256 << 20)), ("1GiB", 1 << 30), ("4096", 4096), ("0.5KiB", 512), ("2TiB", 2 << 40)])
    func sizes(text: String, bytes: UInt64) throws { #expect(try Quantity.parseSize(text).get() == bytes) }

    @Test func durationsAndPercents() throws {
        #expect(try Quantity.parseDuration("500ms").get() == .milliseconds(500))
        #expect(try Quantity.parseDuration("1m").get() == .seconds(60))
        #expect(try Quantity.parsePercent("12.5%").get() == 0.125)
        #expect((try? Quantity.parsePercent("120%").get()) == nil)
    }
}
