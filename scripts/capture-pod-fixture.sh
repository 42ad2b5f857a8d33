#!/bin/sh
# Runs INSIDE the lab guest (tierlab capture --shape pod): captures what tierd sees from a
# Kubernetes pod on a cgroup v2 host — in a cgroup of its own, in a private cgroup namespace,
# with the container runtime's namespaced cgroup2 mount at /sys/fs/cgroup and the DaemonSet's
# hostPath mount of the host's cgroupfs over it — into a tree rooted at $1 that mirrors /.
set -eu
out=${1:?usage: capture-pod-fixture.sh OUTDIR}
if [ "${2:-}" = inside ]; then
  # In the namespaces: arrange the mounts as a container runtime and the hostPath volume do.
  # (a fresh /sys/fs stands in for the container's own sysfs, which has no cgroup mount yet)
  mkdir -p /run/hostcg
  mount --bind /sys/fs/cgroup /run/hostcg
  mount -t tmpfs tmpfs /sys/fs && mkdir /sys/fs/cgroup
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  mount --bind /run/hostcg /sys/fs/cgroup
  umount -l /run/hostcg
  work=$3
  echo $$ > "$out/SELF_PID"
  echo "$work" > "$out/WORKLOAD_PID"
  grab() { mkdir -p "$out$(dirname "$1")"; cat "$1" > "$out$1"; }
  grab /proc/self/cgroup; grab /proc/self/mountinfo; grab /proc/self/status; grab /proc/$work/cgroup
  cg=/sys/fs/cgroup
  grab $cg/cgroup.subtree_control; grab $cg/cpuset.mems.effective
  find $cg -mindepth 1 -type d | while read -r d; do
    for f in memory.numa_stat memory.pressure cpuset.mems.effective cgroup.procs; do [ -r "$d/$f" ] && grab "$d/$f"; done
  done
  for f in /sys/devices/system/node/online /sys/devices/system/node/has_cpu /sys/devices/system/node/has_memory; do grab $f; done
  for n in /sys/devices/system/node/node[0-9]*; do grab $n/meminfo; grab $n/distance; done
  for t in /sys/devices/virtual/memory_tiering/memory_tier*; do grab $t/nodelist; done
  uname -r > "$out/KERNEL"
  exit 0
fi
rm -rf "$out"; mkdir -p "$out"
cg=/sys/fs/cgroup
enable() { echo "+memory +cpuset" > "$cg/$1/cgroup.subtree_control"; }
echo "+memory +cpuset" > $cg/cgroup.subtree_control
mkdir -p $cg/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice/cri-containerd-tierd.scope
mkdir -p $cg/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podweb.slice/cri-containerd-web.scope
for g in kubepods.slice kubepods.slice/kubepods-besteffort.slice kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice \
         kubepods.slice/kubepods-burstable.slice kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podweb.slice; do enable $g; done
web=kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podweb.slice/cri-containerd-web.scope
sh -c "echo \$\$ > $cg/$web/cgroup.procs; exec python3 -c 'import time; b=bytearray(b\"x\")*(40<<20); time.sleep(600)'" &
sleep 4
work=$(head -n 1 $cg/$web/cgroup.procs)
tierd=kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podtierd.slice/cri-containerd-tierd.scope
sh -c "echo \$\$ > $cg/$tierd/cgroup.procs; exec unshare --cgroup --mount --propagation private sh $0 $out inside $work"
kill "$work" 2>/dev/null || true
