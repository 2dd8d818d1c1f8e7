package frag

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestSplitReassembles is the property test: random sizes, MTUs, option
// sets and originals that are themselves fragments; every fragment is
// checked on its own and the set reassembles to the original.
func TestSplitReassembles(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	n := 5000
	if testing.Short() {
		n = 800
	}
	var split, multi int
	for i := range n {
		mtu := 68 + r.IntN(1500-68+1)
		if i%4 == 0 {
			mtu = DefaultMTU
		}
		s := pkt4Spec{opts: randomOptions(r), payload: r.IntN(9000), id: uint16(i), df: r.IntN(3) == 0}
		if i%5 == 0 {
			s.payload = 1480 - len(s.opts)
		}
		if r.IntN(4) == 0 { // the original is a fragment already
			s.off = uint16(r.IntN(2000))
			s.mf = r.IntN(2) == 0
			if s.mf {
				s.payload &^= 7
			}
		}
		orig := build4(r, s)
		pkt := append(make([]byte, 0, len(orig)+64), orig...)
		want := Need(pkt, mtu)
		out := frames(want+1, mtu)
		first, k, err := Split(pkt, mtu, out)
		if err != nil {
			t.Fatalf("packet %d (len %d, opts % x, mtu %d): %v", i, len(orig), s.opts, mtu, err)
		}
		if k+1 != want {
			t.Fatalf("packet %d: Need said %d, Split made %d", i, want, k+1)
		}
		if len(orig) <= mtu {
			if k != 0 || first != len(orig) || !bytes.Equal(pkt, orig) {
				t.Fatalf("packet %d fits (%d ≤ %d) but was changed", i, len(orig), mtu)
			}
			continue
		}
		split++
		if k > 1 {
			multi++
		}
		frags := append([][]byte{pkt[:first]}, out[:k]...)
		if err := reassemble(frags, orig, mtu, s.df); err != nil {
			t.Fatalf("packet %d (len %d, opts % x, off %d, MF %v, mtu %d, %d fragments): %v", i, len(orig), s.opts, s.off, s.mf, mtu, k+1, err)
		}
		// Offsets are in 8-byte units by construction; check each
		// non-last fragment's data is a multiple of 8 was done above.
		// The caller's spare frame is untouched.
		if len(out[k]) != mtu {
			t.Fatalf("packet %d: unused frame resliced", i)
		}
	}
	if split < n/2 || multi < n/4 {
		t.Fatalf("weak sample: %d of %d split, %d into 3 or more", split, n, multi)
	}
}

func TestSplitRefusals(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	orig := build4(r, pkt4Spec{payload: 3000})
	pkt := append([]byte(nil), orig...)
	// Too few frames, and frames too short: nothing modified.
	if _, _, err := Split(pkt, 1399, frames(1, 1399)); !errors.Is(err, ErrShortFrame) {
		t.Fatalf("one frame for three fragments: %v", err)
	}
	if _, _, err := Split(pkt, 1399, frames(2, 1000)); !errors.Is(err, ErrShortFrame) {
		t.Fatalf("short frames: %v", err)
	}
	// The last fragment needs only its own length.
	if _, _, err := Split(pkt, 1399, [][]byte{make([]byte, 1399), make([]byte, 20+3000-2*1376)}); err != nil {
		t.Fatalf("exact last frame: %v", err)
	}
	pkt = append(pkt[:0], orig...)
	if !bytes.Equal(pkt, orig) {
		t.Fatal("packet modified on error")
	}
	// Malformed headers.
	bad := append([]byte(nil), orig...)
	bad[0] = 0x44 // IHL 4
	if _, _, err := Split(bad, 1399, frames(3, 1399)); !errors.Is(err, ErrHeader) {
		t.Fatalf("IHL 4: %v", err)
	}
	bad = append([]byte(nil), orig...)
	binary.BigEndian.PutUint16(bad[2:], uint16(len(bad)+1))
	if _, _, err := Split(bad, 1399, frames(3, 1399)); !errors.Is(err, ErrHeader) {
		t.Fatalf("total length past the slice: %v", err)
	}
	bad = build4(r, pkt4Spec{opts: []byte{0x83, 9, 4, 0}, payload: 3000})
	if _, _, err := Split(bad, 1399, frames(3, 1399)); !errors.Is(err, ErrHeader) {
		t.Fatalf("option length past the header: %v", err)
	}
	// A bogus fragment whose pieces would pass offset 65535.
	bad = build4(r, pkt4Spec{payload: 3000, off: 8000})
	if _, _, err := Split(bad, 1399, frames(3, 1399)); !errors.Is(err, ErrHeader) {
		t.Fatalf("offset overflow: %v", err)
	}
	// A fragment with MF but data not a multiple of 8 (RFC 791 §3.2).
	bad = build4(r, pkt4Spec{payload: 3001, mf: true})
	if _, _, err := Split(bad, 1399, frames(3, 1399)); !errors.Is(err, ErrHeader) {
		t.Fatalf("MF with 3001 data bytes: %v", err)
	}
	// mtu below 68 with a 60-byte header.
	big := build4(r, pkt4Spec{opts: bytes.Repeat([]byte{0x94, 4, 0, 0}, 10), payload: 100})
	if _, _, err := Split(big, 64, frames(20, 64)); !errors.Is(err, ErrMTU) {
		t.Fatalf("mtu 64 with 60-byte header: %v", err)
	}
	if _, _, err := Split(big, 68, frames(20, 68)); err != nil {
		t.Fatalf("mtu 68 with 60-byte header (RFC 791 minimum): %v", err)
	}
}

