package message

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// skProposals is every IKE proposal the SK payload implements.
func skProposals() []Proposal {
	var out []Proposal
	for _, bits := range []uint16{128, 192, 256} {
		out = append(out, Proposal{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{
			EncrTransform(ENCR_AES_GCM_16, bits), PRFTransform(PRF_HMAC_SHA2_256), DHTransform(ECP_256)}})
		for _, integ := range []Transform{IntegTransform(AUTH_HMAC_SHA1_96), IntegTransform(AUTH_HMAC_SHA2_256_128),
			IntegTransform(AUTH_HMAC_SHA2_384_192), IntegTransform(AUTH_HMAC_SHA2_512_256)} {
			out = append(out, Proposal{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{
				EncrTransform(ENCR_AES_CBC, bits), integ, PRFTransform(PRF_HMAC_SHA2_256), DHTransform(MODP_2048)}})
		}
	}
	return out
}

// testKeys derives distinct, recognisable SK_e/SK_a for each direction.
func testKeys(t testing.TB, p Proposal) *Keys {
	le, la, err := SKLengths(p)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(seed byte, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i)
		}
		return b
	}
	k, err := NewKeys(p, mk(1, le), mk(2, la), mk(3, le), mk(4, la))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func authMessage(flags Flags) *Message {
	idi := IDAddr(mustTS("192.0.2.10/32").Start)
	return &Message{
		Header: Header{SPIi: spi(1), SPIr: spi(2), Exchange: IKE_AUTH, Flags: flags, MessageID: 1},
		Payloads: []Payload{
			&idi,
			&Auth{Method: AuthSharedKeyMIC, Data: bytes.Repeat([]byte{7}, 32)},
			&SA{Proposals: []Proposal{{Num: 1, Protocol: ProtoESP, SPI: []byte{0xc1, 0, 0, 1}, Transforms: []Transform{
				EncrTransform(ENCR_AES_GCM_16, 128), ESNTransform(false)}}}},
			&TrafficSelectors{Selectors: []TrafficSelector{mustTS("0.0.0.0/0")}},
			&TrafficSelectors{Responder: true, Selectors: []TrafficSelector{mustTS("0.0.0.0/0")}},
			&Notify{NotifyType: INITIAL_CONTACT},
		},
	}
}

func TestSKRoundTrip(t *testing.T) {
	for _, p := range skProposals() {
		keys := testKeys(t, p)
		for _, flags := range []Flags{FlagInitiator, FlagResponse} {
			for _, payloads := range [][]Payload{authMessage(0).Payloads, nil} {
				m := authMessage(flags)
				m.Payloads = payloads
				raw, err := EncodeEncrypted(m, keys)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				// The outer view: one SK payload, lengths consistent.
				outer, err := Decode(raw)
				if err != nil || len(outer.Payloads) != 1 || outer.Payloads[0].Type() != PayloadSK {
					t.Fatalf("%s: outer decode %v: %v", p, outer, err)
				}
				got, err := DecodeEncrypted(raw, keys)
				if err != nil {
					t.Fatalf("%s %s: %v", p, flags, err)
				}
				got.Length, got.NextPayload, got.Major, got.Minor = 0, 0, 0, 0
				if !reflect.DeepEqual(got, m) {
					t.Errorf("%s %s: round trip\n got %v\nwant %v", p, flags, got, m)
				}
				// The other direction's keys must not open it.
				swapped := &Keys{Initiator: keys.Responder, Responder: keys.Initiator}
				if _, err := DecodeEncrypted(raw, swapped); !errors.Is(err, ErrIntegrity) {
					t.Errorf("%s %s: opened with the wrong direction's keys: %v", p, flags, err)
				}
			}
		}
	}
}

// Every single-bit change after the header must fail the integrity check,
// and no change anywhere may be accepted.
func TestSKTamper(t *testing.T) {
	for _, p := range skProposals()[:5] {
		keys := testKeys(t, p)
		raw, err := EncodeEncrypted(authMessage(FlagInitiator), keys)
		if err != nil {
			t.Fatal(err)
		}
		for i := range raw {
			bad := bytes.Clone(raw)
			bad[i] ^= 0x01
			_, err := DecodeEncrypted(bad, keys)
			switch {
			case err == nil:
				t.Fatalf("%s: flipping byte %d went unnoticed", p, i)
			case Verified(err):
				t.Fatalf("%s: flipping byte %d: %v counts as verified: a forgery would be answered", p, i, err)
			case i >= HeaderLen+4 && !errors.Is(err, ErrIntegrity):
				t.Errorf("%s: flipping byte %d (in SK body): %v, want ErrIntegrity", p, i, err)
			}
		}
		if _, err := DecodeEncrypted(raw[:len(raw)-1], keys); err == nil || Verified(err) {
			t.Errorf("%s: truncated message: %v, want an unverified error", p, err)
		}
	}
}

// An authentic message with a pad length larger than its plaintext is a
// syntax error, not an integrity failure (and must not panic).
func TestSKBadPadLength(t *testing.T) {
	for _, p := range []Proposal{skProposals()[0], skProposals()[2]} {
		keys := testKeys(t, p)
		c := keys.Initiator
		h := Header{SPIi: spi(1), SPIr: spi(2), Exchange: INFORMATIONAL, Flags: FlagInitiator, NextPayload: PayloadSK}
		pt := make([]byte, c.BlockSize()*((16+c.BlockSize()-1)/c.BlockSize()))
		pt[len(pt)-1] = 200
		n := HeaderLen + 4 + c.IVLen() + len(pt) + c.ICVLen()
		h.Length = uint32(n)
		b := h.append(nil)
		b = append(b, 0, 0, byte((n-HeaderLen)>>8), byte(n-HeaderLen))
		b = append(b, make([]byte, c.IVLen())...)
		b = append(b, pt...)
		b = append(b, make([]byte, c.ICVLen())...)
		if err := c.Seal(b, HeaderLen+4); err != nil {
			t.Fatal(err)
		}
		_, err := DecodeEncrypted(b, keys)
		if !errors.Is(err, ErrSyntax) || errors.Is(err, ErrIntegrity) || !Verified(err) {
			t.Errorf("%s: %v (verified %v), want a syntax error found after the ICV verified", p, err, Verified(err))
		}
	}
}

