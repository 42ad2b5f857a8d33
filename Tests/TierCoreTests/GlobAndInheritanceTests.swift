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
}
