package message

import (
	"fmt"
	"strings"
	"testing"
)

// prop builds a proposal from strongSwan-style keywords, e.g.
// prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048").
func prop(proto ProtocolID, kw string) Proposal {
	p := Proposal{Protocol: proto}
	for _, k := range strings.Fields(kw) {
		p.Transforms = append(p.Transforms, kwTransform(k))
	}
	return p
}

func kwTransform(k string) Transform {
	if k == "dhnone" { // "none" alone names INTEG NONE
		return DHTransform(DH_NONE)
	}
	for _, t := range []Transform{
		EncrTransform(ENCR_AES_CBC, 128), EncrTransform(ENCR_AES_CBC, 256),
		EncrTransform(ENCR_AES_GCM_16, 128), EncrTransform(ENCR_AES_GCM_16, 256),
		IntegTransform(AUTH_HMAC_SHA1_96), IntegTransform(AUTH_HMAC_SHA2_256_128),
		IntegTransform(AUTH_HMAC_SHA2_384_192), IntegTransform(AUTH_HMAC_SHA2_512_256), IntegTransform(AUTH_NONE),
		PRFTransform(PRF_HMAC_SHA1), PRFTransform(PRF_HMAC_SHA2_256),
		DHTransform(MODP_1024), DHTransform(MODP_2048), DHTransform(ECP_256),
		ESNTransform(true), ESNTransform(false),
	} {
		if t.String() == k {
			return t
		}
	}
	panic("unknown keyword " + k)
}

