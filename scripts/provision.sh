#!/usr/bin/env bash
# Installs everything tierd needs to build, test and run its two-tier lab on a fresh
# Debian bookworm machine. Idempotent: each step checks before it acts. Run as root.
#
#   scripts/provision.sh            build deps + lab (qemu, 6.12 kernel, virtme-ng)
#   scripts/provision.sh --build    only what `swift build` / unit tests need
#
# Everything downloaded for the lab lives in .lab-cache/ (ignored by git). The system's
# apt sources are left alone: the backports kernel comes through a private sources list.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.lab-cache"
kernel_series="6.12"
mode="${1:-all}"

log() { printf 'provision: %s\n' "$*" >&2; }

need_pkgs=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$1"); }

apt_updated=0
apt_update_once() { [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }; }

for p in libnuma-dev libcgroup-dev numactl systemd util-linux; do want "$p"; done
if [ "$mode" != "--build" ]; then
  for p in qemu-system-x86 qemu-utils kmod python3-venv busybox-static gnuplot-nox strace python3-seccomp; do want "$p"; done
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
[ "$mode" = "--build" ] && { log "build dependencies present"; exit 0; }

mkdir -p "$cache"

# --- the lab kernel: Debian bookworm-backports linux-image-6.12 (unsigned) -------------
kdir="$cache/kernel"
if ! ls "$kdir"/boot/vmlinuz-${kernel_series}.*+deb12-amd64 >/dev/null 2>&1; then
  log "fetching the ${kernel_series} kernel from bookworm-backports"
  aptdir="$cache/apt"
  mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
  printf 'deb http://deb.debian.org/debian bookworm-backports main\n' > "$aptdir/sources.list"
  aptopts=(-o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Dir::Etc::sourceparts=-"
           -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache::Archives=$aptdir/archives"
           -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Get::List-Cleanup=0"
           -o "APT::Sandbox::User=root")
  apt-get "${aptopts[@]}" update -qq
  pkg=$(apt-cache "${aptopts[@]}" search --names-only "^linux-image-${kernel_series}\.[0-9.]+\+deb12-amd64-unsigned$" \
        | awk '{print $1}' | sort -V | tail -n 1)
  [ -n "$pkg" ] || { log "no linux-image-${kernel_series}*-amd64-unsigned in bookworm-backports"; exit 1; }
  (cd "$aptdir/archives" && apt-get "${aptopts[@]}" download "$pkg" >/dev/null)
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
  dpkg-deb -x "$aptdir/archives/${pkg}"_*.deb "$kdir.tmp"
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
  rm -f "$aptdir"/archives/*.deb
fi
kver=$(basename "$(ls -d "$kdir"/lib/modules/* | head -n 1)")
# virtme-ng loads the guest's 9p/virtio modules from the host's /lib/modules/$kver.
if [ ! -e "/lib/modules/$kver/modules.dep" ]; then
  log "installing modules for $kver under /lib/modules"
  mkdir -p /lib/modules
  rm -rf "/lib/modules/$kver"
  cp -a "$kdir/lib/modules/$kver" "/lib/modules/$kver"
  depmod "$kver"
fi
echo "$kver" > "$cache/kernel-version"

# --- virtme-ng in a venv ---------------------------------------------------------------
venv="$cache/venv"
if [ ! -x "$venv/bin/vng" ]; then
  log "installing virtme-ng into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check virtme-ng
fi
log "lab ready: kernel $kver, $("$venv/bin/vng" --version 2>&1 | head -n 1)"