func newF(t testing.TB, cfg Config) *Fragmenter {
	t.Helper()
	if !cfg.Gateway4.IsValid() {
		cfg.Gateway4 = netip.MustParseAddr("198.18.0.1")
	}
	if !cfg.Gateway6.IsValid() {
		cfg.Gateway6 = netip.MustParseAddr("2001:db8::1")
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestClearDF(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	f := newF(t, Config{ClearDF: true})
	orig := build4(r, pkt4Spec{payload: 1480, df: true})
	pkt := append([]byte(nil), orig...)
	out := frames(2, 1399)
	first, n, res := f.Packet(pkt, out)
	if res != Fragmented || n != 1 || f.DFCleared != 1 {
		t.Fatalf("DF packet with clear_df: %v, %d extra, DFCleared %d", res, n, f.DFCleared)
	}
	if err := reassemble([][]byte{pkt[:first], out[0]}, orig, 1399, false); err != nil {
		t.Fatal(err)
	}
	// A DF packet that fits keeps DF.
	small := build4(r, pkt4Spec{payload: 500, df: true})
	before := append([]byte(nil), small...)
	if first, _, res := f.Packet(small, out); res != Fits || first != len(small) || !bytes.Equal(small, before) {
		t.Fatalf("small DF packet: %v", res)
	}
	// Trailing link padding is trimmed through first.
	padded := append(append([]byte(nil), small...), 0, 0, 0, 0)
	if first, _, res := f.Packet(padded, out); res != Fits || first != len(small) {
		t.Fatalf("padded packet: %v first %d", res, first)
	}
}

func checkFragNeeded(t *testing.T, icmp, orig []byte, gw [4]byte, mtu int) {
	t.Helper()
	if len(icmp) > 576 || len(icmp) != min(28+len(orig), 576) {
		t.Fatalf("ICMP error is %d bytes for a %d-byte original (want min(28+len, 576))", len(icmp), len(orig))
	}
	if icmp[0] != 0x45 || !sumOK(icmp[:20], 0) || int(binary.BigEndian.Uint16(icmp[2:])) != len(icmp) || icmp[9] != 1 {
		t.Fatalf("bad IPv4 header % x", icmp[:20])
	}
	if !bytes.Equal(icmp[12:16], gw[:]) || !bytes.Equal(icmp[16:20], orig[12:16]) {
		t.Fatalf("addresses %v → %v, want gateway → original source", icmp[12:16], icmp[16:20])
	}
	m := icmp[20:]
	if m[0] != 3 || m[1] != 4 || binary.BigEndian.Uint16(m[4:]) != 0 || int(binary.BigEndian.Uint16(m[6:])) != mtu {
		t.Fatalf("ICMP type %d code %d unused %#x MTU %d; want 3/4/0/%d", m[0], m[1], binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:]), mtu)
	}
	if !sumOK(m, 0) {
		t.Fatal("ICMP checksum wrong")
	}
	if !bytes.Equal(m[8:], orig[:len(m)-8]) {
		t.Fatal("quoted original differs")
	}
}

