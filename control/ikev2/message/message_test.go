package message

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func spi(b byte) SPI { return SPI{b, 2, 3, 4, 5, 6, 7, 8} }

// ikeProposals is a typical initiator offer, two proposals.
func ikeProposals() []Proposal {
	return []Proposal{
		{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{
			EncrTransform(ENCR_AES_CBC, 256), EncrTransform(ENCR_AES_CBC, 128),
			PRFTransform(PRF_HMAC_SHA2_256), IntegTransform(AUTH_HMAC_SHA2_256_128),
			DHTransform(MODP_2048), DHTransform(ECP_256),
		}},
		{Num: 2, Protocol: ProtoIKE, Transforms: []Transform{
			EncrTransform(ENCR_AES_GCM_16, 128), PRFTransform(PRF_HMAC_SHA2_256), DHTransform(CURVE_25519),
		}},
	}
}

// everyPayload is one of each payload type, with non-trivial contents.
func everyPayload() []Payload {
	idi := IDAddr(netip.MustParseAddr("192.0.2.10"))
	idr := IDAddr(netip.MustParseAddr("2001:db8::1"))
	idr.Responder = true
	return []Payload{
		&SA{Proposals: ikeProposals()},
		&SA{Proposals: []Proposal{{Num: 3, Protocol: ProtoESP, SPI: []byte{0xc1, 2, 3, 4}, Transforms: []Transform{
			EncrTransform(ENCR_AES_GCM_16, 256), ESNTransform(false), ESNTransform(true),
			{Type: TransformDH, ID: 14, Attrs: []Attribute{{Type: 99, TV: true, Value: []byte{0, 1}}, {Type: 7, Value: []byte("xyz")}}},
		}}}},
		&SA{Proposals: []Proposal{{Num: 1, Protocol: ProtoIKE, SPI: bytes.Repeat([]byte{9}, 8), Transforms: []Transform{EncrTransform(ENCR_3DES, 0)}}}},
		&KE{Group: ECP_256, Data: bytes.Repeat([]byte{0xab}, 64)},
		&idi,
		&idr,
		&ID{IDType: ID_FQDN, Data: []byte("cgw.example")},
		&ID{Responder: true, IDType: ID_RFC822_ADDR, Data: []byte("a@example.org")},
		&ID{IDType: ID_KEY_ID, Data: []byte{1, 2, 3}},
		&Auth{Method: AuthSharedKeyMIC, Data: bytes.Repeat([]byte{1}, 32)},
		&Nonce{Data: bytes.Repeat([]byte{2}, 32)},
		&Notify{NotifyType: NAT_DETECTION_SOURCE_IP, Data: bytes.Repeat([]byte{3}, 20)},
		&Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, NotifyType: REKEY_SA},
		&Notify{NotifyType: INVALID_KE_PAYLOAD, Data: []byte{0, 14}},
		&Delete{Protocol: ProtoIKE},
		&Delete{Protocol: ProtoESP, SPIs: []uint32{0xc0ffee01, 0xc0ffee02}},
		&VendorID{Data: []byte("strongSwan")},
		&TrafficSelectors{Selectors: []TrafficSelector{mustTS("0.0.0.0/0"), mustTS("2001:db8::/32")}},
		&TrafficSelectors{Responder: true, Selectors: []TrafficSelector{
			{TSType: TS_IPV4_ADDR_RANGE, IPProtocol: 6, StartPort: 80, EndPort: 80,
				Start: netip.MustParseAddr("198.18.0.1"), End: netip.MustParseAddr("198.18.0.9")},
			{TSType: 9, IPProtocol: 0, Raw: []byte{1, 2, 3, 4, 5}},
		}},
		&Config{CfgType: CFG_REPLY, Attributes: []CfgAttribute{{Type: 1, Value: []byte{192, 0, 2, 1}}, {Type: 3}}},
		&Raw{PayloadType: PayloadCERTREQ, Data: []byte{4, 1, 2}},
		&Raw{PayloadType: PayloadEAP, Data: []byte{1, 1, 0, 4}},
	}
}

func mustTS(s string) TrafficSelector {
	ts, err := ParseTS(s)
	if err != nil {
		panic(err)
	}
	return ts
}

func TestRoundTripEveryPayload(t *testing.T) {
	for _, p := range everyPayload() {
		m := &Message{Header: Header{SPIi: spi(1), SPIr: spi(2), Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1}, Payloads: []Payload{p}}
		raw, err := Encode(m)
		if err != nil {
			t.Fatalf("%s: encode: %v", p.Type(), err)
		}
		got, err := Decode(raw)
		if err != nil {
			t.Fatalf("%s: decode: %v", p.Type(), err)
		}
		if !reflect.DeepEqual(got.Payloads, m.Payloads) {
			t.Errorf("%s: round trip\n got %#v\nwant %#v", p.Type(), got.Payloads[0], p)
		}
		again, err := Encode(got)
		if err != nil || !bytes.Equal(again, raw) {
			t.Errorf("%s: re-encoding differs (%v)", p.Type(), err)
		}
	}
}