// Padding content is the sender's choice (§3.14): a receiver accepts any.
func TestSKArbitraryPadding(t *testing.T) {
	p := skProposals()[2] // aes128-sha256
	keys := testKeys(t, p)
	c := keys.Responder
	inner, err := appendChain(nil, []Payload{&Notify{NotifyType: INITIAL_CONTACT}})
	if err != nil {
		t.Fatal(err)
	}
	pt := append(inner, bytes.Repeat([]byte{0xa5}, 16+(16-(len(inner)+1)%16))...)
	pt = append(pt, byte(len(pt)-len(inner)))
	h := Header{SPIi: spi(1), SPIr: spi(2), Exchange: INFORMATIONAL, Flags: FlagResponse, NextPayload: PayloadSK}
	n := HeaderLen + 4 + 16 + len(pt) + c.ICVLen()
	h.Length = uint32(n)
	b := h.append(nil)
	b = append(b, byte(PayloadNotify), 0, byte((n-HeaderLen)>>8), byte(n-HeaderLen))
	b = append(b, make([]byte, 16)...)
	b = append(b, pt...)
	b = append(b, make([]byte, c.ICVLen())...)
	if err := c.Seal(b, HeaderLen+4); err != nil {
		t.Fatal(err)
	}
	m, err := DecodeEncrypted(b, keys)
	if err != nil || m.Notify(INITIAL_CONTACT) == nil || len(m.Payloads) != 1 {
		t.Fatalf("%v %v", m, err)
	}
}

func TestSKErrors(t *testing.T) {
	keys := testKeys(t, skProposals()[0])
	plain, _ := Encode(authMessage(FlagInitiator))
	if _, err := DecodeEncrypted(plain, keys); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("plaintext message: %v", err)
	}
	if _, err := EncodeEncrypted(authMessage(FlagInitiator), nil); err == nil {
		t.Error("nil keys accepted")
	}
	m := authMessage(FlagInitiator)
	m.Payloads = append(m.Payloads, &Encrypted{})
	if _, err := EncodeEncrypted(m, keys); err == nil {
		t.Error("nested SK accepted")
	}
	for _, p := range []Proposal{
		{Protocol: ProtoIKE, Transforms: []Transform{EncrTransform(ENCR_AES_CBC, 128)}},                                       // no integrity
		{Protocol: ProtoIKE, Transforms: []Transform{EncrTransform(ENCR_AES_CBC, 0), IntegTransform(AUTH_HMAC_SHA1_96)}},      // no key length
		{Protocol: ProtoIKE, Transforms: []Transform{EncrTransform(ENCR_3DES, 0), IntegTransform(AUTH_HMAC_SHA1_96)}},         // not implemented
		{Protocol: ProtoIKE, Transforms: []Transform{EncrTransform(ENCR_AES_GCM_16, 128), IntegTransform(AUTH_HMAC_SHA1_96)}}, // AEAD + integ
		{Protocol: ProtoIKE, Transforms: []Transform{IntegTransform(AUTH_HMAC_SHA1_96)}},                                      // no encryption
	} {
		if _, _, err := SKLengths(p); err == nil {
			t.Errorf("SKLengths(%s) accepted", p)
		}
	}
	if _, err := NewCrypter(skProposals()[0], make([]byte, 3), nil); err == nil {
		t.Error("short SK_e accepted")
	}
}

func TestSKLengths(t *testing.T) {
	for _, c := range []struct {
		p    string
		e, a int
	}{
		{"IKE:aes128gcm16-prfsha256-ecp256", 20, 0},
		{"IKE:aes256gcm16-prfsha256-ecp256", 36, 0},
		{"IKE:aes128-sha1-prfsha256-modp2048", 16, 20},
		{"IKE:aes256-sha256-prfsha256-modp2048", 32, 32},
		{"IKE:aes256-sha384-prfsha256-modp2048", 32, 48},
		{"IKE:aes256-sha512-prfsha256-modp2048", 32, 64},
	} {
		found := false
		for _, p := range skProposals() {
			if p.String() != c.p {
				continue
			}
			found = true
			e, a, err := SKLengths(p)
			if err != nil || e != c.e || a != c.a {
				t.Errorf("%s: %d %d %v, want %d %d", c.p, e, a, err, c.e, c.a)
			}
		}
		if !found {
			t.Errorf("%s not among the test proposals", c.p)
		}
	}
}

func ExampleEncodeEncrypted() {
	p := Proposal{Protocol: ProtoIKE, Transforms: []Transform{
		EncrTransform(ENCR_AES_GCM_16, 256), PRFTransform(PRF_HMAC_SHA2_256), DHTransform(ECP_256)}}
	le, la, _ := SKLengths(p)
	keys, _ := NewKeys(p, make([]byte, le), make([]byte, la), make([]byte, le), make([]byte, la))
	m := &Message{Header: Header{Exchange: INFORMATIONAL, Flags: FlagInitiator, MessageID: 2}} // liveness check
	raw, _ := EncodeEncrypted(m, keys)
	got, _ := DecodeEncrypted(raw, keys)
	fmt.Println(len(raw), got)
	// Output: 57 INFORMATIONAL I[2]
}
