import Foundation
import Glibc
import TierCore
import TierLinux
import TierTestSupport

/// The README's systemd install, tried as a new user would: a real systemd (the host's own, as
/// PID 1 of a PID, mount and cgroup namespace inside the guest, the way a system container runs
/// one) boots, the unit and binaries go where the README puts them, and `systemctl enable --now`,
/// `tierctl status`, a `/metrics` scrape, `systemctl reload` and `systemctl stop` must each do
/// what the README says, under the unit's own hardening.
extension Scenarios {
    static func systemdUnit(_ lab: GuestLab) -> ScenarioResult {
        var result = ScenarioResult(scenario: "systemd-unit", checks: [])
        guard let systemd = SystemdGuest.boot(lab) else {
            result.checks.append(Check(name: "systemd boots as PID 1 of its namespace", ok: false,
                                       detail: (try? String(contentsOfFile: lab.out + "/systemd.log", encoding: .utf8))?.suffix(2000).description ?? "no log"))
            return result
        }
        defer { systemd.shutDown(lab) }
        let state = systemd.run("timeout 300 systemctl is-system-running --wait")
        result.checks.append(Check(name: "systemd boots as PID 1 of its namespace", ok: ["running", "degraded"].contains(state.output.trimmed),
                                   detail: "is-system-running: \(state.output.trimmed); failed units: \(systemd.run("systemctl --failed --no-legend --plain").output.trimmed)"))

        // The README's Install steps, the lab's release build standing in for `swift build -c release`.
        let install = SystemdTrialSteps.readmeInstall.map { $0.replacingOccurrences(of: ".build/release", with: lab.bin) }
        let installed = install.map { systemd.run($0.replacingOccurrences(of: "sudo ", with: "")) }
        result.checks.append(Check(name: "the README's install steps succeed", ok: installed.allSatisfy { $0.status == 0 },
                                   detail: zip(install, installed).map { "\($0) → \($1.status) \($1.output.trimmed.suffix(300))" }.joined(separator: "\n")))

        let started = monotonic()
        let enable = systemd.run(SystemdTrialSteps.readmeEnable.replacingOccurrences(of: "sudo ", with: ""))
        let startSeconds = monotonic() - started
        let active = systemd.run("systemctl is-active tierd").output.trimmed
        let status = systemd.run("systemctl show tierd -p StatusText -p WatchdogUSec -p NRestarts --no-pager").output
        // Type=notify: `start` returns only once tierd said READY=1, after its first full cycle.
        result.checks.append(Check(name: "enable --now returns once tierd reports ready, with its status and watchdog",
                                   ok: enable.status == 0 && active == "active" && status.contains("StatusText=managing")
                                       && status.contains("WatchdogUSec=10min"),
                                   detail: String(format: "exit %d after %.1f s; is-active: %@; %@; %@", enable.status, startSeconds, active,
                                                  status.trimmed.replacingOccurrences(of: "\n", with: ", "), enable.output.trimmed)))
        result.figures["enable_now_seconds"] = startSeconds

        let tierctl = systemd.run("tierctl status --json")
        let document = (try? JSONSerialization.jsonObject(with: Data(tierctl.output.utf8))) as? [String: Any]
        let nodes = (document?["nodes"] as? [[String: Any]])?.compactMap { $0["tier"] as? String } ?? []
        let text = systemd.run("tierctl status")
        result.checks.append(Check(name: "tierctl status reads the running daemon: both tiers", ok: tierctl.status == 0 && text.status == 0
                                       && nodes.contains("fast") && nodes.contains("slow"),
                                   detail: "tiers \(nodes); text:\n\(text.output.prefix(900))"))

        let scrape = "curl -s --unix-socket /run/tierd/tierd.sock http://tierd/metrics"
        func metric(_ family: String) -> String {
            let text = systemd.run(scrape).output
            return text.split(separator: "\n").contains { $0.hasPrefix(family + " ") || $0.hasPrefix(family + "{") }
                ? String(MetricsText.sum(text, family: family)) : "missing"
        }
        let generation = metric("tierd_policy_generation"), ticks = metric("tierd_ticks_total")
        result.checks.append(Check(name: "/metrics scraped through the socket", ok: generation == "1.0" && ticks != "missing",
                                   detail: "policy generation \(generation), ticks \(ticks)"))

        let reload = systemd.run("systemctl reload tierd")
        let reloaded = lab.waitFor(seconds: 20) { metric("tierd_policy_generation") == "2.0" }
        result.checks.append(Check(name: "systemctl reload re-reads the policy", ok: reload.status == 0 && reloaded,
                                   detail: "exit \(reload.status); policy generation \(metric("tierd_policy_generation"))"))

        let socketMode = systemd.run("stat -c %a:%U /run/tierd/tierd.sock").output.trimmed
        let security = systemd.run("systemd-analyze security tierd --no-pager").output
        let exposure = security.split(separator: "\n").last { $0.contains("Overall exposure level") }.map(String.init) ?? ""
        result.checks.append(Check(name: "the socket is root's alone; the unit's hardening is in force", ok: socketMode == "600:root" && exposure.contains("OK"),
                                   detail: "socket \(socketMode); \(exposure)"))

        let stop = systemd.run("systemctl stop tierd")
        let ended = systemd.run("systemctl show tierd -p ActiveState -p Result -p ExecMainStatus -p NRestarts --no-pager").output
        result.checks.append(Check(name: "systemctl stop ends tierd cleanly, never restarted", ok: stop.status == 0 && ended.contains("ActiveState=inactive")
                                       && ended.contains("Result=success") && ended.contains("ExecMainStatus=0") && ended.contains("NRestarts=0"),
                                   detail: ended.trimmed.replacingOccurrences(of: "\n", with: ", ")))
        result.diagnostics = systemd.run("journalctl -u tierd --no-pager -o cat").output.suffix(4000).description
        return result
    }
}

