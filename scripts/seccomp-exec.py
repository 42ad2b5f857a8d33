#!/usr/bin/python3
"""Run a command under a Kubernetes (OCI) seccomp profile, as a container runtime would.

    seccomp-exec.py PROFILE.json -- COMMAND [ARG...]

The lab uses it to run tierd and tierctl as the DaemonSet does. The filter is the profile's
own: its default action for every system call it does not list, SCMP_ACT_ALLOW for those it
does. One addition: the kernel is asked to log each refusal (the filter's log flag), so a
system call the profile misses shows in the kernel log as an audit record of type 1326
instead of vanishing into an EPERM. Debian's python3-seccomp (libseccomp) builds the filter.
"""
import json
import os
import sys

import seccomp

ACTIONS = {"SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_LOG": seccomp.LOG,
           "SCMP_ACT_KILL_PROCESS": seccomp.KILL_PROCESS, "SCMP_ACT_KILL": seccomp.KILL}
ARCHES = {"SCMP_ARCH_X86_64": seccomp.Arch.X86_64, "SCMP_ARCH_AARCH64": seccomp.Arch.AARCH64}


def action(name, errno_ret):
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno_ret)
    if name not in ACTIONS:
        sys.exit(f"seccomp-exec: unsupported action {name}")
    return ACTIONS[name]


def build_filter(profile):
    errno_ret = profile.get("defaultErrnoRet", 1)
    rules = seccomp.SyscallFilter(defaction=action(profile["defaultAction"], errno_ret))
    rules.set_attr(seccomp.Attr.CTL_LOG, 1)
    for arch in profile.get("architectures", []):
        if arch not in ARCHES:
            sys.exit(f"seccomp-exec: unsupported architecture {arch}")
        if not rules.exist_arch(ARCHES[arch]):
            rules.add_arch(ARCHES[arch])
    for entry in profile.get("syscalls", []):
        verdict = action(entry["action"], entry.get("errnoRet", errno_ret))
        for name in entry["names"]:
            try:
                rules.add_rule(verdict, name)
            except (RuntimeError, ValueError) as error:
                sys.exit(f"seccomp-exec: {name}: {error}")
    return rules


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: seccomp-exec.py PROFILE.json -- COMMAND [ARG...]")
    with open(argv[1], encoding="utf-8") as file:
        profile = json.load(file)
    build_filter(profile).load()
    os.execv(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv)
