package dh

import (
	"crypto/rand"
	"testing"
)

// BenchmarkGenerate and BenchmarkSharedSecret time the two DH steps of an
// IKE exchange per group: the slow part of setting up an SA. Informative;
// compare groups within one run.
func BenchmarkGenerate(b *testing.B) {
	for _, id := range IDs() {
		g := mustGroup(b, id)
		b.Run(g.String(), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := g.Generate(rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSharedSecret(b *testing.B) {
	for _, id := range IDs() {
		g := mustGroup(b, id)
		priv, _, err := g.Generate(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		_, peer, err := g.Generate(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(g.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := priv.SharedSecret(peer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
