package transform

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// testKeymat is a deterministic KEYMAT of the suite's length.
func testKeymat(s Suite) []byte {
	k := make([]byte, s.KeymatLen())
	for i := range k {
		k[i] = byte(i*7 + 3)
	}
	return k
}

func mustNew(t testing.TB, s Suite) Cipher {
	t.Helper()
	c, err := New(s, testKeymat(s))
	if err != nil {
		t.Fatalf("New(%v): %v", s, err)
	}
	return c
}

// testPacket builds an ESP packet (RFC 4303 §2) for c around a payload of
// n bytes: header, IV room, payload, self-describing padding (§2.4), pad
// length, next header 4 (IPv4), ICV room. It returns the packet and the
// plaintext region as it must read after Open.
func testPacket(c Cipher, spi uint32, seq uint64, n int) (pkt, plain []byte) {
	bs := c.BlockSize()
	padded := (n + 2 + bs - 1) / bs * bs
	plain = make([]byte, padded)
	for i := 0; i < n; i++ {
		plain[i] = byte(i*13 + int(seq))
	}
	padLen := padded - n - 2
	for i := 0; i < padLen; i++ {
		plain[n+i] = byte(i + 1)
	}
	plain[padded-2] = byte(padLen)
	plain[padded-1] = 4
	pkt = make([]byte, espHdrLen+c.IVLen()+padded+c.ICVLen())
	binary.BigEndian.PutUint32(pkt, spi)
	binary.BigEndian.PutUint32(pkt[4:], uint32(seq))
	copy(pkt[espHdrLen+c.IVLen():], plain)
	return pkt, plain
}

func plainRegion(c Cipher, pkt []byte) []byte {
	return pkt[espHdrLen+c.IVLen() : len(pkt)-c.ICVLen()]
}

func TestSuitesTable(t *testing.T) {
	want := map[string]struct{ keymat, iv, icv, block int }{
		"aes128gcm16":   {20, 8, 16, 4},
		"aes256gcm16":   {36, 8, 16, 4},
		"aes128-sha1":   {36, 16, 12, 16},
		"aes128-sha256": {48, 16, 16, 16},
		"aes128-sha384": {64, 16, 24, 16},
		"aes128-sha512": {80, 16, 32, 16},
		"aes256-sha1":   {52, 16, 12, 16},
		"aes256-sha256": {64, 16, 16, 16},
		"aes256-sha384": {80, 16, 24, 16},
		"aes256-sha512": {96, 16, 32, 16},
	}
	got := Suites()
	if len(got) != len(want) {
		t.Fatalf("Suites() = %v, want %d suites", got, len(want))
	}
	for _, s := range got {
		w, ok := want[s.String()]
		if !ok {
			t.Errorf("unexpected suite %v", s)
			continue
		}
		if err := s.Valid(); err != nil {
			t.Errorf("%v.Valid() = %v", s, err)
		}
		if s.KeymatLen() != w.keymat {
			t.Errorf("%v.KeymatLen() = %d, want %d", s, s.KeymatLen(), w.keymat)
		}
		c := mustNew(t, s)
		if s.IVLen() != w.iv || s.ICVLen() != w.icv || s.BlockSize() != w.block {
			t.Errorf("%v: Suite says IV %d ICV %d block %d, want %d %d %d", s,
				s.IVLen(), s.ICVLen(), s.BlockSize(), w.iv, w.icv, w.block)
		}
		if c.IVLen() != w.iv || c.ICVLen() != w.icv || c.BlockSize() != w.block || c.Suite() != s {
			t.Errorf("%v: IV %d ICV %d block %d suite %v, want %d %d %d", s,
				c.IVLen(), c.ICVLen(), c.BlockSize(), c.Suite(), w.iv, w.icv, w.block)
		}
	}
}

