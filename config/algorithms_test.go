package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

// IANA "IKEv2 Parameters": Transform Type 1, 2 and 3 IDs.
func TestAlgorithmTable(t *testing.T) {
	enc := []struct {
		name string
		id   transform.EncrID
		bits int
		aead bool
		ss   string
	}{
		{"AES128", 12, 128, false, "aes128"},
		{"AES256", 12, 256, false, "aes256"},
		{"AES128-GCM-16", 20, 128, true, "aes128gcm16"},
		{"AES256-GCM-16", 20, 256, true, "aes256gcm16"},
	}
	for _, w := range enc {
		e, ok := LookupEncryption(w.name)
		if !ok || e.Name != w.name || e.ID != w.id || e.KeyBits != w.bits || e.AEAD != w.aead || e.StrongSwan != w.ss {
			t.Errorf("%s: %+v", w.name, e)
		}
	}
	integ := []struct {
		name string
		id   transform.IntegID
		prf  PRFID
		ss   string
	}{
		{"SHA1", 2, 2, "sha1"},
		{"SHA2-256", 12, 5, "sha256"},
		{"SHA2-384", 13, 6, "sha384"},
		{"SHA2-512", 14, 7, "sha512"},
	}
	for _, w := range integ {
		i, ok := LookupIntegrity(w.name)
		if !ok || i.Name != w.name || i.ID != w.id || i.PRF != w.prf || i.StrongSwan != w.ss {
			t.Errorf("%s: %+v", w.name, i)
		}
	}
	if len(Encryptions) != 4 || len(Integrities) != 4 || len(DHGroups) != 13 {
		t.Errorf("table sizes %d %d %d", len(Encryptions), len(Integrities), len(DHGroups))
	}
}

