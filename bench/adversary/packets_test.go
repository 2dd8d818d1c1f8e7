package adversary

import (
	"net/netip"
	"testing"

	isakmp "github.com/cgw-project/cgw/control/ikev1/message"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// The probes' hand-made messages must be what they claim: the project's
// own decoders read them (so a probe that "passes" is not just sending
// bytes the gateway cannot parse). No root needed.

func TestSAInitDecodes(t *testing.T) {
	spi, nonce := RandomSPI(), RandomBytes(32)
	cookie := ZeroSecretCookie(0xff, nonce, netip.MustParseAddr("203.0.113.2"), spi)
	m, err := message.Decode(SAInit(spi, nonce, RandomKE(), cookie))
	if err != nil {
		t.Fatal(err)
	}
	if m.Exchange != message.IKE_SA_INIT || m.SPIi != message.SPI(spi) || !m.SPIr.IsZero() || !m.FromInitiator() || m.IsResponse() {
		t.Fatalf("header %+v", m.Header)
	}
	if n, ok := m.Payloads[0].(*message.Notify); !ok || n.NotifyType != message.COOKIE || string(n.Data) != string(cookie) {
		t.Fatalf("first payload %+v, want the COOKIE", m.Payloads[0])
	}
	sa, ke, no := message.Find[*message.SA](m), message.Find[*message.KE](m), message.Find[*message.Nonce](m)
	if sa == nil || ke == nil || no == nil || ke.Group != 14 || len(ke.Data) != 256 || string(no.Data) != string(nonce) {
		t.Fatalf("SA %v KE %v Nonce %v", sa, ke, no)
	}
	if got := message.FormatProposals(sa.Proposals); got == "" {
		t.Fatal("no proposal")
	} else {
		t.Logf("proposal: %s", got)
	}
	r, ok := ParseIKEv2(SAInit(spi, nonce, RandomKE(), cookie))
	if !ok || r.SPIi != spi || r.Exchange != ExchIKESAInit || string(r.Cookie) != string(cookie) || !r.HasKE {
		t.Fatalf("ParseIKEv2: %+v", r)
	}
}

func TestMalformedSKHeaders(t *testing.T) {
	spii, spir := RandomSPI(), RandomSPI()
	for name, b := range MalformedSK(spii, spir, FlagInitiator, 7) {
		h, err := message.DecodeHeader(b)
		if name[len(name)-len("bad-length"):] == "bad-length" {
			if err == nil && int(h.Length) == len(b) {
				t.Errorf("%s: the header length matches the datagram", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: header does not decode: %v", name, err)
			continue
		}
		if h.SPIi != message.SPI(spii) || h.SPIr != message.SPI(spir) || h.MessageID != 7 || !h.FromInitiator() || h.IsResponse() {
			t.Errorf("%s: header %+v", name, h)
		}
	}
}

func TestMainMode1Decodes(t *testing.T) {
	cky := RandomSPI()
	m, err := isakmp.Decode(MainMode1(cky))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.CkyI != cky || m.Header.CkyR != ([8]byte{}) || m.Header.Exchange != isakmp.ExchIdentityProt {
		t.Fatalf("header %+v", m.Header)
	}
	p := isakmp.Find(m.Payloads, isakmp.PayloadSA)
	if p == nil {
		t.Fatal("no SA payload")
	}
	sa, err := isakmp.ParseSA(p.Body)
	if err != nil || len(sa.Proposals) != 1 || len(sa.Proposals[0].Transforms) != 1 {
		t.Fatalf("SA %+v: %v", sa, err)
	}
	tr := sa.Proposals[0].Transforms[0]
	for _, a := range [][2]uint64{{isakmp.AttrEncr, isakmp.EncrAESCBC}, {isakmp.AttrKeyLength, 128}, {isakmp.AttrHash, 4}, {isakmp.AttrAuth, isakmp.AuthPSK}, {isakmp.AttrGroup, 14}} {
		if v, ok := tr.Get(uint16(a[0])); !ok || v != a[1] {
			t.Errorf("attribute %d = %d, want %d", a[0], v, a[1])
		}
	}
}