func TestParseSuite(t *testing.T) {
	for _, s := range Suites() {
		got, err := ParseSuite(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSuite(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
	if _, err := ParseSuite("aes192gcm16"); !errors.Is(err, ErrSuite) || !strings.Contains(err.Error(), "aes256-sha512") {
		t.Errorf("ParseSuite(aes192gcm16) = %v, want ErrSuite listing the choices", err)
	}
}

func TestInvalidSuites(t *testing.T) {
	for _, s := range []Suite{
		{ENCR_AES_GCM_16, 192, AUTH_NONE},
		{ENCR_AES_GCM_16, 128, AUTH_HMAC_SHA1_96},
		{ENCR_AES_CBC, 128, AUTH_NONE},
		{ENCR_AES_CBC, 256, 99},
		{3, 128, AUTH_HMAC_SHA1_96},
	} {
		if err := s.Valid(); !errors.Is(err, ErrSuite) {
			t.Errorf("%v.Valid() = %v, want ErrSuite", s, err)
		}
		if s.KeymatLen() != 0 || s.IVLen() != 0 || s.ICVLen() != 0 || s.BlockSize() != 0 {
			t.Errorf("%v: KeymatLen %d IVLen %d ICVLen %d BlockSize %d, want all 0", s, s.KeymatLen(), s.IVLen(), s.ICVLen(), s.BlockSize())
		}
		if _, err := New(s, make([]byte, 64)); !errors.Is(err, ErrSuite) {
			t.Errorf("New(%v) = %v, want ErrSuite", s, err)
		}
	}
}

func TestKeymatLength(t *testing.T) {
	for _, s := range implemented(t) {
		for _, n := range []int{0, s.KeymatLen() - 1, s.KeymatLen() + 1} {
			_, err := New(s, make([]byte, n))
			if !errors.Is(err, ErrKeymat) {
				t.Errorf("New(%v, %d bytes) = %v, want ErrKeymat", s, n, err)
				continue
			}
			// The message must name the suite and both lengths.
			msg := err.Error()
			for _, part := range []string{s.String(), fmt.Sprint(s.KeymatLen()), fmt.Sprintf("got %d", n)} {
				if !strings.Contains(msg, part) {
					t.Errorf("New(%v, %d bytes) error %q does not mention %q", s, n, msg, part)
				}
			}
		}
	}
}

// implemented lists the suites, failing the test if New refuses one.
func implemented(t testing.TB) []Suite {
	for _, s := range Suites() {
		mustNew(t, s)
	}
	return Suites()
}

func TestRoundTrip(t *testing.T) {
	for _, s := range implemented(t) {
		c := mustNew(t, s)
		peer := mustNew(t, s) // the receiver builds its own from the same KEYMAT
		for _, esn := range []bool{false, true} {
			for _, n := range []int{0, 1, 2, 13, 14, 15, 16, 64, 511, 1400} {
				seq := uint64(0x0000_0001_8000_0001) + uint64(n)
				if !esn {
					seq &= 0xffffffff
				}
				pkt, plain := testPacket(c, 0x01020304, seq, n)
				c.Seal(pkt, seq, esn)
				if bytes.Contains(pkt, plain) && n > 16 {
					t.Fatalf("%v: plaintext visible after Seal", s)
				}
				if err := peer.Open(pkt, seq, esn); err != nil {
					t.Fatalf("%v esn=%v n=%d: Open: %v", s, esn, n, err)
				}
				if !bytes.Equal(plainRegion(c, pkt), plain) {
					t.Fatalf("%v esn=%v n=%d: Open gave %x, want %x", s, esn, n, plainRegion(c, pkt), plain)
				}
			}
		}
	}
}

// TestSealIVNeverRepeats: two sequence numbers must give two IVs.
func TestSealIVNeverRepeats(t *testing.T) {
	for _, s := range implemented(t) {
		c := mustNew(t, s)
		seen := map[string]uint64{}
		for _, seq := range []uint64{1, 2, 3, 1 << 32, 1<<32 + 1, 1<<63 + 7} {
			pkt, _ := testPacket(c, 1, seq, 32)
			c.Seal(pkt, seq, true)
			iv := string(pkt[espHdrLen : espHdrLen+c.IVLen()])
			if s.Encr == ENCR_AES_GCM_16 && binary.BigEndian.Uint64([]byte(iv)) != seq {
				t.Errorf("%v: seq %#x sealed with IV %x, want the sequence number (RFC 4106 §3.1)", s, seq, iv)
			}
			if prev, dup := seen[iv]; dup {
				t.Errorf("%v: seq %d and %d share IV %x", s, prev, seq, iv)
			}
			seen[iv] = seq
		}
	}
}

func TestTamper(t *testing.T) {
	for _, s := range implemented(t) {
		c := mustNew(t, s)
		const seq = 0x00000007_00000100
		for _, esn := range []bool{false, true} {
			pkt0, _ := testPacket(c, 0xdeadbeef, seq, 100)
			c.Seal(pkt0, seq, esn)
			ivEnd := espHdrLen + c.IVLen()
			icv := len(pkt0) - c.ICVLen()
			cases := map[string]int{
				"SPI":        0,
				"seq":        5,
				"IV":         espHdrLen + 1,
				"ciphertext": ivEnd + 17,
				"last block": icv - 1,
				"ICV first":  icv,
				"ICV last":   len(pkt0) - 1,
			}
			for name, off := range cases {
				pkt := bytes.Clone(pkt0)
				pkt[off] ^= 0x40
				if err := c.Open(pkt, seq, esn); err != ErrAuth {
					t.Errorf("%v esn=%v: flipped %s: Open = %v, want ErrAuth", s, esn, name, err)
				}
			}
			// Wrong high bits: authenticated only when ESN is on.
			pkt := bytes.Clone(pkt0)
			err := c.Open(pkt, seq+1<<32, esn)
			if esn && err != ErrAuth {
				t.Errorf("%v: ESN high bits changed: Open = %v, want ErrAuth", s, err)
			}
			if !esn && err != nil {
				t.Errorf("%v: without ESN the high bits must not matter: Open = %v", s, err)
			}
			// Sealed without ESN, opened with (and vice versa).
			pkt = bytes.Clone(pkt0)
			if err := c.Open(pkt, seq, !esn); err != ErrAuth {
				t.Errorf("%v: sealed esn=%v, opened esn=%v: Open = %v, want ErrAuth", s, esn, !esn, err)
			}
			// Another integrity key (CBC) or salt (GCM): the last KEYMAT
			// byte; for GCM also another cipher key.
			flips := []int{s.KeymatLen() - 1}
			if c.ICVLen() == 16 && c.IVLen() == 8 {
				flips = append(flips, 0)
			}
			for _, i := range flips {
				other := testKeymat(s)
				other[i] ^= 1
				c2, _ := New(s, other)
				pkt = bytes.Clone(pkt0)
				if err := c2.Open(pkt, seq, esn); err != ErrAuth {
					t.Errorf("%v: KEYMAT byte %d changed: Open = %v, want ErrAuth", s, i, err)
				}
			}
			// Truncated packets.
			for _, n := range []int{0, 7, espHdrLen + c.IVLen() + c.ICVLen()} {
				if err := c.Open(bytes.Clone(pkt0[:n]), seq, esn); err != ErrShort {
					t.Errorf("%v: %d-byte packet: Open = %v, want ErrShort", s, n, err)
				}
			}
		}
	}
}

// TestConcurrent seals and opens from many goroutines on one Cipher; run
// with -race.
func TestConcurrent(t *testing.T) {
	for _, s := range implemented(t) {
		c := mustNew(t, s)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					seq := uint64(g)<<40 | uint64(i)
					pkt, plain := testPacket(c, 9, seq, 40+i)
					c.Seal(pkt, seq, g%2 == 0)
					if err := c.Open(pkt, seq, g%2 == 0); err != nil || !bytes.Equal(plainRegion(c, pkt), plain) {
						errs <- fmt.Errorf("%v goroutine %d packet %d: Open = %v", s, g, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, s := range Suites() {
		c, err := New(s, testKeymat(s))
		if err != nil {
			continue
		}
		for _, n := range []int{64, 512, 1400} {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				pkt, _ := testPacket(c, 1, 1, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					c.Seal(pkt, uint64(i), true)
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, s := range Suites() {
		c, err := New(s, testKeymat(s))
		if err != nil {
			continue
		}
		for _, n := range []int{64, 512, 1400} {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				pkt, _ := testPacket(c, 1, 1, n)
				c.Seal(pkt, 1, true)
				sealed := bytes.Clone(pkt)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					copy(pkt, sealed)
					if err := c.Open(pkt, 1, true); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
