#!/bin/sh
# Runs INSIDE the lab guest (tierlab capture): sets up a few cgroups with real workloads and
# copies the kernel text tierd reads into a tree rooted at $1 that mirrors / (proc/..., sys/...),
# so unit tests parse what a real 6.12 kernel wrote. Python from the shared host root allocates.
set -eu
out=${1:?usage: capture-fixtures.sh OUTDIR}
rm -rf "$out"; mkdir -p "$out"
grab() { # copy one kernel file to the same path under $out
  [ -r "$1" ] || return 0
  mkdir -p "$out$(dirname "$1")"; cat "$1" > "$out$1" 2>/dev/null || true
}
cg=/sys/fs/cgroup
echo "+memory +cpuset" > $cg/cgroup.subtree_control
mkdir -p $cg/batch.slice $cg/system.slice
echo "+memory +cpuset" > $cg/batch.slice/cgroup.subtree_control
echo "+memory +cpuset" > $cg/system.slice/cgroup.subtree_control
mkdir -p $cg/batch.slice/job1 $cg/batch.slice/job2 $cg/system.slice/db.service
echo 1 > $cg/batch.slice/job2/cpuset.mems
alloc='import sys,time; b=bytearray(b"x")*(int(sys.argv[1])<<20); time.sleep(600)'
spawn() { # spawn CGROUP MIB [numactl args...]
  g=$1; mib=$2; shift 2
  sh -c "echo \$\$ > $cg/$g/cgroup.procs; exec $* python3 -c '$alloc' $mib" &
}
spawn batch.slice/job1 120
spawn batch.slice/job1 40
spawn batch.slice/job2 60
spawn system.slice/db.service 80 numactl --membind=0
sleep 8
bound=$(cat $cg/system.slice/db.service/cgroup.procs | head -n 1)
free=$(cat $cg/batch.slice/job1/cgroup.procs | head -n 1)
# fill PSI a little: a memory-limited group that thrashes briefly
mkdir -p $cg/batch.slice/tight
echo 30M > $cg/batch.slice/tight/memory.high
sh -c "echo \$\$ > $cg/batch.slice/tight/cgroup.procs; exec timeout 5 python3 -c '$alloc' 60" || true
for f in /proc/self/mountinfo /proc/pressure/memory /proc/meminfo /proc/self/status /proc/zoneinfo \
         /sys/kernel/mm/numa/demotion_enabled /proc/sys/kernel/numa_balancing \
         /sys/devices/system/node/online /sys/devices/system/node/possible \
         /sys/devices/system/node/has_cpu /sys/devices/system/node/has_memory \
         /sys/devices/system/node/has_normal_memory; do grab $f; done
for n in /sys/devices/system/node/node[0-9]*; do grab $n/meminfo; grab $n/distance; grab $n/cpulist; done
for t in /sys/devices/virtual/memory_tiering/memory_tier*; do grab $t/nodelist; done
find $cg -type d | while read -r d; do
  for f in memory.pressure memory.stat memory.numa_stat memory.current memory.low memory.min memory.high \
           cpuset.mems cpuset.mems.effective cgroup.procs cgroup.controllers cgroup.subtree_control cgroup.type; do
    grab "$d/$f"
  done
done
for p in $bound $free; do grab /proc/$p/numa_maps; grab /proc/$p/status; grab /proc/$p/cgroup; done
echo "$bound" > "$out/BOUND_PID"; echo "$free" > "$out/FREE_PID"
uname -r > "$out/KERNEL"
