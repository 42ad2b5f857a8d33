import Testing
import TierCore

/// The map from `/proc/PID/cgroup` paths, as a reader in a cgroup namespace sees them, to the
/// mounted tree. The captured pod view (Tests/Fixtures/guest-pod) is checked in TierLinuxTests.
struct CgroupNamespaceTests {
    /// tierd in a pod: its container's cgroup is its namespace root, four levels below the host's.
    let pod = CgroupNamespace(selfInNamespace: "/", selfInMount: CgroupPath(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice/cri-containerd-tierd.scope"))

    @Test(arguments: [
        ("/../../../../lab.slice/batch", "lab.slice/batch"),
        ("/../../../kubepods-burstable.slice/kubepods-burstable-podweb.slice/cri-containerd-web.scope",
         "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podweb.slice/cri-containerd-web.scope"),
        ("/", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice/cri-containerd-tierd.scope"),
        ("/sidecar", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice/cri-containerd-tierd.scope/sidecar"),
        ("/../../../..", ""),
    ])
    func podPathsMapIntoTheHostTree(namespacePath: String, hostPath: String) {
        #expect(pod.mountPath(of: namespacePath) == CgroupPath(hostPath))
    }

    @Test func aPathAboveTheMountedTreeMapsToNothing() {
        #expect(pod.mountPath(of: "/../../../../../elsewhere") == nil)
    }

    @Test func onAHostTheMapIsTheIdentity() {
        let host = CgroupNamespace(selfInNamespace: "/system.slice/tierd.service", selfInMount: CgroupPath("system.slice/tierd.service"))
        #expect(host.isIdentity)
        #expect(!pod.isIdentity)
        #expect(host.mountPath(of: "/lab.slice/batch") == CgroupPath("lab.slice/batch"))
        #expect(CgroupNamespace.identity.mountPath(of: "/a/b") == CgroupPath("a/b"))
    }

    @Test func tierdBelowItsNamespaceRootStillMaps() {
        // tierd moved into a child of its namespace root ("/tierd"), which is three levels down.
        let nested = CgroupNamespace(selfInNamespace: "/tierd", selfInMount: CgroupPath("a/b/ctr/tierd"))
        #expect(nested.mountPath(of: "/../../be") == CgroupPath("a/be"))
        #expect(nested.mountPath(of: "/") == CgroupPath("a/b/ctr"))
    }

    @Test func theHostsTreeMountedOverTheRuntimesOneIsPreferred() {
        let mountinfo = """
            407 395 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
            408 407 0:26 /../../../.. /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
            409 395 0:26 / /run/own rw,relatime - cgroup2 cgroup2 rw

            """
        let mounts = KernelText.cgroup2Mounts(mountinfo: mountinfo)
        #expect(mounts.map(\.root) == ["/", "/../../../..", "/"])
        #expect(CgroupMount.preferred(mounts) == CgroupMount(root: "/../../../..", mountPoint: "/sys/fs/cgroup"))
        #expect(mounts[1].levelsAboveNamespace == 4)
        // The runtime's namespaced mount alone: the namespace root, no levels above it.
        #expect(CgroupMount.preferred([mounts[0]])?.levelsAboveNamespace == 0)
        #expect(CgroupMount.preferred([]) == nil)
    }

    @Test func anAnchorIsKnownSearchedOrImpossible() {
        let host = CgroupMount(root: "/", mountPoint: "/sys/fs/cgroup")
        #expect(CgroupNamespace.anchor(mount: host, selfInNamespace: "/system.slice/tierd.service")
                == .known(CgroupNamespace(selfInNamespace: "/system.slice/tierd.service", selfInMount: CgroupPath("system.slice/tierd.service"))))
        let hostTree = CgroupMount(root: "/../../../..", mountPoint: "/sys/fs/cgroup")
        #expect(CgroupNamespace.anchor(mount: hostTree, selfInNamespace: "/") == .search(depth: 4))
        #expect(CgroupNamespace.anchor(mount: hostTree, selfInNamespace: "/tierd") == .search(depth: 5))
        // A subtree of the namespace mounted: tierd lives elsewhere and cannot be anchored.
        let subtree = CgroupMount(root: "/workloads", mountPoint: "/mnt/cg")
        guard case .outside = CgroupNamespace.anchor(mount: subtree, selfInNamespace: "/") else {
            Issue.record("a mount beside tierd's cgroup must not anchor"); return
        }
        #expect(CgroupNamespace.anchor(mount: subtree, selfInNamespace: "/workloads/tierd")
                == .known(CgroupNamespace(selfInNamespace: "/workloads/tierd", selfInMount: CgroupPath("tierd"))))
        guard case .outside = CgroupNamespace.anchor(mount: CgroupMount(root: "/../x", mountPoint: "/m"), selfInNamespace: "/") else {
            Issue.record("a sibling tree is not an ancestor"); return
        }
    }
}
