package worker

import (
	"testing"
)

// FuzzPipeline feeds arbitrary frames to both directions (as if received
// on the inside, with or without tunnel metadata, and on the outside):
// no panic, and every frame is either transmitted or back in the free
// list.
func FuzzPipeline(f *testing.F) {
	a, b := pair(f)
	f.Add(append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1, 1, 8, 0}, ipv4(lanHost, vpcHost, 100, 64, false, 1)...), uint8(0))
	f.Add(append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1, 1, 0x86, 0xdd}, ipv6(lanHost6, vpcHost6, 100, 64, 1)...), uint8(1))
	sendOut(f, a, ipv4(lanHost, vpcHost, 200, 64, true, 2))
	for _, pk := range a.out.Outside {
		f.Add(append([]byte(nil), pk.Data()...), uint8(2))
	}
	a, b = pair(f)
	f.Fuzz(func(t *testing.T, frame []byte, mode uint8) {
		if len(frame) > 3000 {
			return
		}
		g := a
		if mode%3 == 2 {
			g = b
		}
		free := g.frames.FreeFrames()
		fa, _ := g.frames.Alloc()
		fb := g.frames.Frame(fa)
		copy(fb[memDataOff:], frame)
		pk := Packet{Buf: fb, Addr: fa, Off: memDataOff, Len: len(frame)}
		setMeta(&pk, 0)
		if mode%3 == 1 {
			setMeta(&pk, 1)
		}
		batch := append(g.p.NewBatch(), pk)
		g.out.Reset()
		if mode%3 == 2 {
			g.p.Inbound(g.view(), batch, g.out)
		} else {
			g.p.Outbound(g.view(), batch, g.out)
		}
		for _, o := range append(g.out.Outside, g.out.Inside...) {
			if o.Off < 0 || o.Off+o.Len > len(o.Buf) || o.Len <= 0 {
				t.Fatalf("output packet out of its frame: off %d len %d", o.Off, o.Len)
			}
			g.frames.Free(o.Addr)
		}
		if g.frames.FreeFrames() != free {
			t.Fatalf("%d frames lost", free-g.frames.FreeFrames())
		}
	})
}
