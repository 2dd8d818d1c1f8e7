package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkOverhead measures each suite's Seal against the bare primitive
// doing the same work with nothing around it (one goroutine, state reused,
// no pool, no IV derivation): what a single-threaded caller could not go
// below with the standard library. The two alternate in chunks of 256
// operations, so load from other processes hits both alike; the reported
// "x-raw" is the median over chunks of Seal's time over the primitive's.
func BenchmarkOverhead(b *testing.B) {
	for _, s := range []Suite{
		{ENCR_AES_GCM_16, 128, AUTH_NONE},
		{ENCR_AES_GCM_16, 256, AUTH_NONE},
		{ENCR_AES_CBC, 128, AUTH_HMAC_SHA1_96},
		{ENCR_AES_CBC, 128, AUTH_HMAC_SHA2_256_128},
		{ENCR_AES_CBC, 256, AUTH_HMAC_SHA2_512_256},
	} {
		c := mustNew(b, s)
		e, g := s.encr(), s.integ()
		km := testKeymat(s)
		block, _ := aes.NewCipher(km[:e.keyLen])
		for _, n := range []int{64, 1400} {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				pkt, _ := testPacket(c, 1, 1, n)
				raw := rawSeal(pkt, block, e, g, km)
				seq := uint64(0)
				const chunk = 256
				var ratios []float64
				var sealTime time.Duration
				b.ResetTimer()
				for done := 0; done < b.N; done += chunk {
					t0 := time.Now()
					for range chunk {
						raw()
					}
					t1 := time.Now()
					for range chunk {
						seq++
						c.Seal(pkt, seq, false)
					}
					t2 := time.Now()
					sealTime += t2.Sub(t1)
					ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
				}
				b.StopTimer()
				slices.Sort(ratios)
				b.ReportMetric(ratios[len(ratios)/2], "x-raw")
				b.ReportMetric(float64(sealTime.Nanoseconds())/float64(len(ratios)*chunk), "ns/seal")
			})
		}
	}
}

// rawSeal is the bare primitive work of one Seal on pkt.
func rawSeal(pkt []byte, block cipher.Block, e *encrSpec, g *integSpec, km []byte) func() {
	if e.icvLen > 0 {
		aead, _ := cipher.NewGCM(block)
		nonce := make([]byte, 12)
		body := pkt[espHdrLen+e.ivLen : len(pkt)-e.icvLen]
		return func() { aead.Seal(body[:0], nonce, body, pkt[:espHdrLen]) }
	}
	iv := pkt[espHdrLen : espHdrLen+e.ivLen]
	end := len(pkt) - g.ICVLen
	body := pkt[espHdrLen+e.ivLen : end]
	enc := cipher.NewCBCEncrypter(block, iv)
	mac := hmac.New(g.Hash, km[e.keyLen:])
	sum := make([]byte, 0, 64)
	return func() {
		enc.(ivSetter).SetIV(iv)
		enc.CryptBlocks(body, body)
		mac.Reset()
		mac.Write(pkt[:end])
		copy(pkt[end:], mac.Sum(sum))
	}
}

// BenchmarkSealParallel: one Cipher shared by GOMAXPROCS workers, as one
// tunnel's SA is shared by the dataplane's per-queue workers.
func BenchmarkSealParallel(b *testing.B) {
	for _, s := range []Suite{{ENCR_AES_GCM_16, 128, AUTH_NONE}, {ENCR_AES_CBC, 128, AUTH_HMAC_SHA2_256_128}} {
		c := mustNew(b, s)
		b.Run(fmt.Sprintf("%v/1400", s), func(b *testing.B) {
			b.SetBytes(1400)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				pkt, _ := testPacket(c, 1, 1, 1400)
				for i := uint64(0); pb.Next(); i++ {
					c.Seal(pkt, i, true)
				}
			})
		})
	}
}
