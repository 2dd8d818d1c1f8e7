#!/usr/bin/env bash
# Captures real IKEv2 exchanges between two strongSwan charons in two
# network namespaces and writes them, with the IKE SA keys charon logs at
# "ike 4", to <suite>.txt for message_real_test.go. Run as root from this
# directory: ./gen.sh. It deletes what it creates (namespaces, veths, temp
# dir) and stops only the processes it started, by pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ns_i=cgwmsg-i ns_r=cgwmsg-r
ip_i=192.0.2.201 ip_r=192.0.2.202
tmp=$(mktemp -d /tmp/cgwmsg.XXXXXX)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	ip netns del $ns_i 2>/dev/null || true
	ip netns del $ns_r 2>/dev/null || true
	if [ -z "${KEEP:-}" ]; then rm -rf "$tmp"; else echo "kept $tmp" >&2; fi
}
trap cleanup EXIT

ip netns add $ns_i
ip netns add $ns_r
ip link add cgwmsg-vi netns $ns_i type veth peer name cgwmsg-vr netns $ns_r
ip -n $ns_i addr add $ip_i/24 dev cgwmsg-vi
ip -n $ns_r addr add $ip_r/24 dev cgwmsg-vr
for n in $ns_i $ns_r; do ip -n $n link set lo up; done
ip -n $ns_i link set cgwmsg-vi up
ip -n $ns_r link set cgwmsg-vr up

conf() { # dir
	cat >"$1/strongswan.conf" <<EOT
charon {
    load = random nonce openssl aes sha1 sha2 hmac gcm kdf kernel-libipsec kernel-netlink socket-default vici
    install_routes = no
    install_virtual_ip = no
    retransmit_tries = 2
    syslog { daemon { default = -1 } }
    filelog {
        f {
            path = /run/charon.log
            default = 1
            ike = 4
            flush_line = yes
        }
    }
    plugins { vici { socket = unix:///run/charon.vici } }
}
EOT
	echo 'swanctl { load = random openssl }' >"$1/client.conf"
}

swanctl_conf() { # dir local remote proposals start
	cat >"$1/swanctl.conf" <<EOT
connections {
    t {
        version = 2
        local_addrs = $2
        remote_addrs = $3
        proposals = $4
        local { auth = psk
                id = $2 }
        remote { auth = psk
                 id = $3 }
        children {
            c {
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = aes128gcm16-noesn
                start_action = none
            }
        }
    }
}
secrets {
    ike-t {
        id-a = $ip_i
        id-b = $ip_r
        secret = "cgw.test_psk_42"
    }
}
EOT
}

run() { # suite initiator-proposals responder-proposals
	local suite=$1 d_i=$tmp/$1-i d_r=$tmp/$1-r
	mkdir -p "$d_i" "$d_r"
	conf "$d_i"; conf "$d_r"
	swanctl_conf "$d_i" $ip_i $ip_r "$2"
	swanctl_conf "$d_r" $ip_r $ip_i "$3"
	for side in i r; do
		local d=$tmp/$suite-$side ns=cgwmsg-$side
		STRONGSWAN_CONF=/run/strongswan.conf ip netns exec $ns sh -c 'mount --bind "$0" /run && exec /usr/lib/ipsec/charon' "$d" >"$d/stdout" 2>&1 &
		pids+=($!)
	done
	ip netns exec $ns_i tcpdump -Z root -U --immediate-mode -n -i cgwmsg-vi -w "$tmp/$suite.pcap" udp >"$tmp/$suite-tcpdump.log" 2>&1 &
	local tcpdump=$!
	pids+=($tcpdump)
	sleep 1 # let tcpdump attach before the first packet
	for side in i r; do
		local d=$tmp/$suite-$side
		for _ in $(seq 50); do [ -S "$d/charon.vici" ] && break; sleep 0.1; done
		STRONGSWAN_CONF=$d/client.conf swanctl --load-all --uri "unix://$d/charon.vici" --file "$d/swanctl.conf" >"$d/load.log" 2>&1
	done
	STRONGSWAN_CONF=$d_i/client.conf timeout 20 swanctl --initiate --child c --uri "unix://$d_i/charon.vici" >"$tmp/$suite-initiate.log" 2>&1 || true
	STRONGSWAN_CONF=$d_i/client.conf timeout 20 swanctl --terminate --ike t --uri "unix://$d_i/charon.vici" >/dev/null 2>&1 || true
	sleep 0.5
	kill -INT $tcpdump; wait $tcpdump || true
	local out=$here/$suite.txt
	{
		echo "# strongSwan $(/usr/lib/ipsec/charon --version 2>/dev/null | head -1 || true) between $ip_i (initiator) and $ip_r, captured by gen.sh"
		echo "# initiator proposals: $2; responder proposals: $3; PSK cgw.test_psk_42"
		# The last derivation in the log is the IKE SA that completed:
		# g^ir and every SK_* (RFC 7296 §2.14), for key-schedule tests.
		python3 - "$d_i/charon.log" <<'PY'
import re, sys
keys = {}
lines = open(sys.argv[1]).read().splitlines()
for i, l in enumerate(lines):
    m = re.search(r'(Sk_[a-z]+|shared Diffie Hellman) secret => (\d+) bytes', l)
    if not m:
        continue
    name = 'g_ir' if m.group(1).startswith('shared') else m.group(1).lower()
    n, hexs = int(m.group(2)), ''
    for l2 in lines[i+1:]:
        d = re.match(r'.*?\s+\d+: ((?:[0-9A-F]{2} ){1,16})', l2)
        if not d or len(hexs) >= 2*n:
            break
        hexs += d.group(1).replace(' ', '')
    keys[name] = hexs[:2*n].lower()
for k in ('g_ir', 'sk_d', 'sk_ai', 'sk_ar', 'sk_ei', 'sk_er', 'sk_pi', 'sk_pr'):
    print(k, keys.get(k, ''))
PY
		tshark -n -r "$tmp/$suite.pcap" -T fields -e ip.src -e udp.srcport -e ip.dst -e udp.dstport -e udp.payload 2>/dev/null |
			awk '{print "msg", $1, $2, $3, $4, $5}'
	} >"$out"
	echo "wrote $out ($(grep -c '^msg' "$out") messages)"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	pids=()
}

run cbc "aes128gcm16-prfsha256-ecp256,aes256-sha256-modp2048" "aes256-sha256-modp2048"
run gcm "aes128gcm16-prfsha256-ecp256,aes256-sha256-modp2048" "aes128gcm16-prfsha256-ecp256"
