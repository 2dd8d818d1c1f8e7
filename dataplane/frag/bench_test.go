package frag

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkFrag: per packet, with the copy that restores the input each
// round measured alone as "copy-only" for subtraction in the same run.
func BenchmarkFrag(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	f := newF(b, Config{})
	p1500 := build4(r, pkt4Spec{payload: 1480})
	p1500DF := build4(r, pkt4Spec{payload: 1480, df: true})
	p6 := build6(r, src6, 17, nil, 1460, 0)
	small := build4(r, pkt4Spec{payload: 1000})
	buf := make([]byte, 2048)
	mem := frames(2, 2048)
	out := make([][]byte, 2)
	b.Run("copy-only-1500", func(b *testing.B) {
		for b.Loop() {
			copy(buf, p1500)
			copy(out, mem)
		}
	})
	b.Run("fits-1020", func(b *testing.B) {
		for b.Loop() {
			f.Packet(small, out)
		}
	})
	b.Run("split-1500-mtu1399", func(b *testing.B) {
		for b.Loop() {
			pkt := buf[:copy(buf, p1500)]
			copy(out, mem)
			f.Packet(pkt, out)
		}
	})
	b.Run("icmp-frag-needed", func(b *testing.B) {
		for b.Loop() {
			copy(out, mem)
			f.Packet(p1500DF, out)
		}
	})
	b.Run("icmp6-too-big", func(b *testing.B) {
		for b.Loop() {
			copy(out, mem)
			f.Packet(p6, out)
		}
	})
}
