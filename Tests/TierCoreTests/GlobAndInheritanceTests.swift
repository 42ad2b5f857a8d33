import Testing
import TierCore

struct GlobAndInheritanceTests {
    @Test(arguments: [
        ("batch.slice", "batch.slice", true),
        ("batch.slice", "batch.slice/job1", false),
        ("batch.slice/**", "batch.slice/job1/inner", true),
        ("batch.slice/**", "batch.slice", true),
        ("kubepods.slice/kubepods-pod*.slice/**", "kubepods.slice/kubepods-pod12.slice/cri-1.scope", true),
        ("kubepods.slice/kubepods-pod*.slice", "kubepods.slice/kubepods-besteffort.slice", false),
        ("**/db.service", "system.slice/db.service", true),
        ("job?", "job1", true),
        ("job?", "job12", false),
        ("*", "a/b", false),
    ])
    func glob(pattern: String, path: String, matches: Bool) {
        #expect(CgroupGlob(pattern).matches(CgroupPath(path)) == matches)
    }

    @Test func deepestMatchWinsAndSubtreesInherit() throws {
        let yaml = """
        workloads:
          - name: batch
            match: ["batch.slice"]
            demote: allowed
          - name: keep
            match: ["batch.slice/important"]
            demote: never
        """
        let policy = try PolicyCompiler.compile(yaml: yaml, file: "t")
        let paths = ["batch.slice", "batch.slice/job1", "batch.slice/important", "batch.slice/important/sub", "other"].map(CgroupPath.init)
        let resolved = policy.resolve(paths)
        #expect(resolved[CgroupPath("batch.slice/job1")]?.name == "batch")
        #expect(resolved[CgroupPath("batch.slice/job1")]?.matchedAt == CgroupPath("batch.slice"))
        #expect(resolved[CgroupPath("batch.slice/important")]?.rule.demote == .never)
        #expect(resolved[CgroupPath("batch.slice/important/sub")]?.name == "keep")
        #expect(resolved[CgroupPath("other")]?.name == "default")
        #expect(resolved[CgroupPath("other")]?.rule == .observeOnly)
    }

    /// The kept resolution is given again only to the same question: a copy of the policy with
    /// other workloads or another default rule, or other paths, is answered afresh.
    @Test func aKeptResolutionAnswersOnlyTheSameQuestion() throws {
        let policy = try PolicyCompiler.compile(yaml: "workloads:\n  - {name: batch, match: [\"batch.slice\"], demote: allowed}\n", file: "t")
        let paths = ["batch.slice", "batch.slice/job1", "other"].map(CgroupPath.init)
        #expect(policy.resolve(paths)[CgroupPath("batch.slice/job1")]?.name == "batch")
        var renamed = policy
        renamed.workloads[0].name = "bulk"
        #expect(renamed.resolve(paths)[CgroupPath("batch.slice/job1")]?.name == "bulk")
        #expect(policy.resolve(paths)[CgroupPath("batch.slice/job1")]?.name == "batch")
        var strict = policy
        strict.defaultRule.demote = .allowed
        #expect(strict.resolve(paths)[CgroupPath("other")]?.rule.demote == .allowed)
        #expect(policy.resolve(paths)[CgroupPath("other")]?.rule.demote == .never)
        let more = paths + [CgroupPath("batch.slice/job2")]
        #expect(policy.resolve(more)[CgroupPath("batch.slice/job2")]?.name == "batch")
        #expect(policy.resolve(paths)[CgroupPath("batch.slice/job2")] == nil)
        #expect(policy == renamed.resolvingAs(policy))
    }
}

private extension Policy {
    /// This policy with `other`'s workloads: equal to `other` whatever either has resolved.
    func resolvingAs(_ other: Policy) -> Policy {
        var copy = self
        copy.workloads = other.workloads
        return copy
    }
}
