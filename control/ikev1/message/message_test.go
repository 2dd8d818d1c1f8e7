package message

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/crypto/prf"
)

func sampleSA() SA {
	return SA{Proposals: []Proposal{{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []Transform{
		{ID: ESPTransformID, Attrs: []Attr{{AttrSALifeType, LifeSecs}, {AttrSALifeDur, 100000}, {AttrEncapMode, EncapTunnel}, {AttrAuthAlg, 2}, {AttrESPKeyLength, 128}}},
		{ID: ESPTransformID, Attrs: []Attr{{AttrESPKeyLength, 256}}},
	}}}}
}

func TestSARoundTrip(t *testing.T) {
	sa := sampleSA()
	got, err := ParseSA(sa.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Proposals) != 1 || len(got.Proposals[0].Transforms) != 2 || !bytes.Equal(got.Proposals[0].SPI, []byte{1, 2, 3, 4}) {
		t.Fatalf("round trip: %+v", got)
	}
	if v, ok := got.Proposals[0].Transforms[0].Get(AttrSALifeDur); !ok || v != 100000 {
		t.Fatalf("life duration (TLV) = %d %v", v, ok)
	}
	if v, _ := got.Proposals[0].Transforms[1].Get(AttrESPKeyLength); v != 256 {
		t.Fatalf("key length = %d", v)
	}
}

func TestIDSubnet(t *testing.T) {
	for _, s := range []string{"0.0.0.0/0", "10.1.0.0/16", "192.0.2.1/32"} {
		p := netip.MustParsePrefix(s)
		got, err := SubnetID(p).Prefix()
		if err != nil || got != p {
			t.Fatalf("%s: %v %v", s, got, err)
		}
	}
}

func TestSealOpen(t *testing.T) {
	h, _ := prf.LookupIKEv1Hash(4)
	c, err := NewCrypter(bytes.Repeat([]byte{7}, 32), h)
	if err != nil {
		t.Fatal(err)
	}
	iv := c.Phase1IV([]byte("gxi"), []byte("gxr"))
	ps := []Payload{{Type: PayloadHash, Body: make([]byte, 32)}, {Type: PayloadNotify, Body: Notify{Protocol: ProtoISAKMP, Type: NotifyRUThere, SPI: make([]byte, 16), Data: []byte{0, 0, 0, 9}}.Encode()}}
	pkt, next := c.Seal(Header{Exchange: ExchInformation, MsgID: 5}, ps, iv)
	hd, err := DecodeHeader(pkt)
	if err != nil {
		t.Fatal(err)
	}
	m, next2, err := c.Open(hd, pkt, iv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(next, next2) || len(m.Payloads) != 2 {
		t.Fatalf("open: %d payloads", len(m.Payloads))
	}
	n, err := ParseNotify(m.Payloads[1].Body)
	if err != nil || n.Type != NotifyRUThere || !bytes.Equal(n.Data, []byte{0, 0, 0, 9}) {
		t.Fatalf("notify %+v %v", n, err)
	}
	if !bytes.Equal(m.Raw[m.Payloads[1].Start:], EncodePayloads(ps[1:])) {
		t.Fatal("Raw after HASH differs from the encoded payloads")
	}
}
