package esp_test

import (
	"fmt"
	"net/netip"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/esp"
	"github.com/cgw-project/cgw/dataplane/replay"
)

// A worker's view: frames carry MaxHeadroom bytes in front of the inner
// packet and MaxTailroom behind it; ReserveSeq takes a batch's sequence
// numbers and Encap builds each outer packet in place; on the receiving side Locate finds the SPI for the SA lookup and
// DecapESP returns the inner packet in place.
func Example() {
	suite := transform.Suite{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128}
	keymat := make([]byte, suite.KeymatLen()) // from IKE's prf+ in real life
	mk := func(w *replay.Window) *esp.SA {
		c, err := transform.New(suite, keymat)
		if err != nil {
			panic(err)
		}
		sa, err := esp.NewSA(esp.Config{
			SPI: 0xc0ffee01, Cipher: c, Replay: w,
			Src: netip.MustParseAddr("192.0.2.10"), Dst: netip.MustParseAddr("203.0.113.1"),
			UDPEncap: true, SrcPort: 4500, DstPort: 4500, DSCPCopy: true,
		})
		if err != nil {
			panic(err)
		}
		return sa
	}
	w, _ := replay.New(1024, false)
	out, in := mk(nil), mk(w)

	inner := []byte{0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 59, 0, 0, 198, 18, 0, 2, 198, 19, 0, 2}
	frame := make([]byte, esp.MaxHeadroom+len(inner)+esp.MaxTailroom)
	copy(frame[esp.MaxHeadroom:], inner)
	seq, _ := out.ReserveSeq(1) // a batch's numbers at once
	start, end, r := out.Encap(frame, esp.MaxHeadroom, len(inner), seq)
	fmt.Println("encap:", r, "outer bytes:", end-start)

	pkt := frame[start:end]
	espStart, espEnd, spi, r := esp.Locate(pkt)
	fmt.Printf("locate: %v spi %#x\n", r, spi)
	// ... look the SA up by spi ...
	s, e, r := in.DecapESP(pkt, espStart, espEnd)
	fmt.Println("decap:", r, "inner bytes:", e-s)
	_, _, r = in.DecapESP(pkt, espStart, espEnd)
	fmt.Println("again:", r)
	// Output:
	// encap: ok outer bytes: 84
	// locate: ok spi 0xc0ffee01
	// decap: ok inner bytes: 20
	// again: replayed
}
