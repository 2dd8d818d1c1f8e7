package esp

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/dataplane/esp/esptest"
	pcapfile "github.com/cgw-project/cgw/dataplane/packet/pcap"
	"github.com/cgw-project/cgw/internal/prereq"

	"github.com/cgw-project/cgw/crypto/transform"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-check with " + name + ": run without -short")
	}
	if err := prereq.Command(name); err != nil {
		t.Fatal(err)
	}
	return name
}

type tsharkCase struct {
	suite  transform.Suite
	udp    bool
	spi    uint32
	inners [][]byte
	outers [][]byte
	first  int // frame number (1-based) of the first outer packet
}

// TestTsharkDecryptsEncap writes Encap's packets for every suite (and UDP
// encapsulated ones) to a pcap, has tshark decrypt them with its own ESP
// implementation, and compares the decrypted inner packets byte for byte
// with what went in, and tshark's ICV verdict.
func TestTsharkDecryptsEncap(t *testing.T) {
	tshark := needTool(t, "tshark")
	dir := t.TempDir()

	var cases []*tsharkCase
	for i, s := range transform.Suites() {
		cases = append(cases, &tsharkCase{suite: s, spi: 0x1000 + uint32(i)})
	}
	for i, s := range []transform.Suite{transform.Suites()[0], transform.Suites()[len(transform.Suites())-1]} {
		cases = append(cases, &tsharkCase{suite: s, udp: true, spi: 0x2000 + uint32(i)})
	}

	var pkts [][]byte
	var sas []esptest.SA
	for _, c := range cases {
		out, _ := newPair(t, c.suite, pairOpts{udp: c.udp, spi: c.spi, dscpCopy: true})
		c.first = len(pkts) + 1
		for j, n := range []int{28, 64, 333, 1400} {
			var p []byte
			if j%2 == 1 {
				p = inner6(max(n, 48), 0x20, j)
			} else {
				p = inner4(n, 0x20, true, j)
			}
			b, off := frame(p)
			seq, _ := out.ReserveSeq(1)
			st, en, r := out.Encap(b, off, len(p), seq)
			if r != OK {
				t.Fatalf("%v: Encap: %v", c.suite, r)
			}
			c.inners = append(c.inners, p)
			c.outers = append(c.outers, b[st:en])
			pkts = append(pkts, b[st:en])
		}
		sas = append(sas, esptest.SA{Src: testSrc, Dst: testDst, SPI: c.spi, Suite: c.suite, Keymat: keymatFor(c.suite, 0x11)})
	}
	// One tampered copy per cipher family, last in the file.
	var tampered []int
	for _, c := range []*tsharkCase{cases[0], cases[2]} {
		p := append([]byte(nil), c.outers[1]...)
		p[len(p)-1] ^= 1
		pkts = append(pkts, p)
		tampered = append(tampered, len(pkts))
	}
	pcap := filepath.Join(dir, "esp.pcap")
	if err := pcapfile.WriteFile(pcap, pcapfile.LinkTypeIPv4, pkts); err != nil {
		t.Fatal(err)
	}
	// A private configuration directory holds the SA table (the esp_sa UAT)
	// and the preferences, so the user's profile plays no part.
	conf, err := esptest.WriteConfig(dir, sas)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-n", "-r", pcap, "-T", "fields", "-E", "separator=/t",
		"-e", "frame.number", "-e", "esp.spi", "-e", "esp.sequence", "-e", "esp.pad_len", "-e", "esp.protocol",
		"-e", "esp.icv_good", "-e", "esp.icv_bad", "-e", "esp.decrypted_data")
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	rows := map[int][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		f := strings.Split(line, "\t")
		var num int
		if _, err := fmt.Sscan(f[0], &num); err != nil || len(f) != 8 {
			t.Fatalf("unexpected tshark line %q", line)
		}
		rows[num] = f
	}
	if len(rows) != len(pkts) {
		t.Fatalf("tshark printed %d frames, want %d", len(rows), len(pkts))
	}
	for _, c := range cases {
		sa, _ := newPair(t, c.suite, pairOpts{udp: c.udp, spi: c.spi})
		for j, inner := range c.inners {
			num := c.first + j
			f := rows[num]
			what := fmt.Sprintf("%v udp=%v frame %d", c.suite, c.udp, num)
			if f[1] != fmt.Sprintf("%#08x", c.spi) || f[2] != fmt.Sprint(j+1) {
				t.Errorf("%s: tshark sees SPI %s seq %s, want %#08x %d", what, f[1], f[2], c.spi, j+1)
			}
			if f[5] != "1" || f[6] != "0" {
				t.Errorf("%s: tshark ICV good=%q bad=%q, want 1/0", what, f[5], f[6])
			}
			// Expected plaintext: inner, padding 1, 2, …, pad length,
			// next header (RFC 4303 §2.4).
			pad := padLen(len(inner), sa.align)
			want := append([]byte(nil), inner...)
			for k := 1; k <= pad; k++ {
				want = append(want, byte(k))
			}
			nh := byte(4)
			if inner[0]>>4 == 6 {
				nh = 41
			}
			want = append(want, byte(pad), nh)
			got, err := hex.DecodeString(f[7])
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: tshark decrypted\n%x\nwant\n%x", what, got, want)
			}
			if f[3] != fmt.Sprint(pad) || f[4] != fmt.Sprintf("%#02x", nh) {
				t.Errorf("%s: tshark pad length %s next header %s, want %d %#02x", what, f[3], f[4], pad, nh)
			}
		}
	}
	// tshark must really check: the tampered frames are reported bad.
	for _, num := range tampered {
		if f := rows[num]; f[5] != "0" || f[6] != "1" {
			t.Errorf("tampered frame %d: tshark ICV good=%q bad=%q, want 0/1", num, f[5], f[6])
		}
	}
}