func TestCanonicalNames(t *testing.T) {
	enc := map[string]string{
		"aes128": AES128, "AES-128-CBC": AES128, "aes-128-cbc": AES128, "aes256": AES256, "aes-256-cbc": AES256,
		"aes128-gcm-16": AES128GCM, "AES128-GCM-16": AES128GCM, "aes-128-gcm-16": AES128GCM, "aes256-gcm-16": AES256GCM,
		"aes-256-gcm": AES256GCM,
	}
	for in, want := range enc {
		if got, ok := CanonicalEncryption(in); !ok || got != want {
			t.Errorf("CanonicalEncryption(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	integ := map[string]string{
		"sha1": SHA1, "hmac-sha1-96": SHA1, "SHA2-256": SHA2256, "sha256": SHA2256, "hmac-sha2-256-128": SHA2256,
		"hmac-sha-256-128": SHA2256, "sha2-384": SHA2384, "hmac-sha2-384-192": SHA2384, "sha2-512": SHA2512,
		"hmac-sha2-512-256": SHA2512, "SHA512": SHA2512,
	}
	for in, want := range integ {
		if got, ok := CanonicalIntegrity(in); !ok || got != want {
			t.Errorf("CanonicalIntegrity(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "3des", "aes", "aes192", "aes-128-ctr", "chacha20poly1305"} {
		if _, ok := CanonicalEncryption(bad); ok {
			t.Errorf("encryption %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "md5", "sha2", "sha224", "aes-xcbc"} {
		if _, ok := CanonicalIntegrity(bad); ok {
			t.Errorf("integrity %q accepted", bad)
		}
	}
	for in, want := range map[string]int{"group2": 2, "Group14": 14, "24": 24, " group5 ": 5} {
		if got, ok := ParseDHGroup(in); !ok || got != want {
			t.Errorf("ParseDHGroup(%q) = %d %v", in, got, ok)
		}
	}
	for _, bad := range []string{"group1", "group25", "disabled", "", "groupx"} {
		if _, ok := ParseDHGroup(bad); ok {
			t.Errorf("DH group %q accepted", bad)
		}
	}
}

func TestStrongSwanProposals(t *testing.T) {
	const allModp1 = "modp1024-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256"
	const allModp2 = "modp1024-modp1536-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256"
	cases := []struct {
		name     string
		p        Phase
		ike, esp string
	}{
		{"defaults phase 1", DefaultPhase1(2),
			"aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-ecp256-modp2048",
			"aes256gcm16-aes128gcm16-ecp384-ecp256-modp2048"},
		{"defaults phase 2", DefaultPhase2(),
			"aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-ecp256-modp2048",
			"aes256gcm16-aes128gcm16-ecp384-ecp256-modp2048"},
		{"IKEv1 defaults", DefaultPhase1(1), "aes256-aes128-sha384-sha256-ecp384-ecp256-modp2048", "aes256-aes128-sha384-sha256-ecp384-ecp256-modp2048"},
		{"everything AWS accepts, phase 1", Phase{Encryption: []string{AES128, AES256, AES128GCM, AES256GCM}, Integrity: []string{SHA1, SHA2256, SHA2384, SHA2512},
			DHGroups: []int{2, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}},
			"aes128-aes256-sha1-sha256-sha384-sha512-" + allModp1 + ",aes128gcm16-aes256gcm16-prfsha1-prfsha256-prfsha384-prfsha512-" + allModp1,
			"aes128-aes256-sha1-sha256-sha384-sha512-" + allModp1 + ",aes128gcm16-aes256gcm16-" + allModp1},
		{"everything AWS accepts, phase 2", Phase{Encryption: []string{AES128, AES256, AES128GCM, AES256GCM}, Integrity: []string{SHA1, SHA2256, SHA2384, SHA2512},
			DHGroups: []int{2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}},
			"aes128-aes256-sha1-sha256-sha384-sha512-" + allModp2 + ",aes128gcm16-aes256gcm16-prfsha1-prfsha256-prfsha384-prfsha512-" + allModp2,
			"aes128-aes256-sha1-sha256-sha384-sha512-" + allModp2 + ",aes128gcm16-aes256gcm16-" + allModp2},
		{"AWS minimum", Phase{Encryption: []string{AES128}, Integrity: []string{SHA1}, DHGroups: []int{2}},
			"aes128-sha1-modp1024", "aes128-sha1-modp1024"},
		{"GCM only", Phase{Encryption: []string{AES256GCM}, Integrity: []string{SHA2384}, DHGroups: []int{20}},
			"aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384"},
		{"GCM only, no integrity (phase 2)", Phase{Encryption: []string{AES128GCM}, DHGroups: []int{19, 5}},
			"aes128gcm16-ecp256-modp1536", "aes128gcm16-ecp256-modp1536"},
		{"mixed, lower case", Phase{Encryption: []string{"aes256", "aes128-gcm-16"}, Integrity: []string{"sha2-512"}, DHGroups: []int{21, 22, 23, 24}},
			"aes256-sha512-ecp521-modp1024s160-modp2048s224-modp2048s256,aes128gcm16-prfsha512-ecp521-modp1024s160-modp2048s224-modp2048s256",
			"aes256-sha512-ecp521-modp1024s160-modp2048s224-modp2048s256,aes128gcm16-ecp521-modp1024s160-modp2048s224-modp2048s256"},
		{"no PFS", Phase{Encryption: []string{AES128}, Integrity: []string{SHA2256}}, "aes128-sha256", "aes128-sha256"},
		{"groups 15-18", Phase{Encryption: []string{AES128}, Integrity: []string{SHA1}, DHGroups: []int{15, 16, 17, 18}},
			"aes128-sha1-modp3072-modp4096-modp6144-modp8192", "aes128-sha1-modp3072-modp4096-modp6144-modp8192"},
		{"unknown names dropped", Phase{Encryption: []string{"3des", AES128}, Integrity: []string{"md5", SHA1}, DHGroups: []int{1, 14}},
			"aes128-sha1-modp2048", "aes128-sha1-modp2048"},
		{"empty", Phase{}, "", ""},
	}
	for _, tc := range cases {
		if got := tc.p.StrongSwanIKE(); got != tc.ike {
			t.Errorf("%s: StrongSwanIKE\n got %s\nwant %s", tc.name, got, tc.ike)
		}
		if got := tc.p.StrongSwanESP(); got != tc.esp {
			t.Errorf("%s: StrongSwanESP\n got %s\nwant %s", tc.name, got, tc.esp)
		}
	}
}

func TestESPSuites(t *testing.T) {
	p := Phase{Encryption: []string{AES128GCM, AES256}, Integrity: []string{SHA1, SHA2512}}
	want := []transform.Suite{
		{Encr: transform.ENCR_AES_CBC, KeyBits: 256, Integ: transform.AUTH_HMAC_SHA1_96},
		{Encr: transform.ENCR_AES_CBC, KeyBits: 256, Integ: transform.AUTH_HMAC_SHA2_512_256},
		{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128, Integ: transform.AUTH_NONE},
	}
	if got := p.ESPSuites(); !reflect.DeepEqual(got, want) {
		t.Errorf("ESPSuites = %+v", got)
	}
	want = []transform.Suite{
		{Encr: transform.ENCR_AES_GCM_16, KeyBits: 256, Integ: transform.AUTH_NONE},
		{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128, Integ: transform.AUTH_NONE},
	}
	if got := DefaultPhase2().ESPSuites(); !reflect.DeepEqual(got, want) {
		t.Errorf("default phase 2 suites %+v, want AES-256-GCM then AES-128-GCM", got)
	}
}

func TestPhaseAccessors(t *testing.T) {
	p1, p2 := DefaultAlgorithms(2)
	if !reflect.DeepEqual(p1, DefaultPhase1(2)) || !reflect.DeepEqual(p2, DefaultPhase2()) {
		t.Fatal("DefaultAlgorithms differs from DefaultPhase1/2")
	}
	if v1, _ := DefaultAlgorithms(1); len(v1.EncryptionAlgs()) != 2 {
		t.Errorf("IKEv1 defaults: %v", v1.Encryption)
	}
	p := Phase{Encryption: []string{"aes256-gcm-16", "bogus", "aes128"}, Integrity: []string{"sha2-384", "md5"}, DHGroups: []int{19, 1, 2}}
	enc := p.EncryptionAlgs()
	if len(enc) != 2 || enc[0].ID != transform.ENCR_AES_GCM_16 || enc[0].KeyBits != 256 || enc[1].ID != transform.ENCR_AES_CBC || enc[1].KeyBits != 128 {
		t.Errorf("EncryptionAlgs = %+v", enc)
	}
	in := p.IntegrityAlgs()
	if len(in) != 1 || in[0].ID != transform.AUTH_HMAC_SHA2_384_192 || in[0].PRF != PRF_HMAC_SHA2_384 {
		t.Errorf("IntegrityAlgs = %+v", in)
	}
	g := p.Groups()
	if len(g) != 2 || g[0].ID != 19 || g[0].StrongSwan != "ecp256" || g[1].ID != 2 {
		t.Errorf("Groups = %+v", g)
	}
}

// Validation errors list AWS's spellings from the tables.
func TestAlgorithmNameLists(t *testing.T) {
	if got := encryptionNames(); got != "AES128, AES256, AES128-GCM-16, AES256-GCM-16" {
		t.Errorf("encryptionNames() = %q", got)
	}
	if got := integrityNames(); got != "SHA1, SHA2-256, SHA2-384, SHA2-512" {
		t.Errorf("integrityNames() = %q", got)
	}
}

// The defaults offer nothing weak; SHA1 and groups 2, 5, 22–24 are kept
// when written but each phase offering them gets a warning naming a
// stronger choice AWS accepts.
func TestWeakAlgorithmWarnings(t *testing.T) {
	for _, v := range []int{1, 2} {
		p1, p2 := DefaultAlgorithms(v)
		for _, p := range []Phase{p1, p2} {
			for _, i := range p.Integrity {
				if i == SHA1 {
					t.Errorf("IKEv%d defaults offer SHA1: %v", v, p)
				}
			}
			for _, g := range p.DHGroups {
				if WeakDHGroup(g) != "" {
					t.Errorf("IKEv%d defaults offer group %d", v, g)
				}
				if dg, ok := LookupDHGroup(g); !ok || !dg.Phase1 || dg.NotAWS {
					t.Errorf("IKEv%d defaults offer group %d, which AWS does not accept in both phases", v, g)
				}
			}
		}
	}
	c := minimal(t)
	t0 := &c.Connections[0].Tunnels[0]
	t0.Phase1.Integrity = []string{SHA2256, SHA1}
	t0.Phase1.DHGroups = []int{14, 2}
	t0.Phase2.Integrity = []string{SHA1} // GCM-only phase 2: unused, no warning
	t0.Phase2.DHGroups = []int{5, 24}
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("weak but AWS-accepted algorithms refused: %v", Problems(ps))
	}
	var got []string
	for _, w := range c.Warnings() {
		got = append(got, w.Path)
		if !strings.Contains(w.Msg, "SHA2-256 or SHA2-384") && !strings.Contains(w.Msg, "use 20 (ECP-384), 19 (ECP-256) or 14 (MODP-2048)") {
			t.Errorf("%s: %q names no stronger choice", w.Path, w.Msg)
		}
	}
	want := "connections[0].tunnels[0].phase1.integrity[1] connections[0].tunnels[0].phase1.dh_groups connections[0].tunnels[0].phase2.dh_groups"
	if strings.Join(got, " ") != want {
		t.Errorf("warnings at %v, want %s", got, want)
	}
}
