package message

import (
	"errors"
	"fmt"
)

// The receive path of an IKE endpoint on UDP 4500: classify the datagram,
// route by the header, open protected messages, and turn decode errors
// into the notification to answer with (or silence).
func Example_receive() {
	p := Proposal{Protocol: ProtoIKE, Transforms: []Transform{
		EncrTransform(ENCR_AES_GCM_16, 128), PRFTransform(PRF_HMAC_SHA2_256), DHTransform(ECP_256)}}
	le, la, _ := SKLengths(p)
	keys, _ := NewKeys(p, make([]byte, le), make([]byte, la), make([]byte, le), make([]byte, la))

	// What the peer (the original initiator) sends: an INFORMATIONAL
	// request deleting a CHILD_SA.
	req := &Message{Header: Header{Exchange: INFORMATIONAL, Flags: FlagInitiator, MessageID: 5},
		Payloads: []Payload{&Delete{Protocol: ProtoESP, SPIs: []uint32{0xc0ffee01}}}}
	sealed, _ := EncodeEncrypted(req, keys)
	datagram := AppendMarked(nil, sealed)

	for _, d := range [][]byte{{0xff}, datagram} {
		kind, ike := Classify4500(d)
		if kind != Datagram4500IKE {
			fmt.Println("not IKE:", kind == Datagram4500Keepalive)
			continue
		}
		h, err := DecodeHeader(ike) // find the IKE SA by h.SPIi/h.SPIr
		if err != nil {
			continue
		}
		m, err := DecodeEncrypted(ike, keys)
		if errors.Is(err, ErrIntegrity) {
			continue // drop silently (§2.21.2)
		}
		if n, ok := NotifyFor(err); ok {
			_ = h.ErrorReply(n) // seal with EncodeEncrypted and send
			continue
		}
		fmt.Printf("%v %08x\n", m, Find[*Delete](m).SPIs[0])
		reply := &Message{Header: h.Reply(), Payloads: []Payload{&Delete{Protocol: ProtoESP, SPIs: []uint32{0xc0ffee02}}}}
		out, _ := EncodeEncrypted(reply, keys)
		back, _ := DecodeEncrypted(out, keys)
		fmt.Println(back)
	}
	// Output:
	// not IKE: true
	// INFORMATIONAL I[5] D c0ffee01
	// INFORMATIONAL R[5] D
}
