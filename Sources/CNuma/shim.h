#ifndef TIERD_CNUMA_SHIM_H
#define TIERD_CNUMA_SHIM_H
#include <numa.h>
#include <numaif.h>
#include <errno.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/vfs.h>
#include <malloc.h>

/* Raises or lowers one capability in the calling thread's effective set only (capabilities are
   per thread on Linux; the raw system call does not broadcast to other threads the way glibc's
   set*id wrappers do). Stores whether it was raised before in *was_raised. Returns 0, or -1 with
   errno set. Raising only succeeds for a capability in the permitted set. */
static inline int tierd_set_thread_capability(int capability, int raised, int *was_raised) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (capability < 0 || capability >= 32 * _LINUX_CAPABILITY_U32S_3) { errno = EINVAL; return -1; }
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    unsigned word = (unsigned)capability / 32, bit = 1u << ((unsigned)capability % 32);
    *was_raised = (data[word].effective & bit) != 0;
    if (raised) data[word].effective |= bit; else data[word].effective &= ~bit;
    if (((data[word].effective & bit) != 0) == (*was_raised != 0)) return 0;
    return syscall(SYS_capset, &header, data) == 0 ? 0 : -1;
}

/* Lists a directory's entries into buf as struct linux_dirent64 records (getdents64(2), which
   glibc before 2.30 does not wrap); returns the bytes filled, 0 at the end, or -1 with errno set. */
static inline long tierd_getdents64(int fd, void *buf, unsigned long length) {
    return syscall(SYS_getdents64, fd, buf, length);
}

/* A CPU affinity mask for the raw sched_{get,set}affinity system calls (1,024 CPUs), which act
   on the calling thread alone when given pid 0. */
typedef struct { unsigned long bits[1024 / (8 * sizeof(unsigned long))]; } tierd_cpu_mask;

/* Confines the calling thread to one CPU, saving its previous affinity in *saved; returns 0, or
   -1 with errno set (EINVAL: the CPU is outside the thread's cpuset or offline). */
static inline int tierd_pin_thread(int cpu, tierd_cpu_mask *saved) {
    tierd_cpu_mask one = {{0}};
    const int per_word = 8 * (int)sizeof(unsigned long);
    if (cpu < 0 || cpu >= 1024) { errno = EINVAL; return -1; }
    *saved = one;
    if (syscall(SYS_sched_getaffinity, 0, sizeof(tierd_cpu_mask), saved->bits) < 0) return -1;
    one.bits[cpu / per_word] = 1UL << (cpu % per_word);
    return syscall(SYS_sched_setaffinity, 0, sizeof(tierd_cpu_mask), one.bits) == 0 ? 0 : -1;
}

/* Reads the calling thread's affinity. */
static inline int tierd_read_affinity(tierd_cpu_mask *mask) {
    tierd_cpu_mask empty = {{0}};
    *mask = empty;
    return syscall(SYS_sched_getaffinity, 0, sizeof(tierd_cpu_mask), mask->bits) < 0 ? -1 : 0;
}

/* Restores an affinity saved by tierd_pin_thread. */
static inline int tierd_restore_thread(const tierd_cpu_mask *saved) {
    return syscall(SYS_sched_setaffinity, 0, sizeof(tierd_cpu_mask), saved->bits) == 0 ? 0 : -1;
}

/* The CPU the calling thread runs on now, or -1. */
static inline int tierd_current_cpu(void) {
    unsigned cpu = 0;
    return syscall(SYS_getcpu, &cpu, NULL, NULL) == 0 ? (int)cpu : -1;
}

/* Whether fd is a file of a cgroup2 mount (statfs f_type CGROUP2_SUPER_MAGIC): 1, 0, or -1 with errno set. */
static inline int tierd_is_on_cgroup2(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return -1;
    return info.f_type == 0x63677270 ? 1 : 0;
}

/* The calling thread's id, for per-thread setpriority(2). */
static inline int tierd_gettid(void) { return (int)syscall(SYS_gettid); }
#endif
