package ikev1

import (
	"testing"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// TestDefaultMM1Size: Main Mode message 1 carries one transform per
// cipher × hash × group (36 bytes each). With the default proposal it
// must fit a 576-byte IPv4 datagram (RFC 791: every host takes it
// unfragmented), so no fragment-dropping middlebox can stop the first
// packet. AWS's full list made 96 transforms, a 3572-byte datagram.
func TestDefaultMM1Size(t *testing.T) {
	var trs []message.Transform
	for _, c := range phase1Choices(config.DefaultPhase1(1)) {
		trs = append(trs, c.transform())
	}
	sa := message.SA{Proposals: []message.Proposal{{Protocol: message.ProtoISAKMP, Transforms: trs}}}.Encode()
	pkt := message.Encode(message.Header{Exchange: message.ExchIdentityProt}, []message.Payload{{Type: message.PayloadSA, Body: sa},
		{Type: message.PayloadVendor, Body: message.VIDNATT}, {Type: message.PayloadVendor, Body: message.VIDDPD}})
	// IPv4 + UDP headers, and the 4-byte non-ESP marker on port 4500.
	size := 20 + 8 + 4 + len(pkt)
	t.Logf("IKEv1 MM1 with the default proposal: %d transforms, %d bytes ISAKMP, %d-byte IPv4 datagram on UDP 4500", len(trs), len(pkt), size)
	if size > 576 {
		t.Errorf("MM1 is a %d-byte datagram (%d transforms): over 576", size, len(trs))
	}
}
