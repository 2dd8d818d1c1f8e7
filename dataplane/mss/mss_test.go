package mss

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// mssValue finds the MSS option of a test packet built by buildSYN.
func mssValue(pkt []byte) (uint16, int) {
	start, _ := tcpOffsets(pkt)
	seg := pkt[start:]
	doff := int(seg[12]>>4) * 4
	for i := 20; i < doff; {
		switch seg[i] {
		case 0:
			return 0, -1
		case 1:
			i++
			continue
		}
		if seg[i] == 2 {
			return binary.BigEndian.Uint16(seg[i+2:]), i
		}
		i += int(seg[i+1])
	}
	return 0, -1
}

// TestClampMatchesFullChecksum is the property test: over many random
// SYNs and SYN-ACKs (IPv4 with and without options, IPv6 with and without
// extension headers, MSS at even and odd offsets), the incrementally
// updated checksum equals a full recomputation, and packets needing no
// change are left byte for byte.
func TestClampMatchesFullChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c, err := New(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 20000
	if testing.Short() {
		n = 3000
	}
	var clamped, odd int
	for i := range n {
		s := synSpec{v6: r.IntN(2) == 0, flags: 0x02}
		if r.IntN(2) == 0 {
			s.flags |= 0x10 // SYN-ACK
		}
		limit := c.limit4
		if s.v6 {
			limit = c.limit6
			if r.IntN(2) == 0 {
				s.ext, s.extFirst = ipv6Ext(r.IntN(2) == 0, 0)
			}
		} else if r.IntN(2) == 0 {
			// NOP, NOP, router alert (copied), padded: 8 bytes.
			s.ipOpts = []byte{1, 1, 0x94, 4, 0, 0, 1, 0}[:4*(1+r.IntN(2))]
		}
		orig := randomMSS(r, limit)
		s.tcpOpts = randomOpts(r, orig)
		s.payload = make([]byte, r.IntN(64))
		for j := range s.payload {
			s.payload[j] = byte(r.Uint32())
		}
		pkt := buildSYN(s)
		// Every few packets, force the original checksum to 0x0000 or
		// 0xFFFF-equivalent edge values by adjusting the first payload
		// word so the sum hits them (RFC 1624 §3 cases).
		if len(s.payload) >= 2 && i%5 == 0 {
			forceChecksum(pkt, uint16(i%2)*0xffff)
		}
		before := append([]byte(nil), pkt...)
		res := Clamp(pkt, c.limit4, c.limit6)
		got, off := mssValue(pkt)
		if orig > limit {
			if res != Clamped || got != limit {
				t.Fatalf("packet %d: MSS %d limit %d: result %v, MSS now %d", i, orig, limit, res, got)
			}
			clamped++
			if off%2 == 1 {
				odd++
			}
			start, _ := tcpOffsets(pkt)
			if have, want := binary.BigEndian.Uint16(pkt[start+16:]), fullTCPChecksum(pkt); have != want {
				t.Fatalf("packet %d (v6=%v, MSS at odd offset=%v, %d→%d): incremental checksum %#04x, full recomputation %#04x\n% x",
					i, s.v6, off%2 == 1, orig, limit, have, want, before)
			}
			// Only the MSS value and the checksum changed.
			diff := 0
			for j := range pkt {
				if pkt[j] != before[j] {
					diff++
				}
			}
			if diff > 4 {
				t.Fatalf("packet %d: %d bytes changed, want at most 4", i, diff)
			}
		} else {
			if res != WithinMSS {
				t.Fatalf("packet %d: MSS %d ≤ limit %d: result %v", i, orig, limit, res)
			}
			if !bytes.Equal(pkt, before) {
				t.Fatalf("packet %d: changed though MSS within limit", i)
			}
		}
	}
	if clamped < n/3 || odd == 0 {
		t.Fatalf("weak sample: %d of %d clamped, %d at an odd offset", clamped, n, odd)
	}
}

