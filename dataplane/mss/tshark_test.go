package mss

import (
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

// TestTsharkAgrees has an independent dissector confirm, for clamped IPv4
// and IPv6 SYNs with varied option layouts, that the MSS value is the
// limit and the TCP checksum is good.
func TestTsharkAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("independent check: needs tshark; run without -short")
	}
	if err := prereq.Command("tshark"); err != nil {
		t.Fatal(err)
	}
	tshark := "tshark"
	r := rand.New(rand.NewPCG(5, 6))
	var pkts [][]byte
	var want []uint16
	for i := range 200 {
		s := synSpec{v6: i%2 == 1, flags: 0x02}
		if i%3 == 0 {
			s.flags |= 0x10
		}
		limit := uint16(1379)
		if s.v6 {
			limit = 1359
			if i%4 == 1 {
				s.ext, s.extFirst = ipv6Ext(false, 0) // tshark does not dissect TCP in a lone first fragment
			}
		} else if i%4 == 0 {
			s.ipOpts = []byte{0x94, 4, 0, 0}
		}
		s.tcpOpts = randomOpts(r, limit+1+uint16(r.IntN(60000)))
		s.payload = make([]byte, r.IntN(40))
		for j := range s.payload {
			s.payload[j] = byte(r.Uint32())
		}
		pkt := buildSYN(s)
		if i%10 == 0 && len(s.payload) >= 2 {
			forceChecksum(pkt, 0)
		}
		if res := Clamp(pkt, 1379, 1359); res != Clamped {
			t.Fatalf("packet %d: %v", i, res)
		}
		pkts = append(pkts, pkt)
		want = append(want, limit)
	}
	path := filepath.Join(t.TempDir(), "clamped.pcap")
	if d := os.Getenv("MSS_PCAP"); d != "" {
		path = d
	}
	if err := pcap.WriteFile(path, pcap.LinkTypeRaw, pkts); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tshark, "-r", path, "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-e", "tcp.options.mss_val", "-e", "tcp.checksum.status").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(pkts) {
		t.Fatalf("tshark printed %d lines for %d packets:\n%s", len(lines), len(pkts), out)
	}
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 2 {
			t.Fatalf("packet %d: tshark line %q", i, l)
		}
		if mss, err := strconv.Atoi(f[0]); err != nil || uint16(mss) != want[i] {
			t.Fatalf("packet %d: tshark MSS %q, want %d", i, f[0], want[i])
		}
		if f[1] != "1" { // 1 = good, 0 = bad, 2 = unverified
			t.Fatalf("packet %d: tshark checksum status %q, want 1 (good)\n% x", i, f[1], pkts[i])
		}
	}
	t.Logf("tshark: %d clamped SYNs, MSS and checksum good", len(pkts))
}
