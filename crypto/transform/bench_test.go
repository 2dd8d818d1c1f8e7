package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"fmt"
	"testing"
)

// BenchmarkOverhead measures, side by side in one run, each suite's Seal
// against the bare primitive doing the same work with nothing around it
// (one goroutine, state reused, no pool, no IV derivation): the "raw"
// figure is what a single-threaded caller could not go below with the
// standard library; the difference is the price of safe concurrent use.
func BenchmarkOverhead(b *testing.B) {
	for _, s := range []Suite{
		{ENCR_AES_GCM_16, 128, AUTH_NONE},
		{ENCR_AES_CBC, 128, AUTH_HMAC_SHA1_96},
		{ENCR_AES_CBC, 128, AUTH_HMAC_SHA2_256_128},
	} {
		c := mustNew(b, s)
		e, g := s.encr(), s.integ()
		km := testKeymat(s)
		block, _ := aes.NewCipher(km[:e.keyLen])
		for _, n := range []int{64, 1400} {
			pkt, _ := testPacket(c, 1, 1, n)
			body := pkt[espHdrLen+c.IVLen() : len(pkt)-c.ICVLen()]
			b.Run(fmt.Sprintf("%v/%d/raw", s, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				if e.icvLen > 0 {
					aead, _ := cipher.NewGCM(block)
					nonce := make([]byte, 12)
					for b.Loop() {
						aead.Seal(body[:0], nonce, body, pkt[:8])
					}
					return
				}
				iv := pkt[8:24]
				enc := cipher.NewCBCEncrypter(block, iv)
				mac := hmac.New(g.newHash, km[e.keyLen:])
				sum := make([]byte, 0, 64)
				end := len(pkt) - g.icvLen
				for b.Loop() {
					enc.(ivSetter).SetIV(iv)
					enc.CryptBlocks(body, body)
					mac.Reset()
					mac.Write(pkt[:end])
					copy(pkt[end:], mac.Sum(sum))
				}
			})
			b.Run(fmt.Sprintf("%v/%d/cipher", s, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				for i := 0; b.Loop(); i++ {
					c.Seal(pkt, uint64(i), false)
				}
			})
		}
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
