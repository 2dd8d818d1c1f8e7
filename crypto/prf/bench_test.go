package prf

import (
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

// BenchmarkIKESAKeys: SKEYSEED plus the seven IKE SA keys for an
// AES-256-GCM IKE SA, per PRF (control plane; informative).
func BenchmarkIKESAKeys(b *testing.B) {
	gir := make([]byte, 256)
	ni, nr, spi := make([]byte, 32), make([]byte, 32), make([]byte, 8)
	l, err := KeyLensFor(transform.Suite{Encr: transform.ENCR_AES_GCM_16, KeyBits: 256})
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range IDs() {
		p, _ := Lookup(id)
		b.Run(p.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := p.IKESAKeys(p.SKEYSEED(ni, nr, gir), ni, nr, spi, spi, l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
