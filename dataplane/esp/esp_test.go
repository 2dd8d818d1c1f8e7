package esp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/replay"
)

func TestOverheadCoversEverySuite(t *testing.T) {
	for _, s := range transform.Suites() {
		for _, udp := range []bool{false, true} {
			out, _ := newPair(t, s, pairOpts{udp: udp})
			if out.Headroom() > MaxHeadroom || out.Tailroom() > MaxTailroom {
				t.Errorf("%v udp=%v: headroom %d tailroom %d exceed MaxHeadroom %d / MaxTailroom %d",
					s, udp, out.Headroom(), out.Tailroom(), MaxHeadroom, MaxTailroom)
			}
		}
	}
}

// checkOuter verifies the outer headers Encap wrote.
func checkOuter(t *testing.T, sa *SA, o pairOpts, outer, inner []byte, seq uint64, wantDF bool, wantTOS byte) {
	t.Helper()
	if !packet.IPv4HeaderValid(outer[:20]) {
		t.Fatalf("outer IPv4 checksum invalid: % x", outer[:20])
	}
	if outer[0] != 0x45 || int(binary.BigEndian.Uint16(outer[2:])) != len(outer) {
		t.Fatalf("outer version/len wrong: % x (len %d)", outer[:4], len(outer))
	}
	if outer[1] != wantTOS {
		t.Fatalf("outer TOS %#x, want %#x", outer[1], wantTOS)
	}
	if got := outer[6]&0x40 != 0; got != wantDF {
		t.Fatalf("outer DF %v, want %v", got, wantDF)
	}
	if outer[8] != 63 {
		t.Fatalf("TTL %d, want 63", outer[8])
	}
	if !bytes.Equal(outer[12:16], testSrc.AsSlice()) || !bytes.Equal(outer[16:20], testDst.AsSlice()) {
		t.Fatalf("outer addresses % x", outer[12:20])
	}
	esp := outer[20:]
	if o.udp {
		if outer[9] != packet.ProtoUDP {
			t.Fatalf("proto %d, want UDP", outer[9])
		}
		u := outer[20:28]
		if binary.BigEndian.Uint16(u) != 4500 || binary.BigEndian.Uint16(u[2:]) != 4500 ||
			int(binary.BigEndian.Uint16(u[4:])) != len(outer)-20 || binary.BigEndian.Uint16(u[6:]) != 0 {
			t.Fatalf("UDP header % x", u)
		}
		esp = outer[28:]
	} else if outer[9] != packet.ProtoESP {
		t.Fatalf("proto %d, want ESP", outer[9])
	}
	if binary.BigEndian.Uint32(esp) != sa.spi || binary.BigEndian.Uint32(esp[4:]) != uint32(seq) {
		t.Fatalf("ESP header % x, want spi %#x seq %d", esp[:8], sa.spi, uint32(seq))
	}
	if want := 8 + sa.ivLen + len(inner) + padLen(len(inner), sa.align) + 2 + sa.icvLen; len(esp) != want {
		t.Fatalf("ESP length %d, want %d", len(esp), want)
	}
	if (len(esp)-8-sa.ivLen-sa.icvLen)%sa.align != 0 {
		t.Fatalf("ciphertext %d not aligned to %d", len(esp)-8-sa.ivLen-sa.icvLen, sa.align)
	}
}