func TestFragNeeded(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	f := newF(t, Config{})
	gw := [4]byte{198, 18, 0, 1}
	for _, size := range []int{1400, 1500, 9000, 65535 - 20} {
		orig := build4(r, pkt4Spec{payload: size, df: true})
		out := frames(1, 576)
		first, n, res := f.Packet(append([]byte(nil), orig...), out)
		if res != FragNeeded || n != 1 || first != 0 {
			t.Fatalf("size %d: %v n %d first %d", size, res, n, first)
		}
		checkFragNeeded(t, out[0], orig, gw, 1399)
	}
	// Suppressed: ICMP errors, non-first fragments, odd source or
	// destination addresses. Answered: ICMP echo, first fragments.
	cases := []struct {
		name string
		spec pkt4Spec
		icmp byte // ICMP type at the start of the payload when proto is 1
		want Reason
	}{
		{"echo request", pkt4Spec{proto: 1}, 8, FragNeeded},
		{"dest unreachable", pkt4Spec{proto: 1}, 3, TooBigSilent},
		{"time exceeded", pkt4Spec{proto: 1}, 11, TooBigSilent},
		{"parameter problem", pkt4Spec{proto: 1}, 12, TooBigSilent},
		{"redirect", pkt4Spec{proto: 1}, 5, TooBigSilent},
		{"first fragment", pkt4Spec{mf: true}, 0, FragNeeded},
		{"non-first fragment", pkt4Spec{off: 185}, 0, TooBigSilent},
		{"multicast source", pkt4Spec{src: [4]byte{224, 0, 0, 5}}, 0, TooBigSilent},
		{"this-network source", pkt4Spec{src: [4]byte{0, 0, 0, 1}}, 0, TooBigSilent},
		{"loopback source", pkt4Spec{src: [4]byte{127, 0, 0, 1}}, 0, TooBigSilent},
		{"broadcast destination", pkt4Spec{dst: [4]byte{255, 255, 255, 255}}, 0, TooBigSilent},
		{"multicast destination", pkt4Spec{dst: [4]byte{239, 1, 2, 3}}, 0, TooBigSilent},
	}
	for _, c := range cases {
		c.spec.df, c.spec.payload = true, 1480
		p := build4(r, c.spec)
		if c.spec.proto == 1 {
			p[20] = c.icmp
			binary.BigEndian.PutUint16(p[10:], 0)
			binary.BigEndian.PutUint16(p[10:], ^uint16(refSum(p[:20], 0)))
		}
		orig := append([]byte(nil), p...)
		out := frames(1, 576)
		if _, _, res := f.Packet(p, out); res != c.want {
			t.Fatalf("%s: %v, want %v", c.name, res, c.want)
		} else if res == FragNeeded {
			checkFragNeeded(t, out[0], orig, gw, 1399)
		}
	}
	// No IPv4 gateway address: silent.
	f2, _ := New(Config{})
	if _, _, res := f2.Packet(build4(r, pkt4Spec{payload: 1480, df: true}), frames(1, 576)); res != TooBigSilent {
		t.Fatalf("no gateway address: %v", res)
	}
	// Frame too short for the error.
	if _, _, res := f.Packet(build4(r, pkt4Spec{payload: 1480, df: true}), frames(1, 500)); res != NoFrames {
		t.Fatalf("short frame: %v", res)
	}
}

// build6 returns an IPv6 packet with the given extension headers (chained
// by the caller, first next-header nh) and upper-layer bytes.
func build6(r *rand.Rand, src [16]byte, nh byte, ext []byte, upper int, upperType byte) []byte {
	p := make([]byte, 40+len(ext)+upper)
	binary.BigEndian.PutUint32(p[0:], 6<<28|0x12345)
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	p[6], p[7] = nh, 64
	copy(p[8:], src[:])
	copy(p[24:], netip.MustParseAddr("2001:db8:1::20").AsSlice())
	copy(p[40:], ext)
	for i := 40 + len(ext); i < len(p); i++ {
		p[i] = byte(r.Uint32())
	}
	if upper > 0 {
		p[40+len(ext)] = upperType
	}
	return p
}

var src6 = netip.MustParseAddr("2001:db8::a").As16()