// forceChecksum changes the first payload word so that the packet's
// correct TCP checksum field becomes want (0x0000 or 0xFFFF; 0xFFFF is
// not what a full computation emits, so it is reached by editing the
// field directly: both are valid encodings of one's-complement zero sum).
func forceChecksum(pkt []byte, want uint16) {
	start, end := tcpOffsets(pkt)
	seg := pkt[start:end]
	doff := int(seg[12]>>4) * 4
	w := doff // first payload word (doff is a multiple of 4)
	binary.BigEndian.PutUint16(seg[w:], 0)
	setTCPChecksum(pkt)
	// With the word zero the checksum is c; adding x to the data
	// subtracts x from the checksum, so x = c makes it 0 (one's
	// complement: the full computation then yields 0x0000).
	c := binary.BigEndian.Uint16(seg[16:])
	binary.BigEndian.PutUint16(seg[w:], c)
	setTCPChecksum(pkt)
	if want == 0xffff && binary.BigEndian.Uint16(seg[16:]) == 0 {
		binary.BigEndian.PutUint16(seg[16:], 0xffff)
	}
}

// TestUpdateEdgeCases checks RFC 1624's own example and the boundary
// values by brute force against a recomputation over a two-word buffer.
func TestUpdateEdgeCases(t *testing.T) {
	// RFC 1624 §4: HC=0xDD2F, m=0x5555, m'=0x3285 gives HC'=0x0000.
	if got := Update(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Fatalf("RFC 1624 §4 example: got %#04x, want 0x0000", got)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		a, m, m1 := uint16(r.Uint32()), uint16(r.Uint32()), uint16(r.Uint32())
		if r.IntN(8) == 0 {
			m1 = 0
		}
		hc := ^uint16(refSum([]byte{byte(a >> 8), byte(a), byte(m >> 8), byte(m)}, 0))
		want := ^uint16(refSum([]byte{byte(a >> 8), byte(a), byte(m1 >> 8), byte(m1)}, 0))
		if a == 0 && m1 == 0 {
			continue // all-zero data: only case where the sum may be 0
		}
		if got := Update(hc, m, m1); got != want {
			t.Fatalf("Update(%#04x, %#04x, %#04x) = %#04x, recomputation %#04x (a=%#04x)", hc, m, m1, got, want, a)
		}
	}
}

func TestSYNWithoutMSSLeftAlone(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		pkt := buildSYN(synSpec{v6: v6, flags: 0x02, tcpOpts: []byte{1, 1, 4, 2, 3, 3, 7}})
		before := append([]byte(nil), pkt...)
		if res := Clamp(pkt, 1379, 1359); res != NoMSS || !bytes.Equal(pkt, before) {
			t.Fatalf("v6=%v: result %v, changed=%v; want syn_without_mss, untouched", v6, res, !bytes.Equal(pkt, before))
		}
		// MSS option after an EOL is not an option.
		pkt = buildSYN(synSpec{v6: v6, flags: 0x02, tcpOpts: []byte{0, 0, 0, 0, 2, 4, 0xff, 0xff}})
		if res := Clamp(pkt, 1379, 1359); res != NoMSS {
			t.Fatalf("v6=%v: MSS after EOL: %v", v6, res)
		}
	}
}

func TestNonSYNUntouched(t *testing.T) {
	for _, flags := range []byte{0x10, 0x18, 0x11, 0x04, 0x00} {
		for _, v6 := range []bool{false, true} {
			pkt := buildSYN(synSpec{v6: v6, flags: flags, tcpOpts: mssOpt(9000)})
			before := append([]byte(nil), pkt...)
			if res := Clamp(pkt, 1379, 1359); res != NotSYN || !bytes.Equal(pkt, before) {
				t.Fatalf("flags %#x v6=%v: %v", flags, v6, res)
			}
		}
	}
}

