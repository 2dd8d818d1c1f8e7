package esp

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/replay"
)

var (
	testSrc = netip.MustParseAddr("192.0.2.10")
	testDst = netip.MustParseAddr("203.0.113.1")
)

// keymatFor returns deterministic KEYMAT for suite s.
func keymatFor(s transform.Suite, seed byte) []byte {
	k := make([]byte, s.KeymatLen())
	for i := range k {
		k[i] = seed + byte(i*37)
	}
	return k
}

// pairOpts picks the variant of an SA pair.
type pairOpts struct {
	udp       bool
	esn       bool
	window    int // replay window size; 0: none
	dscpCopy  bool
	df        DFPolicy
	spi       uint32
	softLimit uint64
}

// newPair builds an outbound and an inbound SA for the same keys.
func newPair(t testing.TB, s transform.Suite, o pairOpts) (out, in *SA) {
	t.Helper()
	km := keymatFor(s, 0x11)
	spi := o.spi
	if spi == 0 {
		spi = 0xc0ffee01
	}
	mk := func(rp *replay.Window) *SA {
		c, err := transform.New(s, km)
		if err != nil {
			t.Fatalf("transform.New(%v): %v", s, err)
		}
		cfg := Config{SPI: spi, Cipher: c, ESN: o.esn, Src: testSrc, Dst: testDst,
			DF: o.df, DSCPCopy: o.dscpCopy, TTL: 63, SoftLimit: o.softLimit, Replay: rp}
		if o.udp {
			cfg.UDPEncap, cfg.SrcPort, cfg.DstPort = true, 4500, 4500
		}
		sa, err := NewSA(cfg)
		if err != nil {
			t.Fatalf("NewSA: %v", err)
		}
		return sa
	}
	out = mk(nil)
	var rp *replay.Window
	if o.window > 0 {
		rp = newWindow(t, o.window, o.esn)
	}
	in = mk(rp)
	return out, in
}

// inner4 builds an IPv4/UDP packet of n bytes (n ≥ 28) with DSCP/ECN tos
// and DF set as asked.
func inner4(n int, tos byte, df bool, seed int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	p[1] = tos
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	binary.BigEndian.PutUint16(p[4:], uint16(seed))
	if df {
		p[6] = 0x40
	}
	p[8] = 64
	p[9] = packet.ProtoUDP
	copy(p[12:], []byte{198, 18, 0, 2})
	copy(p[16:], []byte{198, 19, 0, 2})
	packet.IPv4HeaderChecksum(p[:20])
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 9)
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	for i := 28; i < n; i++ {
		p[i] = byte(i + seed)
	}
	return p
}

// inner6 builds an IPv6/UDP packet of n bytes (n ≥ 48).
func inner6(n int, tc byte, seed int) []byte {
	p := make([]byte, n)
	p[0] = 0x60 | tc>>4
	p[1] = tc << 4
	binary.BigEndian.PutUint16(p[4:], uint16(n-40))
	p[6] = packet.ProtoUDP
	p[7] = 64
	a := netip.MustParseAddr("2001:db8::2").As16()
	b := netip.MustParseAddr("2001:db8:1::2").As16()
	copy(p[8:], a[:])
	copy(p[24:], b[:])
	binary.BigEndian.PutUint16(p[40:], 40000)
	binary.BigEndian.PutUint16(p[42:], 9)
	binary.BigEndian.PutUint16(p[44:], uint16(n-40))
	for i := 48; i < n; i++ {
		p[i] = byte(i*3 + seed)
	}
	return p
}

// frame places pkt in a fresh buffer with MaxHeadroom in front and
// MaxTailroom behind, as a worker's UMEM frame would.
func frame(pkt []byte) (buf []byte, off int) {
	buf = make([]byte, MaxHeadroom+len(pkt)+MaxTailroom)
	copy(buf[MaxHeadroom:], pkt)
	return buf, MaxHeadroom
}

// newWindow returns a dataplane/replay window.
func newWindow(t testing.TB, size int, esn bool) *replay.Window {
	t.Helper()
	w, err := replay.New(size, esn)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// splitKeymat splits one direction's KEYMAT into the encryption key (with
// the GCM salt, as scapy and Wireshark want it) and the integrity key
// (RFC 7296 §2.17 order).
func splitKeymat(s transform.Suite, km []byte) (encKey, authKey []byte) {
	if s.Encr == transform.ENCR_AES_GCM_16 {
		return km, nil
	}
	return km[:s.KeyBits/8], km[s.KeyBits/8:]
}

// encapBatch encapsulates a batch as the worker does (packet i is
// bufs[i][offs[i]:offs[i]+lens[i]]): one ReserveSeq for the batch, then
// Encap per packet, offs[i] and lens[i] rewritten to the outer packet on
// success. res[i] gets each packet's Reason (all SeqExhausted when the SA
// must be rekeyed). It returns how many were encapsulated.
func encapBatch(sa *SA, bufs [][]byte, offs, lens []int, res []Reason) int {
	if len(bufs) == 0 {
		return 0
	}
	first, ok := sa.ReserveSeq(len(bufs))
	done := 0
	for i, b := range bufs {
		if !ok {
			res[i] = SeqExhausted
			continue
		}
		s, e, r := sa.Encap(b, offs[i], lens[i], first+uint64(i))
		if res[i] = r; r == OK {
			offs[i], lens[i] = s, e-s
			done++
		}
	}
	return done
}

// decapBatch decapsulates a batch of outer packets for sa, rewriting
// offs[i] and lens[i] to the inner packet on success; res[i] gets each
// packet's Reason. It returns how many succeeded.
func decapBatch(sa *SA, bufs [][]byte, offs, lens []int, res []Reason) int {
	done := 0
	for i, b := range bufs {
		s, e, r := sa.Decap(b, offs[i], lens[i])
		if res[i] = r; r == OK {
			offs[i], lens[i] = s, e-s
			done++
		}
	}
	return done
}