func checkTooBig(t *testing.T, icmp, orig []byte, mtu int) {
	t.Helper()
	if len(icmp) > 1280 || len(icmp) != min(48+len(orig), 1280) {
		t.Fatalf("ICMPv6 error is %d bytes for a %d-byte original", len(icmp), len(orig))
	}
	if icmp[0]>>4 != 6 || icmp[6] != 58 || int(binary.BigEndian.Uint16(icmp[4:])) != len(icmp)-40 {
		t.Fatalf("bad IPv6 header % x", icmp[:40])
	}
	if !bytes.Equal(icmp[8:24], netip.MustParseAddr("2001:db8::1").AsSlice()) || !bytes.Equal(icmp[24:40], orig[8:24]) {
		t.Fatal("addresses: want gateway → original source")
	}
	m := icmp[40:]
	if m[0] != 2 || m[1] != 0 || int(binary.BigEndian.Uint32(m[4:])) != mtu {
		t.Fatalf("type %d code %d MTU %d", m[0], m[1], binary.BigEndian.Uint32(m[4:]))
	}
	var ph []byte
	ph = append(ph, icmp[8:40]...)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(m)))
	ph = append(ph, 0, 0, 0, 58)
	if !sumOK(m, refSum(ph, 0)) {
		t.Fatal("ICMPv6 checksum wrong")
	}
	if !bytes.Equal(m[8:], orig[:len(m)-8]) {
		t.Fatal("quoted original differs")
	}
}

func TestPacketTooBig(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	f := newF(t, Config{})
	for _, size := range []int{1360, 1500, 9000, 65535} {
		orig := build6(r, src6, 17, nil, size, 0)
		out := frames(1, 1280)
		_, n, res := f.Packet(append([]byte(nil), orig...), out)
		if res != PacketTooBig || n != 1 {
			t.Fatalf("size %d: %v", size, res)
		}
		checkTooBig(t, out[0], orig, 1399)
	}
	hbh := []byte{58, 0, 1, 4, 0, 0, 0, 0}
	frag0 := []byte{58, 0, 0, 1, 0, 0, 0, 7}
	fragN := []byte{58, 0, 0x10, 1, 0, 0, 0, 7}
	mc := netip.MustParseAddr("ff02::1").As16()
	cases := []struct {
		name  string
		src   [16]byte
		nh    byte
		ext   []byte
		utype byte
		want  Reason
	}{
		{"echo request", src6, 58, nil, 128, PacketTooBig},
		{"dest unreachable", src6, 58, nil, 1, TooBigSilent},
		{"packet too big", src6, 58, nil, 2, TooBigSilent},
		{"redirect", src6, 58, nil, 137, TooBigSilent},
		{"error behind hop-by-hop", src6, 0, hbh, 3, TooBigSilent},
		{"error in first fragment", src6, 44, frag0, 4, TooBigSilent},
		{"echo in first fragment", src6, 44, frag0, 129, PacketTooBig},
		{"non-first fragment", src6, 44, fragN, 128, TooBigSilent},
		{"multicast source", mc, 17, nil, 0, TooBigSilent},
		{"unspecified source", [16]byte{}, 17, nil, 0, TooBigSilent},
		{"loopback source", netip.IPv6Loopback().As16(), 17, nil, 0, TooBigSilent},
	}
	for _, c := range cases {
		p := build6(r, c.src, c.nh, c.ext, 1400, c.utype)
		orig := append([]byte(nil), p...)
		out := frames(1, 1280)
		if _, _, res := f.Packet(p, out); res != c.want {
			t.Fatalf("%s: %v, want %v", c.name, res, c.want)
		} else if res == PacketTooBig {
			checkTooBig(t, out[0], orig, 1399)
		}
	}
	// RFC 4443 §2.4(e.2) exception: multicast destination still answered.
	p := build6(r, src6, 17, nil, 1400, 0)
	copy(p[24:], mc[:])
	if _, _, res := f.Packet(p, frames(1, 1280)); res != PacketTooBig {
		t.Fatalf("multicast destination: %v", res)
	}
	// Fits, and trimmed.
	small := build6(r, src6, 17, nil, 1000, 0)
	if first, _, res := f.Packet(append(small, 9, 9), nil); res != Fits || first != len(small) {
		t.Fatalf("small IPv6: %v %d", res, first)
	}
}