// TestRoundTrip encapsulates and decapsulates IPv4 and IPv6 packets of
// many sizes for every suite, with and without UDP and ESN, in batches.
func TestRoundTrip(t *testing.T) {
	sizes := []int{28, 48, 49, 50, 51, 64, 100, 511, 512, 1400}
	for _, s := range transform.Suites() {
		for _, udp := range []bool{false, true} {
			for _, esn := range []bool{false, true} {
				o := pairOpts{udp: udp, esn: esn, window: 1024, dscpCopy: true}
				t.Run(fmt.Sprintf("%v/udp=%v/esn=%v", s, udp, esn), func(t *testing.T) {
					out, in := newPair(t, s, o)
					if esn {
						// Cross the 2^32 boundary so the high bits matter.
						out.seq.Store(1<<32 - 5)
						if r := in.replay.Update(1<<32 - 6); r != replay.OK {
							t.Fatalf("priming the window: %v", r)
						}
					}
					var bufs [][]byte
					var offs, lens []int
					var inners [][]byte
					var df []bool
					var tos []byte
					for i, n := range sizes {
						for _, v6 := range []bool{false, true} {
							if v6 && n < 48 {
								continue
							}
							var p []byte
							tc := byte(i*4+1) & 0xff // DSCP and ECN bits both set
							if v6 {
								p = inner6(n, tc, i)
								df = append(df, true)
							} else {
								p = inner4(n, tc, i%2 == 0, i)
								df = append(df, i%2 == 0)
							}
							tos = append(tos, tc&^3)
							b, off := frame(p)
							bufs, offs, lens = append(bufs, b), append(offs, off), append(lens, n)
							inners = append(inners, p)
						}
					}
					res := make([]Reason, len(bufs))
					first := out.LastSeq() + 1
					if got := encapBatch(out, bufs, offs, lens, res); got != len(bufs) {
						t.Fatalf("encapBatch encapsulated %d of %d: %v", got, len(bufs), res)
					}
					for i := range bufs {
						checkOuter(t, out, o, bufs[i][offs[i]:offs[i]+lens[i]], inners[i], first+uint64(i), df[i], tos[i])
						if offs[i] != MaxHeadroom-out.Headroom() {
							t.Fatalf("outer starts at %d, want %d", offs[i], MaxHeadroom-out.Headroom())
						}
					}
					if got := decapBatch(in, bufs, offs, lens, res); got != len(bufs) {
						t.Fatalf("decapBatch decapsulated %d of %d: %v", got, len(bufs), res)
					}
					for i := range bufs {
						if offs[i] != MaxHeadroom || !bytes.Equal(bufs[i][offs[i]:offs[i]+lens[i]], inners[i]) {
							t.Fatalf("packet %d: inner differs after round trip (off %d len %d)", i, offs[i], lens[i])
						}
					}
				})
			}
		}
	}
}

func TestDFAndDSCPPolicies(t *testing.T) {
	s := transform.Suites()[0]
	for _, c := range []struct {
		df       DFPolicy
		innerDF  bool
		v6       bool
		want     bool
		dscpCopy bool
	}{
		{DFCopy, true, false, true, true}, {DFCopy, false, false, false, false},
		{DFCopy, false, true, true, true}, {DFSet, false, false, true, false},
		{DFClear, true, false, false, true}, {DFClear, false, true, false, false},
	} {
		out, err := NewSA(Config{SPI: 7, Cipher: mustCipher(t, s), Src: testSrc, Dst: testDst, DF: c.df, DSCPCopy: c.dscpCopy, DSCP: 10})
		if err != nil {
			t.Fatal(err)
		}
		p := inner4(64, 0xb9, c.innerDF, 1)
		if c.v6 {
			p = inner6(64, 0xb9, 1)
		}
		b, off := frame(p)
		st, _, r := out.Encap(b, off, len(p), 1)
		if r != OK {
			t.Fatal(r)
		}
		if got := b[st+6]&0x40 != 0; got != c.want {
			t.Errorf("%+v: DF %v", c, got)
		}
		wantTOS := byte(10 << 2)
		if c.dscpCopy {
			wantTOS = 0xb8
		}
		if b[st+1] != wantTOS {
			t.Errorf("%+v: TOS %#x want %#x", c, b[st+1], wantTOS)
		}
	}
}

func mustCipher(t testing.TB, s transform.Suite) transform.Cipher {
	t.Helper()
	c, err := transform.New(s, keymatFor(s, 0x11))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
