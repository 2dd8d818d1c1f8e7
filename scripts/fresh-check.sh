#!/usr/bin/env bash
# Runs the README's commands on a machine that never ran this project: a
# fresh Debian 12 (debootstrap, minbase) with what every new machine of
# ours has (Go in /usr/local/go, make, git, gcc) and nothing else; a
# clean clone of this checkout inside it; then `make demo` (or `make test`)
# as root. It catches a package install-deps.sh does not name, which a
# machine that ran the project before hides.
#   scripts/fresh-check.sh [demo|test] [DIR]   (default: demo, /var/tmp/cgw-fresh)
# DIR is kept between runs (debootstrap once); delete it to start over.
set -euo pipefail
target=${1:-demo}
root=${2:-/var/tmp/cgw-fresh}
repo=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '==> %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "fresh-check: needs root (debootstrap, chroot, namespaces)" >&2
	exit 1
fi
case $target in demo | test) ;; *)
	echo "fresh-check: target $target: want demo or test" >&2
	exit 2
	;;
esac
if ! command -v debootstrap >/dev/null; then
	say "installing debootstrap (Debian package debootstrap)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
if [ ! -e "$root/.cgw-base" ]; then
	rm -rf "$root"
	say "debootstrap bookworm (minbase) into $root from $mirror"
	# The base every new machine of ours has: make, git, gcc (cgo) and
	# certificates; Go is copied from /usr/local/go below.
	debootstrap --variant=minbase --include=make,git,gcc,libc6-dev,ca-certificates,sudo bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
		{ tail -20 "$root.log"; exit 1; }
	cp -a /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/" 2>/dev/null && rm -f "$root/etc/apt/sources.list" || true
	cp -a /etc/apt/apt.conf.d/99artifact-registry "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
	goroot=$(go env GOROOT 2>/dev/null || echo /usr/local/go)
	say "copying Go ($("$goroot/bin/go" version)) to $root/usr/local/go"
	mkdir -p "$root/usr/local"
	cp -a "$goroot" "$root/usr/local/go"
	touch "$root/.cgw-base"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The site's own certificate authorities (an egress proxy's, say), as a
# new machine on this network has them.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
	chroot "$root" update-ca-certificates >/dev/null
fi
rm -rf "$root/root/cgw"
say "clean clone of $(git -C "$repo" rev-parse --short HEAD) into $root/root/cgw"
git clone -q "$repo" "$root/root/cgw"
# What runs inside: the README command, then (demo) the lab taken down, so
# no daemon outlives the check.
cat >"$root/root/fresh-run.sh" <<'RUN'
#!/bin/bash
umount -l /.oldroot
cd /root/cgw
rc=0
make "$1" || rc=$?
if [ "$1" = demo ]; then make lab-down >/dev/null 2>&1 || echo "fresh-check: make lab-down failed" >&2; fi
exit $rc
RUN
chmod +x "$root/root/fresh-run.sh"

# Its own mount namespace: /proc, /sys, bpffs, /dev and /run go away when
# it ends. Network namespaces are the host kernel's, as on a real machine.
say "running make $target in the fresh tree"
unshare --mount --propagation private -- bash -euo pipefail -c '
	root=$1 target=$2
	# The new tree becomes the root of this mount namespace (pivot_root, not
	# chroot: the lab enters its own mount namespace with nsenter --mount,
	# which resets the root to that of the namespace).
	mount --bind "$root" "$root"
	mount -t proc proc "$root/proc"
	mount -t sysfs sys "$root/sys"
	mount -t bpf bpf "$root/sys/fs/bpf"
	mount -t tmpfs run "$root/run"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs tmp "$root/tmp"
	mkdir -p "$root/.oldroot"
	cd "$root"
	pivot_root . .oldroot
	exec /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin \
		GOPROXY="$3" GOFLAGS="$4" \
		/root/fresh-run.sh "$target"
' fresh "$root" "$target" "$(go env GOPROXY)" "$(go env GOFLAGS)"
say "make $target passed on a fresh Debian 12"