func TestNewChecks(t *testing.T) {
	if _, err := New(Config{MTU: 1200, Gateway6: netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Fatal("mtu 1200 with IPv6 accepted")
	}
	if f, err := New(Config{MTU: 1200, Gateway4: netip.MustParseAddr("198.18.0.1")}); err != nil || f.MTU() != 1200 {
		t.Fatalf("IPv4-only mtu 1200: %v", err)
	}
	for _, c := range []Config{{MTU: 60}, {MTU: 70000}, {Gateway4: netip.MustParseAddr("2001:db8::1")}, {Gateway6: netip.MustParseAddr("198.18.0.1")}} {
		if _, err := New(c); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
	if f, _ := New(Config{}); f.MTU() != 1399 {
		t.Fatalf("default mtu %d", f.MTU())
	}
	for r := range NumReasons {
		if s := r.String(); s == "" || s == "unknown" {
			t.Fatalf("reason %d has no name", r)
		}
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func TestZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	f := newF(t, Config{})
	big := build4(r, pkt4Spec{payload: 1480, opts: []byte{0x94, 4, 0, 0}})
	bigDF := build4(r, pkt4Spec{payload: 1480, df: true})
	big6 := build6(r, src6, 17, nil, 1460, 0)
	bufs := [][]byte{make([]byte, 2048), make([]byte, 2048), make([]byte, 2048)}
	res := make([]Reason, 3)
	out := make([][]byte, 4)
	frameMem := frames(4, 2048)
	pkts := [][]byte{big, bigDF, big6}
	a := testing.AllocsPerRun(500, func() {
		for i, p := range pkts {
			copy(out, frameMem)
			_, _, res[i] = f.Packet(bufs[i][:copy(bufs[i], p)], out)
		}
	})
	if a != 0 {
		t.Fatalf("%v allocations per 3 packets, want 0", a)
	}
	if res[0] != Fragmented || res[1] != FragNeeded || res[2] != PacketTooBig {
		t.Fatalf("results %v", res)
	}
}

// FuzzSplit: any bytes and MTU; no panic, and a successful split of a
// packet reassembles to it.
func FuzzSplit(f *testing.F) {
	r := rand.New(rand.NewPCG(21, 22))
	f.Add(build4(r, pkt4Spec{payload: 1500, opts: []byte{0x94, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0}}), uint16(576))
	f.Add(build4(r, pkt4Spec{payload: 200, off: 30, mf: true}), uint16(68))
	f.Fuzz(func(t *testing.T, b []byte, mtu16 uint16) {
		mtu := int(mtu16)
		orig, b := b, clone(b) // the engine's input must not be modified
		out := frames(Need(b, mtu)+1, mtu)
		first, n, err := Split(b, mtu, out)
		if err != nil || n == 0 {
			return
		}
		_, tl, _ := header4(orig)
		if err := reassemble(append([][]byte{b[:first]}, out[:n]...), orig[:tl], mtu, orig[6]&0x40 != 0); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzPacket: the whole stage on any bytes: no panic, outputs within the
// frames, and any ICMP error it builds has correct checksums.
func FuzzPacket(f *testing.F) {
	r := rand.New(rand.NewPCG(23, 24))
	f.Add(build4(r, pkt4Spec{payload: 1500, df: true}))
	f.Add(build6(r, src6, 44, []byte{58, 0, 0, 1, 0, 0, 0, 7}, 1400, 128))
	f.Add(build6(r, src6, 0, []byte{43, 0, 1, 4, 0, 0, 0, 0, 58, 0, 0, 0, 0, 0, 0, 0}, 1400, 1))
	fr := newF(f, Config{MTU: 1280})
	mem := frames(60, 1280)
	out := make([][]byte, 60)
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt := clone(b)
		copy(out, mem)
		first, n, res := fr.Packet(pkt, out)
		if first > len(pkt) || n > len(out) {
			t.Fatalf("%v: first %d n %d", res, first, n)
		}
		switch res {
		case FragNeeded:
			if !sumOK(out[0][:20], 0) || !sumOK(out[0][20:], 0) {
				t.Fatal("bad ICMP checksum")
			}
		case PacketTooBig:
			checkTooBig(t, out[0], b[:40+int(binary.BigEndian.Uint16(b[4:]))], 1280)
		}
	})
}