func TestFragmentsAndOtherProtocols(t *testing.T) {
	// IPv4 non-first fragment: not parsed as TCP.
	pkt := buildSYN(synSpec{flags: 0x02, tcpOpts: mssOpt(9000), fragOff: 100})
	if res := Clamp(pkt, 1379, 1359); res != Fragment {
		t.Fatalf("IPv4 offset 100: %v", res)
	}
	// IPv4 first fragment (MF set, offset 0) still clamped.
	pkt = buildSYN(synSpec{flags: 0x02, tcpOpts: mssOpt(9000)})
	pkt[6] |= 0x20
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], ^uint16(refSum(pkt[:20], 0)))
	if res := Clamp(pkt, 1379, 1359); res != Clamped {
		t.Fatalf("IPv4 first fragment: %v", res)
	}
	// IPv6 with hop-by-hop, dest opts and a first fragment header.
	ext, first := ipv6Ext(true, 0)
	pkt = buildSYN(synSpec{v6: true, ext: ext, extFirst: first, flags: 0x02, tcpOpts: mssOpt(9000)})
	if res := Clamp(pkt, 1379, 1359); res != Clamped {
		t.Fatalf("IPv6 ext + first fragment: %v", res)
	}
	if v, _ := mssValue(pkt); v != 1359 || fullTCPChecksum(pkt) != binary.BigEndian.Uint16(pkt[40+len(ext)+16:]) {
		t.Fatalf("IPv6 ext: MSS %d, checksum wrong", v)
	}
	ext, first = ipv6Ext(true, 3)
	pkt = buildSYN(synSpec{v6: true, ext: ext, extFirst: first, flags: 0x02, tcpOpts: mssOpt(9000)})
	if res := Clamp(pkt, 1379, 1359); res != Fragment {
		t.Fatalf("IPv6 non-first fragment: %v", res)
	}
	// AH in front of TCP: must not be touched.
	pkt = buildSYN(synSpec{v6: true, ext: []byte{6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, extFirst: 51, flags: 0x02, tcpOpts: mssOpt(9000)})
	if res := Clamp(pkt, 1379, 1359); res != NotTCP {
		t.Fatalf("IPv6 AH: %v", res)
	}
	pkt = buildSYN(synSpec{flags: 0x02, tcpOpts: mssOpt(9000)})
	pkt[9] = 17
	if res := Clamp(pkt, 1379, 1359); res != NotTCP {
		t.Fatalf("UDP: %v", res)
	}
}

// TestMalformedSafe: every truncation of a valid SYN (with the IP length
// fields lying or truthful) and every corrupted option list must return
// without touching bytes outside the packet.
func TestMalformedSafe(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		full := buildSYN(synSpec{v6: v6, flags: 0x02, tcpOpts: []byte{1, 3, 3, 7, 2, 4, 0x23, 0x28, 4, 2}})
		for n := 0; n <= len(full); n++ {
			for _, fixLen := range []bool{false, true} {
				buf := make([]byte, n, n+64)
				copy(buf, full)
				if fixLen && n >= 40 {
					if v6 {
						binary.BigEndian.PutUint16(buf[4:], uint16(n-40))
					} else {
						binary.BigEndian.PutUint16(buf[2:], uint16(n))
					}
				}
				Clamp(buf, 1379, 1359)
				// Bytes beyond len(buf) must be untouched (still zero).
				if tail := buf[n : n+64]; !bytes.Equal(tail, make([]byte, 64)) {
					t.Fatalf("v6=%v len %d: wrote beyond the packet", v6, n)
				}
			}
		}
	}
	// Option lists that lie about lengths.
	bad := [][]byte{
		{2},                // kind without length at the end
		{2, 0, 0, 0},       // length 0
		{2, 1, 0, 0},       // length 1
		{2, 40, 0, 0},      // length past the header
		{2, 3, 0, 0},       // MSS with wrong length
		{1, 1, 1, 8, 9, 9}, // unknown kind running past the end
	}
	for _, o := range bad {
		pkt := buildSYN(synSpec{flags: 0x02, tcpOpts: o})
		before := append([]byte(nil), pkt...)
		if res := Clamp(pkt, 1379, 1359); res != Malformed || !bytes.Equal(pkt, before) {
			t.Fatalf("options % x: %v", o, res)
		}
	}
	// Data offset larger than the segment, or below 5.
	pkt := buildSYN(synSpec{flags: 0x02, tcpOpts: mssOpt(9000)})
	pkt[20+12] = 0xf0
	if res := Clamp(pkt, 1379, 1359); res != Malformed {
		t.Fatalf("data offset 60 in a 24-byte header: %v", res)
	}
	pkt[20+12] = 0x40
	if res := Clamp(pkt, 1379, 1359); res != Malformed {
		t.Fatalf("data offset 16: %v", res)
	}
	if res := Clamp(nil, 1379, 1359); res != Malformed {
		t.Fatalf("empty: %v", res)
	}
}

