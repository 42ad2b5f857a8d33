#if canImport(Glibc)
import Glibc
#endif
import TierCore

extension TaskMigrator {
    /// A `cold` demotion: the kernel's reclaim of the group's coldest pages through its
    /// `memory.reclaim`, with kernel demotion on so that they go to the slow tier. Before the first
    /// request the group's cpuset must still hold every node the kernel may demote to, and no task
    /// of the group may have a mempolicy that keeps it off them (the kernel's reclaim would demote
    /// its pages whatever the policy). Requests go in ``ColdReclaim/requestBytes`` steps, each
    /// checked in the group's `memory.stat`: a step that demoted nothing ends the action, and one
    /// whose own reclaim lost pages (swapped, or not demoted where swap cannot be seen) ends it and
    /// reports them; the slow tier's page cache a request dropped, and what the kernel's other
    /// reclaim lost from the group meanwhile, are reported apart.
    func reclaimColdest(_ action: MigrationAction, argument: String?, pacer: RoomPacer?, deadline: Deadline?) -> ActionOutcome {
        var outcome = ActionOutcome(action: action, tasks: [])
        let dir = collector.directory(of: action.group)
        do {
            let allowed = try allowedNodes(action.group)
            guard NodeSet(action.to).isSubset(of: allowed) else {
                outcome.dropped = "cpuset.mems.effective of \(action.group) and tierd's own now allow \(allowed), not every node the kernel may demote to (\(NodeSet(action.to)))"
                return outcome
            }
        } catch {
            outcome.dropped = error.description
            return outcome
        }
        let pids = ((try? files.read(dir + "/cgroup.procs")).map(KernelText.pids) ?? []).filter { $0 != selfPid }
        for pid in pids {
            guard let text = try? files.read(KernelPaths.process(pid) + "/numa_maps") else { continue }
            if let policy = MempolicyGate.blockingPolicy(KernelText.numaMaps(text), targets: NodeSet(action.to), mode: action.mempolicy) {
                outcome.tasks.append((pid, .mempolicy(policy)))
                outcome.coldRefused = "task \(pid)'s mempolicy \(policy) keeps it off \(NodeSet(action.to)), and the kernel's reclaim would demote it anyway"
                return outcome
            }
        }
        if dryRun {
            outcome.wouldReclaimBytes = action.bytes
            return outcome
        }
        let clock = ContinuousClock()
        var remaining = action.bytes
        // One request's counters after are the next one's before: memory.stat is read once per step.
        var last = files.coldReclaimCounters(groupDirectory: dir)
        while remaining > 0 {
            if MoveRules.yieldsNow(action.step, nextTickDue: deadline?.passed == true, movedBytes: outcome.reclaimedBytes) { break }
            let asked = min(remaining, ColdReclaim.requestBytes)
            guard let before = last else { outcome.dropped = "cgroup \(action.group) vanished before the move"; break }
            let started = clock.now
            var refusal: HostFileError?
            do { try files.write(dir + "/memory.reclaim", ColdReclaim.request(bytes: asked, argument: argument)) } catch { refusal = error }
            outcome.syscallDuration += clock.now - started
            guard let after = files.coldReclaimCounters(groupDirectory: dir) else { break }
            last = after
            let step = ColdReclaim.step(before: before, after: after)
            outcome.reclaimedBytes += step.demotedPages * pageSize
            outcome.lostBytes += step.lostPages * pageSize
            outcome.slowTierDroppedBytes += step.slowTierDroppedPages * pageSize
            outcome.kernelLostBytes += step.kernelLostPages * pageSize
            remaining -= min(remaining, step.demotedPages * pageSize)
            pacer?.roomMade(step.demotedPages * pageSize)
            ownMoves?.add((step.demotedPages + step.lostPages + step.kernelLostPages) * pageSize, .demote, since: started)
            // EAGAIN: the kernel reclaimed less than asked and gave up; anything else is a refusal.
            if case .failed(_, let code) = refusal, code != EAGAIN { outcome.dropped = "memory.reclaim: \(refusal!)"; break }
            if step.lostPages > 0 || step.demotedPages == 0 || refusal != nil { break }
        }
        return outcome
    }
}

extension HostFiles {
    /// The counters a `cold` request is judged by: the group's `memory.stat` and
    /// `memory.swap.current` (nil without swap accounting); nil if the group is gone.
    public func coldReclaimCounters(groupDirectory dir: String) -> ColdReclaim.Counters? {
        guard let stat = (try? read(dir + "/memory.stat")).map(KernelText.memoryStat) else { return nil }
        return ColdReclaim.Counters(stat: stat, swapBytes: (try? read(dir + "/memory.swap.current")).flatMap(ByteTrim.uint64))
    }
}
