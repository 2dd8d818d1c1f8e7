package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"slices"
	"testing"
	"time"

	"github.com/cgw-project/cgw/crypto/transform"
)

// rawCipher is the baseline: the same crypto on the same bytes, called
// directly through crypto/cipher and crypto/hmac with a fixed nonce/IV and
// no ESP framing, so the difference is what this package (and the
// transform wrapper) add.
type rawCipher struct {
	ivLen, icvLen int
	aead          cipher.AEAD
	nonce         [12]byte
	enc, dec      cipher.BlockMode
	mac           hash.Hash
	sum           [64]byte
}

type ivSetter interface{ SetIV([]byte) }

func newRaw(b *testing.B, s transform.Suite) *rawCipher {
	km := keymatFor(s, 0x11)
	ek, ak := splitKeymat(s, km)
	r := &rawCipher{}
	if s.Encr == transform.ENCR_AES_GCM_16 {
		blk, _ := aes.NewCipher(ek[:len(ek)-4])
		r.aead, _ = cipher.NewGCM(blk)
		copy(r.nonce[:], ek[len(ek)-4:])
		r.ivLen, r.icvLen = 8, 16
		return r
	}
	blk, _ := aes.NewCipher(ek)
	var iv [16]byte
	r.enc = cipher.NewCBCEncrypter(blk, iv[:])
	r.dec = cipher.NewCBCDecrypter(blk, iv[:])
	h := map[transform.IntegID]func() hash.Hash{
		transform.AUTH_HMAC_SHA1_96: sha1.New, transform.AUTH_HMAC_SHA2_256_128: sha256.New,
		transform.AUTH_HMAC_SHA2_384_192: sha512.New384, transform.AUTH_HMAC_SHA2_512_256: sha512.New,
	}[s.Integ]
	r.mac = hmac.New(h, ak)
	r.mac.Reset()
	r.ivLen = 16
	r.icvLen = map[transform.IntegID]int{2: 12, 12: 16, 13: 24, 14: 32}[s.Integ]
	return r
}

// seal: e is an ESP packet [hdr 8][iv][plaintext][icv].
func (r *rawCipher) seal(e []byte) {
	body, end := 8+r.ivLen, len(e)-r.icvLen
	if r.aead != nil {
		r.aead.Seal(e[body:body], r.nonce[:], e[body:end], e[:8])
		return
	}
	r.enc.(ivSetter).SetIV(e[8:body])
	r.enc.CryptBlocks(e[body:end], e[body:end])
	r.mac.Reset()
	r.mac.Write(e[:end])
	copy(e[end:], r.mac.Sum(r.sum[:0])[:r.icvLen])
}

func (r *rawCipher) open(e []byte) bool {
	body, end := 8+r.ivLen, len(e)-r.icvLen
	if r.aead != nil {
		_, err := r.aead.Open(e[body:body], r.nonce[:], e[body:], e[:8])
		return err == nil
	}
	r.mac.Reset()
	r.mac.Write(e[:end])
	if subtle.ConstantTimeCompare(r.mac.Sum(r.sum[:0])[:r.icvLen], e[end:]) != 1 {
		return false
	}
	r.dec.(ivSetter).SetIV(e[8:body])
	r.dec.CryptBlocks(e[body:end], e[body:end])
	return true
}

func median(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds())
}

// BenchmarkESP measures, for every suite and inner size, Encap (in
// batches of 32 via encapBatch) and Decap (decapBatch, with the replay
// window) against the raw cipher on the same bytes, interleaved in chunks
// in the same run so machine noise hits both alike. ns/op is this
// package's cost per packet; raw-ns/op the bare cipher's; ratio-vs-raw and
// ns-over-raw compare them; all are medians over chunks of 64 packets.
// Buffer resets between chunks are not timed.
func BenchmarkESP(b *testing.B) {
	for _, s := range transform.Suites() {
		for _, n := range []int{64, 512, 1400} {
			b.Run(fmt.Sprintf("%v/%d/encap", s, n), func(b *testing.B) { benchESP(b, s, n, false) })
			b.Run(fmt.Sprintf("%v/%d/decap", s, n), func(b *testing.B) { benchESP(b, s, n, true) })
		}
	}
}

func benchESP(b *testing.B, s transform.Suite, n int, decap bool) {
	const chunk, batch = 64, 32
	out, in := newPair(b, s, pairOpts{window: 1024, dscpCopy: true})
	raw := newRaw(b, s)
	inner := inner4(n, 0, true, 1)
	bufs := make([][]byte, chunk)
	offs, lens := make([]int, chunk), make([]int, chunk)
	res := make([]Reason, chunk)
	for i := range bufs {
		bufs[i], _ = frame(inner)
	}
	// The raw cipher works on the same frames: an ESP packet of the same
	// length around the same inner bytes.
	espLen := 8 + out.ivLen + n + padLen(n, out.align) + 2 + out.icvLen
	espOff := MaxHeadroom - 8 - out.ivLen
	resetInner := func() {
		for i := range bufs {
			copy(bufs[i][MaxHeadroom:], inner)
			offs[i], lens[i] = MaxHeadroom, n
		}
	}
	encapAll := func() {
		for i := 0; i < chunk; i += batch {
			if encapBatch(out, bufs[i:i+batch], offs[i:i+batch], lens[i:i+batch], res[i:i+batch]) != batch {
				b.Fatal(res[i])
			}
		}
	}
	// Per-chunk times; the medians are reported, so a chunk in which the
	// scheduler preempted us (the machines are shared) does not skew them.
	ours := make([]time.Duration, 0, b.N/chunk+1)
	base := make([]time.Duration, 0, b.N/chunk+1)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		// Ours.
		resetInner()
		if decap {
			encapAll()
			t0 := time.Now()
			for i := 0; i < chunk; i += batch {
				if decapBatch(in, bufs[i:i+batch], offs[i:i+batch], lens[i:i+batch], res[i:i+batch]) != batch {
					b.Fatal(res[i])
				}
			}
			ours = append(ours, time.Since(t0))
		} else {
			t0 := time.Now()
			encapAll()
			ours = append(ours, time.Since(t0))
		}
		// Raw cipher on the same bytes.
		resetInner()
		if decap {
			for _, f := range bufs {
				raw.seal(f[espOff : espOff+espLen])
			}
			t0 := time.Now()
			for _, f := range bufs {
				if !raw.open(f[espOff : espOff+espLen]) {
					b.Fatal("raw open failed")
				}
			}
			base = append(base, time.Since(t0))
		} else {
			t0 := time.Now()
			for _, f := range bufs {
				raw.seal(f[espOff : espOff+espLen])
			}
			base = append(base, time.Since(t0))
		}
	}
	b.StopTimer()
	o, r := median(ours)/chunk, median(base)/chunk
	b.ReportMetric(o, "ns/op")
	b.ReportMetric(r, "raw-ns/op")
	b.ReportMetric(o/r, "ratio-vs-raw")
	b.ReportMetric(o-r, "ns-over-raw")
}
