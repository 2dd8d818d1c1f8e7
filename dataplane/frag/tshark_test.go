package frag

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/dataplane/packet/pcap"
	"github.com/cgw-project/cgw/internal/prereq"
)

// TestTsharkAgrees has an independent dissector reassemble our fragments
// of UDP datagrams (with options, various MTUs) and check the IP header
// checksums, the reassembled UDP length and checksum, and the type, code,
// checksum and MTU of our ICMP and ICMPv6 errors.
func TestTsharkAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("independent check: needs tshark; run without -short")
	}
	if err := prereq.Command("tshark"); err != nil {
		t.Fatal(err)
	}
	tshark := "tshark"
	r := rand.New(rand.NewPCG(31, 32))
	f := newF(t, Config{})
	var pkts [][]byte
	type want struct {
		kind   string // "frag", "last", "icmp", "icmp6"
		udpLen int
	}
	var wants []want
	for i := range 60 {
		mtu := []int{1399, 576, 68 + r.IntN(1400)}[i%3]
		size := 1400 + r.IntN(6000)
		var opts []byte
		if i%2 == 0 {
			opts = randomOptions(r)
		}
		orig := build4(r, pkt4Spec{opts: opts, payload: size, id: uint16(1000 + i)})
		out := frames(Need(orig, mtu), mtu)
		first, n, err := Split(orig, mtu, out)
		if err != nil || n == 0 {
			t.Fatalf("datagram %d: %v (%d fragments)", i, err, n)
		}
		pkts = append(pkts, orig[:first])
		wants = append(wants, want{kind: "frag"})
		for j := range n {
			pkts = append(pkts, out[j])
			k := "frag"
			if j == n-1 {
				k = "last"
			}
			wants = append(wants, want{kind: k, udpLen: size})
		}
	}
	for i := range 10 {
		orig := build4(r, pkt4Spec{payload: 1400 + 300*i, df: true})
		out := frames(1, 576)
		if _, _, res := f.Packet(orig, out); res != FragNeeded {
			t.Fatalf("ICMP %d: %v", i, res)
		}
		pkts = append(pkts, out[0])
		wants = append(wants, want{kind: "icmp"})
		orig6 := build6(r, src6, 17, nil, 1400+300*i, 0)
		// A real UDP header so tshark can dissect the quoted packet.
		binary.BigEndian.PutUint16(orig6[44:], uint16(1400+300*i))
		out = frames(1, 1280)
		if _, _, res := f.Packet(orig6, out); res != PacketTooBig {
			t.Fatalf("ICMPv6 %d: %v", i, res)
		}
		pkts = append(pkts, out[0])
		wants = append(wants, want{kind: "icmp6"})
	}
	path := filepath.Join(t.TempDir(), "frag.pcap")
	if p := os.Getenv("FRAG_PCAP"); p != "" {
		path = p
	}
	if err := pcap.WriteFile(path, pcap.LinkTypeRaw, pkts); err != nil {
		t.Fatal(err)
	}
	fields := []string{"ip.checksum.status", "ip.reassembled.length", "udp.length", "udp.checksum.status",
		"icmp.type", "icmp.code", "icmp.checksum.status", "icmp.mtu", "icmpv6.type", "icmpv6.checksum.status", "icmpv6.mtu"}
	args := []string{"-r", path, "-o", "ip.defragment:TRUE", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=,", "-E", "occurrence=f"}
	for _, fl := range fields {
		args = append(args, "-e", fl)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(pkts) {
		t.Fatalf("tshark printed %d lines for %d packets", len(lines), len(pkts))
	}
	var reassembled, icmps, icmp6s int
	for i, l := range lines {
		v := strings.Split(l, ",")
		if len(v) != len(fields) {
			t.Fatalf("packet %d: tshark line %q", i, l)
		}
		get := func(name string) string {
			for j, fl := range fields {
				if fl == name {
					return v[j]
				}
			}
			panic(name)
		}
		w := wants[i]
		switch w.kind {
		case "frag", "last", "icmp":
			if get("ip.checksum.status") != "1" {
				t.Fatalf("packet %d (%s): IP header checksum status %q, want 1 (good)", i, w.kind, get("ip.checksum.status"))
			}
		}
		switch w.kind {
		case "last":
			if get("udp.length") != strconv.Itoa(w.udpLen) || get("udp.checksum.status") != "1" || get("ip.reassembled.length") != strconv.Itoa(w.udpLen) {
				t.Fatalf("packet %d: tshark reassembled %q bytes, UDP length %q checksum %q; want %d bytes, good checksum", i,
					get("ip.reassembled.length"), get("udp.length"), get("udp.checksum.status"), w.udpLen)
			}
			reassembled++
		case "icmp":
			if get("icmp.type") != "3" || get("icmp.code") != "4" || get("icmp.checksum.status") != "1" || get("icmp.mtu") != "1399" {
				t.Fatalf("packet %d: ICMP %s", i, l)
			}
			icmps++
		case "icmp6":
			if get("icmpv6.type") != "2" || get("icmpv6.checksum.status") != "1" || get("icmpv6.mtu") != "1399" {
				t.Fatalf("packet %d: ICMPv6 %s", i, l)
			}
			icmp6s++
		}
	}
	t.Logf("tshark reassembled %d datagrams from %d packets with good checksums; %d ICMP and %d ICMPv6 errors with good checksums and MTU 1399",
		reassembled, len(pkts)-icmps-icmp6s, icmps, icmp6s)
}