/// A systemd booted inside the guest in namespaces of its own, and commands run beside it.
struct SystemdGuest {
    let pid: Int32
    let project: String
    /// The cgroup the namespace lives in (and the root of its cgroup namespace).
    static let group = "systemd-trial"

    static func boot(_ lab: GuestLab) -> SystemdGuest? {
        // The guest's root is the host's over 9p: tmpfiles' walk of it takes many minutes under
        // emulation. A getty on the console would hang up the terminal the lab itself runs on
        // (SIGHUP ends it mid-scenario): the namespace boots to basic.target, with the gettys masked.
        for unit in ["systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service", "systemd-tmpfiles-clean.timer",
                     "console-getty.service", "getty.target"] {
            try? FileManager.default.removeItem(atPath: "/etc/systemd/system/\(unit)")
            try? FileManager.default.createSymbolicLink(atPath: "/etc/systemd/system/\(unit)", withDestinationPath: "/dev/null")
        }
        let cgroup = lab.cgroupDir(group), mount = lab.collector.cgroupMount, proc = KernelPaths.processRoot
        try? FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: true)
        let namespaceInit = "mount -t proc proc \(proc) && umount -l \(mount) && mount -t cgroup2 cgroup2 \(mount)"
            + " && mount -t tmpfs tmpfs /run && exec env container=tierd-lab /lib/systemd/systemd --system --unit=basic.target --log-target=console"
        let launcher = "echo $$ > \(cgroup)/cgroup.procs && exec unshare --pid --fork --mount --uts --cgroup --propagation private sh -c '\(namespaceInit)'"
        // A session of its own: nothing in the namespace shares the lab's terminal.
        let process = lab.spawn(group: nil, ["setsid", "sh", "-c", launcher], output: lab.out + "/systemd.log")
        var pid: Int32?
        _ = lab.waitFor(seconds: 30) {
            pid = procs(of: cgroup, lab).first { (try? lab.files.read(KernelPaths.process($0) + "/comm"))?.trimmed == "systemd" }
            return pid != nil
        }
        guard let pid, lab.waitFor(seconds: 300, { lab.files.exists(KernelPaths.process(pid) + "/root/run/systemd/private") }) else {
            lab.stop(process, signal: SIGKILL)
            return nil
        }
        return SystemdGuest(pid: pid, project: lab.project)
    }

    static func procs(of directory: String, _ lab: GuestLab) -> [Int32] {
        (try? lab.files.read(directory + "/cgroup.procs")).map(KernelText.pids) ?? []
    }

    /// `command` in systemd's namespaces, from the project's directory.
    func run(_ command: String) -> (status: Int32, output: String) {
        (try? runCommand(["/usr/bin/nsenter", "-t", String(pid), "-m", "-p", "-u", "-C", "--wd=\(project)", "sh", "-c", command])) ?? (-1, "cannot run nsenter")
    }

    /// Kills the namespace (its PID 1 first: the kernel ends the rest) and removes its cgroup tree.
    func shutDown(_ lab: GuestLab) {
        kill(pid, SIGKILL)
        _ = lab.waitFor(seconds: 30) { kill(pid, 0) != 0 }
        lab.removeGroups(Self.group)
    }
}

private extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
