package mss

import (
	"encoding/binary"
	"testing"
)

// BenchmarkClamp measures one packet through Clamp: a SYN that must be
// clamped (its MSS is re-armed each round, which the loop includes), and
// the common case of a non-SYN segment.
func BenchmarkClamp(b *testing.B) {
	syn := buildSYN(synSpec{flags: 0x02, tcpOpts: []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}})
	ack := buildSYN(synSpec{flags: 0x10, payload: make([]byte, 1300)})
	syn6 := buildSYN(synSpec{v6: true, flags: 0x02, tcpOpts: []byte{2, 4, 5, 0xa0, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}})
	b.Run("syn4", func(b *testing.B) {
		for b.Loop() {
			binary.BigEndian.PutUint16(syn[22:], 1460)
			Clamp(syn, 1379, 1359)
		}
	})
	b.Run("syn6", func(b *testing.B) {
		for b.Loop() {
			binary.BigEndian.PutUint16(syn6[42:], 1440)
			Clamp(syn6, 1379, 1359)
		}
	})
	b.Run("nonsyn4", func(b *testing.B) {
		for b.Loop() {
			Clamp(ack, 1379, 1359)
		}
	})
	b.Run("batch64-nonsyn", func(b *testing.B) {
		c, _ := New(0, 0)
		batch := make([][]byte, 64)
		for i := range batch {
			batch[i] = ack
		}
		for b.Loop() {
			c.Batch(batch)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/pkt")
	})
}
