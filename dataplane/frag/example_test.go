package frag_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cgw-project/cgw/dataplane/frag"
)

// A worker's use of the stage between MSS clamping and ESP encapsulation.
// Frames are slices of one UMEM; a frame address is recovered from an
// output slice by its position in the UMEM, so the stage never needs to
// know about descriptors.
func ExampleFragmenter_Packet() {
	f, err := frag.New(frag.Config{MTU: 1399, Gateway4: netip.MustParseAddr("198.18.0.1")})
	if err != nil {
		panic(err)
	}
	const frameSize, headroom = 2048, 256
	umem := make([]byte, 8*frameSize)
	frame := func(i int) []byte { return umem[i*frameSize+headroom : (i+1)*frameSize] }

	// Received: a 1500-byte IPv4 packet without DF, and one with DF.
	pkts := [][]byte{frame(0)[:1500], frame(1)[:1500]}
	for i, p := range pkts {
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], 1500)
		p[8], p[9] = 64, 17
		copy(p[12:], []byte{198, 18, 0, 10})
		copy(p[16:], []byte{198, 19, 0, 20})
		if i == 1 {
			p[6] = 0x40 // DF
		}
	}
	free := [][]byte{frame(2), frame(3), frame(4)} // from the worker's free list
	for _, p := range pkts {
		out := append([][]byte(nil), free...)
		first, n, r := f.Packet(p, out)
		fmt.Println(r)
		switch r {
		case frag.Fragmented:
			fmt.Println("to ESP: frame", (len(umem)-cap(p))/frameSize, "length", first)
			for _, q := range out[:n] {
				fmt.Println("to ESP: frame", (len(umem)-cap(q))/frameSize, "length", len(q))
			}
			free = free[n:]
		case frag.FragNeeded:
			fmt.Println("back to the LAN: frame", (len(umem)-cap(out[0]))/frameSize, "length", len(out[0]))
			free = free[1:]
		}
	}
	// Output:
	// fragmented
	// to ESP: frame 0 length 1396
	// to ESP: frame 2 length 124
	// icmp_frag_needed
	// back to the LAN: frame 3 length 576
}