func TestRoundTripWholeMessage(t *testing.T) {
	m := &Message{
		Header:   Header{SPIi: spi(1), SPIr: spi(2), Exchange: INFORMATIONAL, Flags: FlagResponse, MessageID: 0xfeedf00d},
		Payloads: everyPayload(),
	}
	raw, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Length != uint32(len(raw)) || got.NextPayload != PayloadSA || got.Major != 2 || got.Minor != 0 {
		t.Errorf("header %+v", got.Header)
	}
	got.Header.Length, got.Header.NextPayload, got.Major, got.Minor = 0, 0, 0, 0
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip differs:\n got %v\nwant %v", got, m)
	}
	// Decode must not alias its input.
	for i := range raw {
		raw[i] = 0
	}
	if n := Find[*Nonce](got); n == nil || n.Data[0] != 2 {
		t.Error("decoded payload aliases the input buffer")
	}
	if got.Notify(REKEY_SA) == nil || len(got.Notifies()) != 3 {
		t.Error("Notify/Notifies helpers")
	}
}

func TestHeaderBytes(t *testing.T) {
	m := &Message{Header: Header{SPIi: spi(0x11), SPIr: SPI{}, Exchange: IKE_SA_INIT, Flags: FlagInitiator, MessageID: 0}}
	raw, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x11, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 28}
	if !bytes.Equal(raw, want) {
		t.Errorf("header\n got % x\nwant % x", raw, want)
	}
}

// A hand-assembled IKE_SA_INIT request, every field written out with its
// RFC 7296 section, checked against the decoder field by field.
func TestDecodeHandVector(t *testing.T) {
	raw := []byte{
		// §3.1 header: SPIi, SPIr=0, next=SA(33), 2.0, IKE_SA_INIT, I, ID 0, length
		0x8a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0, 0, 0, 0, 0, 0, 0, 0,
		33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, // length patched below
		// §3.3 SA: next=KE(34), length 48
		34, 0, 0, 48,
		// §3.3.1 proposal: last, len 44, #1, IKE, SPI size 0, 4 transforms
		0, 0, 0, 44, 1, 1, 0, 4,
		// §3.3.2 ENCR AES_CBC + §3.3.5 key length 128 (TV, type 14)
		3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 0, 128,
		// PRF_HMAC_SHA2_256
		3, 0, 0, 8, 2, 0, 0, 5,
		// INTEG HMAC_SHA2_256_128
		3, 0, 0, 8, 3, 0, 0, 12,
		// DH 19 (ECP-256), last
		0, 0, 0, 8, 4, 0, 0, 19,
		// §3.4 KE: next=Nonce(40), group 19, 4 bytes of data (checking the
		// length against the group is the DH layer's job)
		40, 0, 0, 12, 0, 19, 0, 0, 0xde, 0xad, 0xbe, 0xef,
		// §3.9 Nonce: next=N(41), 16 bytes
		41, 0, 0, 20, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		// §3.10 N: next=200 (unknown), proto 0, SPI size 0, NAT_DETECTION_SOURCE_IP (16388), 20 bytes
		200, 0, 0, 28, 0, 0, 0x40, 0x04,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
		// payload type 200, critical bit clear: skipped (§2.5)
		0, 0, 0, 6, 0xaa, 0xbb,
	}
	binary.BigEndian.PutUint32(raw[24:], uint32(len(raw)))
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Exchange != IKE_SA_INIT || !m.FromInitiator() || m.IsResponse() || m.SPIi.String() != "8a1b2c3d4e5f6071" || !m.SPIr.IsZero() {
		t.Errorf("header %v", m.Header)
	}
	if len(m.Payloads) != 4 {
		t.Fatalf("payloads: %v", m)
	}
	sa := m.Payloads[0].(*SA)
	if got := FormatProposals(sa.Proposals); got != "[IKE:aes128-sha256-prfsha256-ecp256]" {
		t.Errorf("proposals %s", got)
	}
	if ke := m.Payloads[1].(*KE); ke.Group != ECP_256 || !bytes.Equal(ke.Data, []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Errorf("KE %+v", ke)
	}
	if n := m.Notify(NAT_DETECTION_SOURCE_IP); n == nil || len(n.Data) != 20 || n.Data[19] != 20 {
		t.Errorf("notify %+v", n)
	}
	if s := m.String(); s != "IKE_SA_INIT I[0] SA KE No N(NAT_DETECTION_SOURCE_IP)" {
		t.Errorf("String %q", s)
	}
	// Re-encoding drops the skipped payload and otherwise reproduces it.
	again, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), raw[:len(raw)-6]...)
	want[len(want)-28] = 0 // N's next payload: the unknown payload is gone
	binary.BigEndian.PutUint32(want[24:], uint32(len(want)))
	if !bytes.Equal(again, want) {
		t.Errorf("re-encoded\n got % x\nwant % x", again, want)
	}

	// The same unknown payload with the critical bit set rejects the
	// message with a typed error naming the type.
	raw[len(raw)-5] = 0x80
	m, err = Decode(raw)
	var ce *CriticalPayloadError
	if !errors.As(err, &ce) || ce.Type != 200 || m == nil || m.Exchange != IKE_SA_INIT {
		t.Fatalf("critical: %v", err)
	}
	if n, ok := NotifyFor(err); !ok || n.NotifyType != UNSUPPORTED_CRITICAL_PAYLOAD || !bytes.Equal(n.Data, []byte{200}) {
		t.Errorf("NotifyFor critical: %+v", n)
	}
}

