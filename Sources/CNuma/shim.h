#ifndef TIERD_CNUMA_SHIM_H
#define TIERD_CNUMA_SHIM_H
#include <numa.h>
#include <numaif.h>
#include <errno.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* The calling thread's id, for per-thread setpriority(2). */
static inline int tierd_gettid(void) { return (int)syscall(SYS_gettid); }
#endif
