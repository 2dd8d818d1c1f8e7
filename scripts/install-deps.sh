#!/usr/bin/env bash
# Installs what cgw's tests, lab and demo need on Debian 12, saying what it
# does. Idempotent: packages already present are left alone.
#   scripts/install-deps.sh [test|demo|generate]
set -euo pipefail
need=${1:-test}

say() { printf '==> %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "cgw: the lab and the end-to-end tests need root (network namespaces, XDP, BPF maps). Run as root." >&2
	exit 1
fi

# Debian packages, each for a reason:
#   iproute2                 ip netns / veth / routes for the lab
#   procps                   sysctl: forwarding and rp_filter in the lab's namespaces
#                            (minimal Debian images lack it)
#   strongswan-charon, strongswan-swanctl, libcharon-extra-plugins
#                            the emulated AWS endpoints (charon + swanctl);
#                            kernel-libipsec is in the extra plugins: this
#                            kernel has no ESP
#   libstrongswan-standard-plugins  openssl and gcm: MODP/ECP groups and AES-GCM
#                            for charon (without them it refuses MODP-2048)
#   libstrongswan-extra-plugins  curve25519 (DH group 31) for the AWS side
#   bird2                    the emulated virtual private gateway's BGP
#   iperf3 iputils-ping      traffic through the lab
#   tshark python3-scapy     independent decryption/encryption of our ESP
#   python3-cryptography     scapy's AES-GCM, AES-CBC and HMACs (a Recommends
#                            of python3-scapy: without it scapy has only NULL)
#   tcpdump                  looking at the wire
#   ethtool                  switching checksum offload off on lab veths
#   curl                     scraping the metrics endpoints in end-to-end tests
#   prometheus               promtool and prometheus check perf/'s rules and dashboards' queries
#   nftables                 source NAT in the lab's inet namespace (NAT-T)
#   systemd                  systemd-analyze verify checks packaging/systemd's units
#   groff-base               groff renders packaging/man's pages, warnings fail the test
#                            (minimal Debian images lack it)
pkgs=(iproute2 procps strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins libstrongswan-extra-plugins bird2
	iperf3 iputils-ping tshark python3-scapy python3-cryptography tcpdump ethtool nftables curl prometheus systemd groff-base)
if [ "$need" = generate ]; then
	pkgs+=(clang llvm libbpf-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer no.
	echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	say "Debian packages present: ${pkgs[*]}"
fi

# strongSwan's, BIRD's and Prometheus' packages may start system-wide daemons
# where an init system runs; the lab and tests start their own and need none.
for svc in strongswan-starter strongswan bird prometheus; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		say "stopping the system-wide $svc service (the lab runs its own daemons)"
		systemctl stop "$svc" || true
	fi
done

if ! command -v go >/dev/null 2>&1; then
	[ -x /usr/local/go/bin/go ] && export PATH=$PATH:/usr/local/go/bin
fi
command -v go >/dev/null 2>&1 || { echo "cgw: Go 1.26 or later is needed (not found on PATH or in /usr/local/go)" >&2; exit 1; }
say "fetching Go modules through the module proxy (go mod download)"
go mod download