func TestSelect(t *testing.T) {
	withAttr := prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")
	withAttr.Transforms[0].Attrs = []Attribute{{Type: 99, TV: true, Value: []byte{0, 1}}}
	for _, c := range []struct {
		name   string
		ours   []Proposal
		theirs []Proposal
		want   string // chosen proposal's String, "" for none
	}{
		{"exact IKE", []Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")},
			[]Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")}, "IKE:aes128-sha256-prfsha256-modp2048"},
		{"key length mismatch", []Proposal{prop(ProtoIKE, "aes256 sha256 prfsha256 modp2048")},
			[]Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")}, ""},
		{"one of several per type, ours' order", []Proposal{prop(ProtoIKE, "aes256 aes128 sha256 prfsha256 ecp256 modp2048")},
			[]Proposal{prop(ProtoIKE, "aes128 aes256 sha1 sha256 prfsha1 prfsha256 modp1024 modp2048 ecp256")},
			"IKE:aes256-sha256-prfsha256-ecp256"},
		{"missing DH in theirs", []Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")},
			[]Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256")}, ""},
		{"DH group mismatch", []Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")},
			[]Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp1024")}, ""},
		{"missing PRF in theirs", []Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")},
			[]Proposal{prop(ProtoIKE, "aes128 sha256 modp2048")}, ""},
		{"GCM IKE, they add INTEG NONE", []Proposal{prop(ProtoIKE, "aes128gcm16 prfsha256 ecp256")},
			[]Proposal{prop(ProtoIKE, "aes128gcm16 none prfsha256 ecp256")}, "IKE:aes128gcm16-prfsha256-ecp256"},
		{"GCM ours vs CBC theirs", []Proposal{prop(ProtoIKE, "aes128gcm16 prfsha256 ecp256")},
			[]Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 ecp256")}, ""},
		{"they want PFS, we do not", []Proposal{prop(ProtoESP, "aes128 sha256 noesn")},
			[]Proposal{prop(ProtoESP, "aes128 sha256 modp2048 noesn")}, ""},
		{"PFS optional for them (DH NONE)", []Proposal{prop(ProtoESP, "aes128 sha256 noesn")},
			[]Proposal{prop(ProtoESP, "aes128 sha256 modp2048 dhnone noesn")}, "ESP:aes128-sha256-noesn"},
		{"we want PFS, they offer none", []Proposal{prop(ProtoESP, "aes128 sha256 modp2048 noesn")},
			[]Proposal{prop(ProtoESP, "aes128 sha256 noesn")}, ""},
		{"ESN: they insist, we cannot", []Proposal{prop(ProtoESP, "aes128gcm16 noesn")},
			[]Proposal{prop(ProtoESP, "aes128gcm16 esn")}, ""},
		{"ESN: they offer both, we prefer esn", []Proposal{prop(ProtoESP, "aes128gcm16 esn noesn")},
			[]Proposal{prop(ProtoESP, "aes128gcm16 noesn esn")}, "ESP:aes128gcm16-esn"},
		{"ESN: they omit it, means no ESN", []Proposal{prop(ProtoESP, "aes128gcm16 noesn")},
			[]Proposal{prop(ProtoESP, "aes128gcm16")}, "ESP:aes128gcm16"},
		{"ESN: they omit it, we require ESN", []Proposal{prop(ProtoESP, "aes128gcm16 esn")},
			[]Proposal{prop(ProtoESP, "aes128gcm16")}, ""},
		{"ESN: we omit it, they offer noesn", []Proposal{prop(ProtoESP, "aes128gcm16")},
			[]Proposal{prop(ProtoESP, "aes128gcm16 esn noesn")}, "ESP:aes128gcm16-noesn"},
		{"protocol mismatch", []Proposal{prop(ProtoESP, "aes128gcm16 noesn")},
			[]Proposal{prop(ProtoAH, "sha256 noesn")}, ""},
		{"unknown attribute is refused", []Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")},
			[]Proposal{withAttr}, ""},
		{"unknown transform type is refused", []Proposal{prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")},
			[]Proposal{func() Proposal {
				p := prop(ProtoIKE, "aes128 sha256 prfsha256 modp2048")
				p.Transforms = append(p.Transforms, Transform{Type: 6, ID: 1})
				return p
			}()}, ""},
	} {
		for i := range c.theirs {
			c.theirs[i].Num = uint8(i + 1)
		}
		theirsBefore := FormatProposals(c.theirs)
		got, ok := Select(c.ours, c.theirs)
		switch {
		case c.want == "" && ok:
			t.Errorf("%s: chose %s, want none", c.name, got)
		case c.want != "" && !ok:
			t.Errorf("%s: none chosen, want %s (ours %s, theirs %s)", c.name, c.want, FormatProposals(c.ours), FormatProposals(c.theirs))
		case ok && got.String() != c.want:
			t.Errorf("%s: chose %s, want %s", c.name, got, c.want)
		}
		if FormatProposals(c.theirs) != theirsBefore {
			t.Errorf("%s: Select modified its input", c.name)
		}
		if ok && !Accepts(c.theirs, got) {
			t.Errorf("%s: the initiator would not accept %s", c.name, got)
		}
	}
}

func TestSelectKeepsNumberAndSPI(t *testing.T) {
	theirs := []Proposal{prop(ProtoESP, "aes256gcm16 noesn"), prop(ProtoESP, "aes128 sha256 noesn")}
	for i := range theirs {
		theirs[i].Num = uint8(i + 1)
		theirs[i].SPI = []byte{0xc0, 0, 0, byte(i)}
	}
	ours := []Proposal{prop(ProtoESP, "aes128 sha1 sha256 noesn")}
	got, ok := Select(ours, theirs)
	if !ok || got.Num != 2 || got.SPI[3] != 1 || got.String() != "ESP:aes128-sha256-noesn" {
		t.Fatalf("got %v %v num %d spi %x", got, ok, got.Num, got.SPI)
	}
}

func TestAccepts(t *testing.T) {
	ours := []Proposal{prop(ProtoIKE, "aes256 sha256 prfsha256 modp2048"), prop(ProtoIKE, "aes128gcm16 prfsha256 ecp256 modp2048")}
	for _, c := range []struct {
		num  uint8
		kw   string
		want bool
	}{
		{1, "aes256 sha256 prfsha256 modp2048", true},
		{2, "aes128gcm16 prfsha256 modp2048", true},
		{1, "aes128gcm16 prfsha256 modp2048", false},        // wrong proposal number
		{2, "aes128gcm16 prfsha256 ecp256 modp2048", false}, // two DH: not a choice
		{1, "aes256 sha256 prfsha256", false},               // DH dropped
		{1, "aes128 sha256 prfsha256 modp2048", false},      // not offered
	} {
		a := prop(ProtoIKE, c.kw)
		a.Num = c.num
		if got := Accepts(ours, a); got != c.want {
			t.Errorf("Accepts(#%d %s) = %v", c.num, a, got)
		}
	}
}

func ExampleSelect() {
	ours := []Proposal{{Protocol: ProtoESP, Transforms: []Transform{
		EncrTransform(ENCR_AES_GCM_16, 256), ESNTransform(false)}}}
	theirs := []Proposal{
		{Num: 1, Protocol: ProtoESP, SPI: []byte{0xc0, 0, 0, 1}, Transforms: []Transform{
			EncrTransform(ENCR_AES_GCM_16, 128), DHTransform(MODP_1024), ESNTransform(false)}},
		{Num: 2, Protocol: ProtoESP, SPI: []byte{0xc0, 0, 0, 1}, Transforms: []Transform{
			EncrTransform(ENCR_AES_GCM_16, 256), EncrTransform(ENCR_AES_GCM_16, 128), ESNTransform(false)}},
	}
	if p, ok := Select(ours, theirs); ok {
		fmt.Printf("chose #%d %s\n", p.Num, p)
	}
	if _, ok := Select(ours, theirs[:1]); !ok {
		fmt.Printf("NO_PROPOSAL_CHOSEN: we accept %s, peer offered %s\n", FormatProposals(ours), FormatProposals(theirs[:1]))
	}
	// Output:
	// chose #2 ESP:aes256gcm16-noesn
	// NO_PROPOSAL_CHOSEN: we accept [ESP:aes256gcm16-noesn], peer offered [ESP:aes128gcm16-modp1024-noesn]
}

func TestESPSuite(t *testing.T) {
	for _, c := range []struct {
		kw   string
		want string
		esn  bool
	}{
		{"aes128gcm16 noesn", "aes128gcm16", false},
		{"aes256gcm16 esn", "aes256gcm16", true},
		{"aes128 sha256 modp2048 noesn", "aes128-sha256", false},
		{"aes256 sha1", "aes256-sha1", false},
		{"aes128", "", false},                   // CBC without integrity
		{"aes128gcm16 sha256 noesn", "", false}, // AEAD with integrity
		{"sha256 noesn", "", false},             // no encryption
	} {
		s, esn, err := prop(ProtoESP, c.kw).ESPSuite()
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%s: accepted as %s", c.kw, s)
		case c.want != "" && (err != nil || s.String() != c.want || esn != c.esn):
			t.Errorf("%s: %s esn=%v %v", c.kw, s, esn, err)
		}
	}
	if _, _, err := prop(ProtoIKE, "aes128gcm16").ESPSuite(); err == nil {
		t.Error("IKE proposal accepted")
	}
}