func TestVersion(t *testing.T) {
	raw, _ := Encode(&Message{Header: Header{Exchange: IKE_SA_INIT, MessageID: 7}})
	raw[17] = 0x31
	m, err := Decode(raw)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Major != 3 || m == nil || m.MessageID != 7 {
		t.Fatalf("major 3: %v %v", m, err)
	}
	if n, ok := NotifyFor(err); !ok || n.NotifyType != INVALID_MAJOR_VERSION || !bytes.Equal(n.Data, []byte{0x20}) {
		t.Errorf("NotifyFor version: %+v", n)
	}
	raw[17] = 0x2f // minor version is ignored (§3.1)
	if _, err := Decode(raw); err != nil {
		t.Errorf("minor 15: %v", err)
	}
	if _, ok := NotifyFor(ErrIntegrity); ok {
		t.Error("integrity failures must not be answered")
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{EncrTransform(ENCR_AES_CBC, 128).String(), "aes128"},
		{EncrTransform(ENCR_AES_GCM_16, 256).String(), "aes256gcm16"},
		{EncrTransform(ENCR_AES_CBC, 0).String(), "aes"},
		{EncrTransform(ENCR_3DES, 0).String(), "3des"},
		{EncrTransform(ENCR_CHACHA20_POLY1305, 0).String(), "chacha20poly1305"},
		{EncrTransform(99, 128).String(), "ENCR_99(128)"},
		{IntegTransform(AUTH_HMAC_SHA1_96).String(), "sha1"},
		{IntegTransform(AUTH_HMAC_SHA2_512_256).String(), "sha512"},
		{PRFTransform(PRF_HMAC_SHA2_384).String(), "prfsha384"},
		{DHTransform(MODP_2048).String(), "modp2048"},
		{DHTransform(MODP_2048_S256).String(), "modp2048s256"},
		{DHTransform(ECP_521).String(), "ecp521"},
		{DHTransform(CURVE_25519).String(), "curve25519"},
		{ESNTransform(true).String(), "esn"},
		{ESNTransform(false).String(), "noesn"},
		{NO_PROPOSAL_CHOSEN.String(), "NO_PROPOSAL_CHOSEN"},
		{IKEV2_FRAGMENTATION_SUPPORTED.String(), "IKEV2_FRAGMENTATION_SUPPORTED"},
		{NotifyType(12345).String(), "ERROR_12345"},
		{NotifyType(40000).String(), "STATUS_40000"},
		{CREATE_CHILD_SA.String(), "CREATE_CHILD_SA"},
		{(FlagInitiator | FlagResponse).String(), "IR"},
		{PayloadTSr.String(), "TSr"},
		{Proposal{Protocol: ProtoESP, Transforms: []Transform{ESNTransform(false), EncrTransform(ENCR_AES_GCM_16, 128)}}.String(), "ESP:aes128gcm16-noesn"},
		{FormatProposals(ikeProposals()), "[IKE:aes256-aes128-sha256-prfsha256-modp2048-ecp256, IKE:aes128gcm16-prfsha256-curve25519]"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestReply(t *testing.T) {
	req := Header{SPIi: spi(1), Exchange: IKE_SA_INIT, Flags: FlagInitiator, MessageID: 0}
	r := req.Reply()
	if r.Flags != FlagResponse || r.SPIi != req.SPIi || r.Exchange != IKE_SA_INIT || r.MessageID != 0 {
		t.Errorf("reply to the initiator: %v", r)
	}
	// A request from the original responder (e.g. AWS rekeying) is
	// answered by the original initiator: I and R both set.
	req = Header{SPIi: spi(1), SPIr: spi(2), Exchange: CREATE_CHILD_SA, Flags: 0, MessageID: 7}
	if r := req.Reply(); r.Flags != FlagResponse|FlagInitiator || r.MessageID != 7 || r.SPIr != req.SPIr {
		t.Errorf("reply to the responder: %v", r)
	}
	m := req.ErrorReply(Notify{NotifyType: INVALID_KE_PAYLOAD, Data: []byte{0, 14}})
	raw, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(raw)
	if err != nil || got.String() != "CREATE_CHILD_SA IR[7] N(INVALID_KE_PAYLOAD)" {
		t.Errorf("%v %v", got, err)
	}
	// IKEv1 (major 1) is reported but not answered; IKEv3 is answered.
	raw[17] = 0x10
	if _, err := Decode(raw); err == nil {
		t.Error("IKEv1 header accepted")
	} else if _, ok := NotifyFor(err); ok {
		t.Error("an IKEv1 message would be answered with INVALID_MAJOR_VERSION")
	}
}