func TestNewValidates(t *testing.T) {
	c, err := New(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := c.Limits(); a != 1379 || b != 1359 {
		t.Fatalf("defaults %d/%d, want 1379/1359", a, b)
	}
	c, _ = New(1400, 0)
	if a, b := c.Limits(); a != 1400 || b != 1380 {
		t.Fatalf("derived IPv6 limit %d/%d", a, b)
	}
	for _, v := range [][2]int{{100, 0}, {70000, 0}, {1379, 10}} {
		if _, err := New(v[0], v[1]); err == nil {
			t.Fatalf("New(%d, %d) accepted", v[0], v[1])
		}
	}
}

func TestBatchCounts(t *testing.T) {
	c, _ := New(0, 0)
	pkts := [][]byte{
		buildSYN(synSpec{flags: 0x02, tcpOpts: mssOpt(1460)}),
		buildSYN(synSpec{v6: true, flags: 0x12, tcpOpts: mssOpt(1440)}),
		buildSYN(synSpec{flags: 0x10}),
		buildSYN(synSpec{flags: 0x02, tcpOpts: mssOpt(1200)}),
		{0x45},
	}
	c.Batch(pkts)
	want := [NumResults]uint64{Clamped: 2, NotSYN: 1, WithinMSS: 1, Malformed: 1}
	if c.Counts != want {
		t.Fatalf("counts %v, want %v", c.Counts, want)
	}
	for r := range NumResults {
		if r.String() == "" || r.String() == "unknown" {
			t.Fatalf("result %d has no name", r)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	c, _ := New(0, 0)
	syn := buildSYN(synSpec{flags: 0x02, tcpOpts: mssOpt(1460)})
	ack := buildSYN(synSpec{v6: true, flags: 0x10})
	batch := [][]byte{syn, ack}
	if a := testing.AllocsPerRun(1000, func() {
		binary.BigEndian.PutUint16(syn[20+22:], 1460) // re-arm (checksum stays consistent enough for the count)
		c.Batch(batch)
	}); a != 0 {
		t.Fatalf("%v allocations per batch, want 0", a)
	}
}

// FuzzClamp: no panic on any input, and whenever a packet with a correct
// TCP checksum is clamped its checksum is still correct.
func FuzzClamp(f *testing.F) {
	f.Add(buildSYN(synSpec{flags: 0x02, tcpOpts: []byte{1, 2, 4, 5, 0xb4}}))
	f.Add(buildSYN(synSpec{v6: true, flags: 0x12, tcpOpts: mssOpt(9000)}))
	ext, first := ipv6Ext(true, 0)
	f.Add(buildSYN(synSpec{v6: true, ext: ext, extFirst: first, flags: 0x02, tcpOpts: mssOpt(1500)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt := append([]byte(nil), b...)
		if Clamp(pkt, 1379, 1359) != Clamped {
			return
		}
		// Clamped implies a parseable TCP header; recheck validity when
		// the input's checksum was valid (not all-zero data).
		orig := append([]byte(nil), b...)
		start, _ := tcpOffsets(orig)
		if binary.BigEndian.Uint16(orig[start+16:]) != fullTCPChecksum(orig) {
			return
		}
		if got, want := binary.BigEndian.Uint16(pkt[start+16:]), fullTCPChecksum(pkt); got != want {
			t.Fatalf("checksum %#04x, full %#04x", got, want)
		}
	})
}
