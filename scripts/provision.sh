#!/usr/bin/env bash
# Installs everything tierd needs to build, test and run its two-tier lab on a fresh
# Debian bookworm machine. Idempotent: each step checks before it acts. Run as root.
#
#   scripts/provision.sh                  build deps + lab (qemu, both lab kernels, virtme-ng)
#   scripts/provision.sh --kernels lts    the same with one lab kernel (lts, newest or both)
#   scripts/provision.sh --build          only what `swift build` / unit tests need
#
# Everything downloaded for the lab lives in .lab-cache/ (ignored by git). The system's
# apt sources are left alone: the backports kernel comes through a private sources list.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.lab-cache"
log() { printf 'provision: %s\n' "$*" >&2; }
mode="${1:-all}"
# Which lab kernels: lts, newest or both (the test command's default); `--kernels K` or TIERLAB_KERNELS.
kernels="${TIERLAB_KERNELS:-both}"
if [ "$mode" = "--kernels" ]; then kernels="${2:?--kernels lts|newest|both}"; mode=all; fi
case "$kernels" in lts|newest|both) ;; *) log "unknown kernels '$kernels': lts, newest or both"; exit 2 ;; esac


need_pkgs=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$1"); }

apt_updated=0
apt_update_once() { [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }; }

for p in libnuma-dev libcgroup-dev numactl systemd util-linux; do want "$p"; done
if [ "$mode" != "--build" ]; then
  for p in qemu-system-x86 qemu-utils kmod python3-venv busybox-static gnuplot-nox strace python3-seccomp curl bash-completion; do want "$p"; done
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
[ "$mode" = "--build" ] && { log "build dependencies present"; exit 0; }

mkdir -p "$cache"

# --- the lab kernels ---------------------------------------------------------------------
# lts: Debian bookworm-backports' linux-image-6.12 (unsigned); newest: the newest series that
# trixie-backports packages, image and modules as linux-binary-* and linux-modules-* (the
# linux-image-* of that suite is only a metapackage). Each series is named here and moved on
# purpose; the newest build of it is taken, as mirrors drop superseded builds.
lts_series="6.12"
newest_series="7.3"

# fetch_kernel LABEL SUITE PACKAGE-REGEX...: the newest build matching the first regex, and the
# packages of the same version the others name, extracted into $cache/kernels/LABEL; its version
# goes to $cache/kernels/LABEL.version and its modules to /lib/modules (virtme-ng loads the
# guest's 9p/virtio modules from the host's /lib/modules/VERSION).
fetch_kernel() {
  local label=$1 suite=$2; shift 2
  local kdir="$cache/kernels/$label" stamp="$cache/kernels/$label.version"
  if [ ! -s "$stamp" ] || [ ! -e "$kdir/vmlinuz" ]; then
    log "fetching the $label kernel from $suite"
    local aptdir="$cache/apt-$suite"
    mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
    printf 'deb http://deb.debian.org/debian %s main\n' "$suite" > "$aptdir/sources.list"
    local aptopts=(-o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Dir::Etc::sourceparts=-"
             -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache::Archives=$aptdir/archives"
             -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Get::List-Cleanup=0"
             -o "APT::Sandbox::User=root")
    apt-get "${aptopts[@]}" update -qq
    local first pkgs=() version
    first=$(apt-cache "${aptopts[@]}" search --names-only "$1" | awk '{print $1}' | sort -V | tail -n 1)
    [ -n "$first" ] || { log "no package matching $1 in $suite"; exit 1; }
    version=$(printf '%s\n' "$first" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64')
    pkgs+=("$first")
    shift
    for prefix in "$@"; do pkgs+=("$prefix-$version"); done
    rm -f "$aptdir"/archives/*.deb
    (cd "$aptdir/archives" && apt-get "${aptopts[@]}" download "${pkgs[@]}" >/dev/null)
    rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp/root"
    for deb in "$aptdir"/archives/*.deb; do dpkg-deb -x "$deb" "$kdir.tmp/root"; done
    rm -f "$aptdir"/archives/*.deb
    # bookworm: boot/vmlinuz-VERSION and lib/modules/VERSION; trixie (merged /usr):
    # usr/lib/modules/VERSION/vmlinuz with the modules beside it.
    local mods
    mods=$(ls -d "$kdir.tmp/root"/lib/modules/"$version" "$kdir.tmp/root"/usr/lib/modules/"$version" 2>/dev/null | head -n 1 || true)
    [ -n "$mods" ] || { log "no modules for $version in ${pkgs[*]}"; exit 1; }
    mv "$mods" "$kdir.tmp/modules"
    if [ -e "$kdir.tmp/modules/vmlinuz" ]; then mv "$kdir.tmp/modules/vmlinuz" "$kdir.tmp/vmlinuz"
    else mv "$kdir.tmp/root/boot/vmlinuz-$version" "$kdir.tmp/vmlinuz"; fi
    rm -rf "$kdir.tmp/root" "$kdir" && mv "$kdir.tmp" "$kdir"
    echo "$version" > "$stamp"
  fi
  local kver
  kver=$(cat "$stamp")
  if [ ! -e "/lib/modules/$kver/modules.dep" ]; then
    log "installing modules for $kver under /lib/modules"
    mkdir -p /lib/modules
    rm -rf "/lib/modules/$kver"
    cp -a "$kdir/modules" "/lib/modules/$kver"
    depmod "$kver"
  fi
  log "$label kernel: $kver"
}

mkdir -p "$cache/kernels"
case "$kernels" in lts|both) fetch_kernel lts bookworm-backports "^linux-image-${lts_series//./\\.}\.[0-9]+\+deb12-amd64-unsigned$" ;; esac
case "$kernels" in newest|both) fetch_kernel newest trixie-backports "^linux-binary-${newest_series//./\\.}\.[0-9]+\+deb13-amd64$" linux-modules ;; esac

# --- virtme-ng in a venv ---------------------------------------------------------------
venv="$cache/venv"
if [ ! -x "$venv/bin/vng" ]; then
  log "installing virtme-ng into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check virtme-ng
fi
log "lab ready ($kernels kernels), $("$venv/bin/vng" --version 2>&1 | head -n 1)"
