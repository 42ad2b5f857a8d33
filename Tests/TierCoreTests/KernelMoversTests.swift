import Testing
import TierCore

struct KernelMoversTests {
    @Test(arguments: [
        ("6.12.95+deb12-amd64", KernelRelease(major: 6, minor: 12)),
        ("7.3.4+deb13-amd64", KernelRelease(major: 7, minor: 3)),
        ("6.16-rc1", KernelRelease(major: 6, minor: 16)),
        ("6.16", KernelRelease(major: 6, minor: 16)),
    ])
    func aReleaseIsReadFromItsLeadingNumbers(text: String, release: KernelRelease) {
        #expect(KernelRelease(text) == release)
    }

    @Test(arguments: ["", "6", "linux", ".12.1", "6.x"])
    func textWithoutMajorAndMinorIsNoRelease(text: String) {
        #expect(KernelRelease(text) == nil)
    }

    @Test func demotionKeepsToCpusetsFrom616On() {
        #expect(!KernelMovers(release: "6.12.95+deb12-amd64").demotionRespectsCpusets)
        #expect(!KernelMovers(release: "6.15.9").demotionRespectsCpusets)
        #expect(KernelMovers(release: "6.16.0").demotionRespectsCpusets)
        #expect(KernelMovers(release: "7.3.4+deb13-amd64").demotionRespectsCpusets)
        #expect(!KernelMovers().demotionRespectsCpusets)
    }

    @Test func aKernelWithEveryMoverOffHasNoFinding() {
        #expect(KernelMovers(numaBalancing: 0, demotionEnabled: false, runningDamonContexts: 0, release: "6.12.95").findings.isEmpty)
        #expect(KernelMovers().findings.isEmpty)
    }

    /// A booted Debian kernel's defaults: NUMA balancing mode 1, demotion off.
    @Test func debiansDefaultsPullDemotedPagesBackToDram() {
        let movers = KernelMovers(numaBalancing: 1, demotionEnabled: false, runningDamonContexts: 0, release: "6.12.95+deb12-amd64")
        #expect(movers.findings.map(\.code) == ["numa_balancing"])
        #expect(movers.findings(for: WorkloadRule(demote: .allowed)).map(\.code) == ["numa_balancing"])
        #expect(movers.findings(for: WorkloadRule(demote: .never, promote: true)).isEmpty)
        #expect(movers.findings[0].text.contains("kernel.numa_balancing=1"))
    }

    @Test func kernelDemotionConcernsProtectedWorkloadsAndSaysWhetherItIgnoresCpusets() {
        let old = KernelMovers(numaBalancing: 0, demotionEnabled: true, release: "6.12.95+deb12-amd64")
        #expect(old.findings(for: WorkloadRule(demote: .never)).map(\.code) == ["kernel_demotion"])
        #expect(old.findings(for: WorkloadRule(demote: .allowed)).isEmpty)
        #expect(old.findings[0].text.contains("ignores cpusets"))
        let new = KernelMovers(numaBalancing: 0, demotionEnabled: true, release: "7.3.4+deb13-amd64")
        #expect(!new.findings[0].text.contains("ignores cpusets"))
    }

    @Test func tieringModeAndDamonConcernEveryWorkload() {
        let movers = KernelMovers(numaBalancing: 3, demotionEnabled: false, runningDamonContexts: 2)
        #expect(movers.findings.map(\.code) == ["numa_balancing", "numa_balancing_tiering", "damon"])
        #expect(movers.findings(for: WorkloadRule(demote: .never)).map(\.code) == ["numa_balancing_tiering", "damon"])
        #expect(movers.findings(for: WorkloadRule(demote: .allowed)).map(\.code) == ["numa_balancing", "numa_balancing_tiering", "damon"])
        #expect(movers.findings[2].text.hasPrefix("2 DAMON contexts are running"))
    }
}

/// A setting tierd owns: what it writes over the value it finds.
struct SettingValueTests {
    @Test func aFixedValueIsWrittenOnlyWhereItDiffers() {
        #expect(SettingValue.exactly("2").write(over: "1") == .success("2"))
        #expect(SettingValue.exactly("2").write(over: "2") == .success(nil))
    }

    @Test func aMaskLosesOnlyItsBitsAndIsWrittenAsTheKernelPrintsIt() {
        let clear = SettingValue.clearing(KernelSetting.lruGenBatchClearing)
        #expect(clear.write(over: "0x0007") == .success("0x0005"))
        #expect(clear.write(over: "7") == .success("0x0005"))
        #expect(clear.write(over: "0x0005") == .success(nil))
        #expect(clear.write(over: "0x0000") == .success(nil))
        #expect(clear.write(over: "y") == .failure(SettingValueError(found: "y")))
    }
}
