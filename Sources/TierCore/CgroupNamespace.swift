/// A cgroup v2 mount as `/proc/self/mountinfo` lists it.
///
/// The root field of a cgroup mount is the mounted directory's path relative to the *reader's*
/// cgroup namespace root: "/" on a host, and in a Kubernetes pod (a private cgroup namespace
/// rooted at the container's own cgroup) "/../../.." for the host's cgroupfs mounted by a
/// hostPath volume, while the runtime's own namespaced mount shows "/".
public struct CgroupMount: Sendable, Equatable {
    /// The mounted directory, relative to the reader's cgroup namespace root.
    public var root: String
    /// Where it is mounted (mountinfo's mount-point field).
    public var mountPoint: String

    public init(root: String, mountPoint: String) {
        self.root = root
        self.mountPoint = mountPoint
    }

    /// How many levels above the reader's namespace root the mounted directory sits (its leading
    /// ".." components); 0 when it is the namespace root or below it.
    public var levelsAboveNamespace: Int { CgroupNamespace.components(root).prefix { $0 == ".." }.count }

    /// The mount tierd reads: of the mounts still visible (the last one at each mount point, since a
    /// later mount hides an earlier one there), the one showing the most of the hierarchy; among
    /// equals the last listed. A pod's hostPath mount of the host's tree thus wins over the
    /// runtime's namespaced one beneath it or beside it.
    public static func preferred(_ mounts: [CgroupMount]) -> CgroupMount? {
        var visible: [CgroupMount] = []
        for mount in mounts {
            visible.removeAll { $0.mountPoint == mount.mountPoint }
            visible.append(mount)
        }
        return visible.enumerated().max { a, b in
            (a.element.levelsAboveNamespace, a.offset) < (b.element.levelsAboveNamespace, b.offset)
        }?.element
    }
}

/// Maps the cgroup paths that `/proc/PID/cgroup` shows — relative to the reader's cgroup namespace
/// root, so "/../../be" from inside a pod — to paths in the mounted tree, which is what tierd plans on.
///
/// It is anchored by tierd's own cgroup, known in both frames: its path in the namespace
/// (`/proc/self/cgroup`) and the directory of the mounted tree that lists tierd's pid. A path P of
/// the namespace is then tierd's directory, up as many levels as P and tierd's path part, and down
/// P's remaining components. On a host both frames are the same and the map is the identity.
public struct CgroupNamespace: Sendable, Equatable {
    /// tierd's own cgroup as `/proc/self/cgroup` shows it, as components (may start with "..").
    public let selfInNamespace: [String]
    /// tierd's own cgroup in the mounted tree.
    public let selfInMount: CgroupPath

    public init(selfInNamespace: String, selfInMount: CgroupPath) {
        self.selfInNamespace = Self.components(selfInNamespace)
        self.selfInMount = selfInMount
    }

    /// The map when the mount's root is the namespace root: a path of the namespace is a path of the tree.
    public static let identity = CgroupNamespace(selfInNamespace: "/", selfInMount: .root)

    public var isIdentity: Bool { selfInNamespace.map { Substring($0) } == selfInMount.components }

    /// The group `namespacePath` (as `/proc/PID/cgroup` shows it) names in the mounted tree; nil
    /// when it lies outside that tree (above the mounted directory).
    public func mountPath(of namespacePath: String) -> CgroupPath? {
        let target = Self.components(namespacePath)
        let common = zip(selfInNamespace, target).prefix { $0 == $1 }.count
        var path = selfInMount.components.map(String.init)
        for _ in common..<selfInNamespace.count {
            guard path.popLast() != nil else { return nil }
        }
        for component in target[common...] {
            if component == ".." {
                guard path.popLast() != nil else { return nil }
            } else {
                path.append(component)
            }
        }
        return CgroupPath(path.joined(separator: "/"))
    }

    /// How tierd's own cgroup is found in the mounted tree, given the mount and tierd's namespace path.
    public enum Anchor: Sendable, Equatable {
        /// Known without looking: the mount's root is the namespace root or one of its descendants.
        case known(CgroupNamespace)
        /// The mount's root lies this many levels above the namespace root: tierd's cgroup is the
        /// directory at `depth` below the mount's root whose `cgroup.procs` lists tierd's pid.
        case search(depth: Int)
        /// tierd's cgroup cannot be inside the mounted tree.
        case outside(String)
    }

    public static func anchor(mount: CgroupMount, selfInNamespace: String) -> Anchor {
        let root = components(mount.root), own = components(selfInNamespace)
        let ups = mount.levelsAboveNamespace
        if ups == 0 {
            guard own.count >= root.count, Array(own.prefix(root.count)) == root else {
                return .outside("tierd's cgroup \(selfInNamespace) is not under the mounted directory \(mount.root) at \(mount.mountPoint)")
            }
            let inMount = CgroupPath(own.dropFirst(root.count).joined(separator: "/"))
            return .known(CgroupNamespace(selfInNamespace: selfInNamespace, selfInMount: inMount))
        }
        guard ups == root.count, !own.contains("..") else {
            return .outside("the cgroup tree mounted at \(mount.mountPoint) (\(mount.root)) is not an ancestor of tierd's cgroup namespace")
        }
        return .search(depth: ups + own.count)
    }

    /// A namespace path's components with "." dropped and ".." folded where it can be (the kernel
    /// writes ".." only at the start; a leading ".." stays).
    static func components(_ path: String) -> [String] {
        var out: [String] = []
        for part in path.split(separator: "/") where part != "." {
            if part == "..", let last = out.last, last != ".." { out.removeLast() } else { out.append(String(part)) }
        }
        return out
    }
}
