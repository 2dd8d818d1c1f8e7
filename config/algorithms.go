package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
	"github.com/cgw-project/cgw/crypto/transform"
)

// AWS's algorithm names, as written in the console, the API and this
// package's YAML.
const (
	AES128    = "AES128"
	AES256    = "AES256"
	AES128GCM = "AES128-GCM-16"
	AES256GCM = "AES256-GCM-16"

	SHA1    = "SHA1"
	SHA2256 = "SHA2-256"
	SHA2384 = "SHA2-384"
	SHA2512 = "SHA2-512"
)

// PRFID is an IKEv2 Transform Type 2 (pseudorandom function) ID:
// crypto/prf's, which owns the ID space.
type PRFID = prf.ID

// PRF transform IDs used by AWS (crypto/prf's).
const (
	PRF_HMAC_SHA1     = prf.PRF_HMAC_SHA1
	PRF_HMAC_SHA2_256 = prf.PRF_HMAC_SHA2_256
	PRF_HMAC_SHA2_384 = prf.PRF_HMAC_SHA2_384
	PRF_HMAC_SHA2_512 = prf.PRF_HMAC_SHA2_512
)

// Encryption describes one of AWS's encryption algorithms.
type Encryption struct {
	Name       string // AWS spelling, e.g. "AES128-GCM-16"
	ID         transform.EncrID
	KeyBits    int
	AEAD       bool   // GCM: no separate integrity transform in ESP (crypto/transform's)
	StrongSwan string // strongSwan proposal keyword (crypto/transform's)
}

// Integrity describes one of AWS's integrity algorithms. In IKE, AWS
// negotiates the PRF of the same hash as the integrity algorithm, so the
// phase 1 integrity list doubles as the PRF list.
type Integrity struct {
	Name       string // AWS spelling, e.g. "SHA2-256"
	ID         transform.IntegID
	PRF        PRFID
	StrongSwan string // strongSwan keyword (crypto/transform's): integrity in ESP, integrity+PRF in IKE
}

// DHGroup is one of AWS's Diffie-Hellman groups: its IKEv2 Transform
// Type 4 ID (crypto/dh's ID space) and whether phase 1 may use it.
type DHGroup struct {
	ID         int
	StrongSwan string // crypto/dh's keyword
	Phase1     bool   // allowed by AWS in phase 1 (phase 2 allows all in the table)
	// NotAWS marks a group AWS does not offer (LabDHGroups): accepted only
	// with gateway.testing.non_aws_dh_groups.
	NotAWS bool
}

// Encryptions lists AWS's encryption algorithms in AWS's order.
var Encryptions = []Encryption{
	awsEncryption(AES128, transform.ENCR_AES_CBC, 128),
	awsEncryption(AES256, transform.ENCR_AES_CBC, 256),
	awsEncryption(AES128GCM, transform.ENCR_AES_GCM_16, 128),
	awsEncryption(AES256GCM, transform.ENCR_AES_GCM_16, 256),
}

// awsEncryption is an Encryptions row; AEAD and the keyword are
// crypto/transform's.
func awsEncryption(name string, id transform.EncrID, keyBits int) Encryption {
	kw, _ := transform.EncrKeyword(id, keyBits)
	aead := transform.Suite{Encr: id, KeyBits: keyBits}.AEAD()
	return Encryption{Name: name, ID: id, KeyBits: keyBits, AEAD: aead, StrongSwan: kw}
}

// Integrities lists AWS's integrity algorithms in AWS's order.
var Integrities = []Integrity{
	awsIntegrity(SHA1, transform.AUTH_HMAC_SHA1_96, PRF_HMAC_SHA1),
	awsIntegrity(SHA2256, transform.AUTH_HMAC_SHA2_256_128, PRF_HMAC_SHA2_256),
	awsIntegrity(SHA2384, transform.AUTH_HMAC_SHA2_384_192, PRF_HMAC_SHA2_384),
	awsIntegrity(SHA2512, transform.AUTH_HMAC_SHA2_512_256, PRF_HMAC_SHA2_512),
}

// awsIntegrity is an Integrities row; the keyword is crypto/transform's.
func awsIntegrity(name string, id transform.IntegID, p PRFID) Integrity {
	kw, _ := transform.IntegKeyword(id)
	return Integrity{Name: name, ID: id, PRF: p, StrongSwan: kw}
}

// DHGroups lists AWS's Diffie-Hellman groups (RFC 3526, RFC 5903,
// RFC 5114). Group 5 is allowed only for PFS in phase 2.
var DHGroups = []DHGroup{
	awsGroup(dh.MODP1024, true),
	awsGroup(dh.MODP1536, false),
	awsGroup(dh.MODP2048, true),
	awsGroup(dh.MODP3072, true),
	awsGroup(dh.MODP4096, true),
	awsGroup(dh.MODP6144, true),
	awsGroup(dh.MODP8192, true),
	awsGroup(dh.ECP256, true),
	awsGroup(dh.ECP384, true),
	awsGroup(dh.ECP521, true),
	awsGroup(dh.MODP1024S160, true),
	awsGroup(dh.MODP2048S224, true),
	awsGroup(dh.MODP2048S256, true),
}

// LabDHGroups are groups cgw implements that AWS does not offer; a lab
// (gateway.testing.non_aws_dh_groups) uses them against strongSwan.
var LabDHGroups = []DHGroup{
	{ID: int(dh.Curve25519), StrongSwan: dh.Curve25519.String(), Phase1: true, NotAWS: true},
}

// awsGroup is a DHGroups row; the keyword is crypto/dh's.
func awsGroup(id dh.ID, phase1 bool) DHGroup {
	return DHGroup{ID: int(id), StrongSwan: id.String(), Phase1: phase1}
}

// encryptionNames and integrityNames list AWS's spellings, for errors.
func encryptionNames() string {
	return joinNames(Encryptions, func(e Encryption) string { return e.Name })
}
func integrityNames() string {
	return joinNames(Integrities, func(i Integrity) string { return i.Name })
}

func joinNames[T any](rows []T, name func(T) string) string {
	var out []string
	for _, r := range rows {
		out = append(out, name(r))
	}
	return strings.Join(out, ", ")
}

// algKey folds the spellings seen in AWS's console, API and generic
// configuration file ("AES128", "aes-128-cbc", "SHA2-256",
// "hmac-sha2-256-128", "hmac-sha1-96") to one key.
func algKey(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.NewReplacer("-", "", "_", "", " ", "").Replace(s)
	return s
}

var encAliases = map[string]string{
	"aes128": AES128, "aes128cbc": AES128,
	"aes256": AES256, "aes256cbc": AES256,
	"aes128gcm16": AES128GCM, "aes128gcm": AES128GCM,
	"aes256gcm16": AES256GCM, "aes256gcm": AES256GCM,
}

var integAliases = map[string]string{
	"sha1": SHA1, "sha": SHA1, "hmacsha1": SHA1, "hmacsha196": SHA1,
	"sha2256": SHA2256, "sha256": SHA2256, "hmacsha2256": SHA2256, "hmacsha2256128": SHA2256, "hmacsha256": SHA2256, "hmacsha256128": SHA2256,
	"sha2384": SHA2384, "sha384": SHA2384, "hmacsha2384": SHA2384, "hmacsha2384192": SHA2384, "hmacsha384": SHA2384, "hmacsha384192": SHA2384,
	"sha2512": SHA2512, "sha512": SHA2512, "hmacsha2512": SHA2512, "hmacsha2512256": SHA2512, "hmacsha512": SHA2512, "hmacsha512256": SHA2512,
}

// CanonicalEncryption returns AWS's spelling of an encryption algorithm
// name written in any case or in the generic file's form ("aes-128-cbc").
func CanonicalEncryption(name string) (string, bool) {
	c, ok := encAliases[algKey(name)]
	return c, ok
}

// CanonicalIntegrity returns AWS's spelling of an integrity algorithm name
// written in any case or in the generic file's form ("hmac-sha1-96").
func CanonicalIntegrity(name string) (string, bool) {
	c, ok := integAliases[algKey(name)]
	return c, ok
}

// LookupEncryption finds an encryption algorithm by any accepted spelling.
func LookupEncryption(name string) (Encryption, bool) {
	c, ok := CanonicalEncryption(name)
	if !ok {
		return Encryption{}, false
	}
	for _, e := range Encryptions {
		if e.Name == c {
			return e, true
		}
	}
	return Encryption{}, false
}

// LookupIntegrity finds an integrity algorithm by any accepted spelling.
func LookupIntegrity(name string) (Integrity, bool) {
	c, ok := CanonicalIntegrity(name)
	if !ok {
		return Integrity{}, false
	}
	for _, i := range Integrities {
		if i.Name == c {
			return i, true
		}
	}
	return Integrity{}, false
}

// LookupDHGroup finds a DH group by number.
// LabDHGroups are found too (NotAWS set).
func LookupDHGroup(id int) (DHGroup, bool) {
	for _, g := range append(DHGroups[:len(DHGroups):len(DHGroups)], LabDHGroups...) {
		if g.ID == id {
			return g, true
		}
	}
	return DHGroup{}, false
}

// ParseDHGroup reads a group as AWS writes it ("group14", "14").
func ParseDHGroup(s string) (int, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "group")
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, false
	}
	if _, ok := LookupDHGroup(n); !ok {
		return 0, false
	}
	return n, true
}

// Default proposals (RFC 8247 for IKEv2, RFC 8221 for ESP): when a
// configuration names no algorithms, offer only strong ones that AWS
// accepts, strongest first — AES-GCM (256, then 128), PRF/integrity
// SHA2-384 then SHA2-256, DH groups 20 (ECP-384), 19 (ECP-256), 14
// (MODP-2048). Not offered unless written (AWS's imported file or the
// operator): SHA1, groups 2 and 5 (MODP-1024/1536, too small) and 22–24
// (RFC 5114, RFC 8247 §2.4: SHOULD NOT), which WeakAlgorithms reports.
// Few transforms also keep IKEv1's Main Mode message 1 in one small
// datagram: it carries every cipher × hash × group combination as its
// own transform (36 bytes each; AWS's full list was 96 of them, 3.5 kB,
// three IP fragments).
var (
	defaultIntegrity = []string{SHA2384, SHA2256}
	defaultGroups    = []int{20, 19, 14}
)

// DefaultPhase1 returns the default phase 1 proposal for an IKE version:
// AES-GCM for IKEv2; AES-CBC for IKEv1, which has no AEAD IKE ciphers.
// Lifetime 28 800 s (AWS's).
func DefaultPhase1(ikeVersion int) Phase {
	enc := []string{AES256GCM, AES128GCM}
	if ikeVersion == 1 {
		enc = []string{AES256, AES128}
	}
	return Phase{
		Encryption: enc,
		Integrity:  slices.Clone(defaultIntegrity),
		DHGroups:   slices.Clone(defaultGroups),
		Lifetime:   DefaultPhase1Lifetime,
	}
}

// DefaultPhase2 returns the default phase 2 (ESP) proposal: AES-GCM, PFS
// groups as phase 1, lifetime 3 600 s (AWS's). Its integrity list is used
// only when a configuration names CBC ciphers without integrity.
func DefaultPhase2() Phase {
	return Phase{
		Encryption: []string{AES256GCM, AES128GCM},
		Integrity:  slices.Clone(defaultIntegrity),
		DHGroups:   slices.Clone(defaultGroups),
		Lifetime:   DefaultPhase2Lifetime,
	}
}

// DefaultAlgorithms returns the default proposals for both phases of a
// tunnel using IKE version ikeVersion (DefaultPhase1, DefaultPhase2): a
// strong subset of what an AWS endpoint accepts when its tunnel options
// are left alone.
func DefaultAlgorithms(ikeVersion int) (phase1, phase2 Phase) {
	return DefaultPhase1(ikeVersion), DefaultPhase2()
}

// EncryptionAlgs returns the phase's encryption algorithms with their IANA
// IDs, in the configured order (unknown names are skipped; Validate
// reports them).
func (p Phase) EncryptionAlgs() []Encryption {
	var out []Encryption
	for _, n := range p.Encryption {
		if e, ok := LookupEncryption(n); ok {
			out = append(out, e)
		}
	}
	return out
}

// IntegrityAlgs returns the phase's integrity algorithms (with their PRFs
// for IKE) in the configured order.
func (p Phase) IntegrityAlgs() []Integrity { return p.integrities() }

// Groups returns the phase's DH groups in the configured order.
func (p Phase) Groups() []DHGroup {
	var out []DHGroup
	for _, id := range p.DHGroups {
		if g, ok := LookupDHGroup(id); ok {
			out = append(out, g)
		}
	}
	return out
}

// split separates the phase's encryption algorithms into non-AEAD and AEAD
// ones (unknown names are dropped; Validate reports them).
func (p Phase) split() (cbc, gcm []Encryption) {
	for _, e := range p.EncryptionAlgs() {
		if e.AEAD {
			gcm = append(gcm, e)
		} else {
			cbc = append(cbc, e)
		}
	}
	return cbc, gcm
}

func (p Phase) integrities() []Integrity {
	var out []Integrity
	for _, n := range p.Integrity {
		if i, ok := LookupIntegrity(n); ok {
			out = append(out, i)
		}
	}
	return out
}

func (p Phase) dhNames() []string {
	var out []string
	for _, g := range p.Groups() {
		out = append(out, g.StrongSwan)
	}
	return out
}

// StrongSwanIKE returns the phase as strongSwan IKE proposals (swanctl.conf
// "proposals"). strongSwan needs AEAD and non-AEAD algorithms in separate
// proposals, so the result is a comma-separated list: the CBC proposal
// (integrity keywords imply the PRF), then the GCM proposal with explicit
// "prf" keywords taken from the integrity list, as AWS does.
func (p Phase) StrongSwanIKE() string { return p.strongSwan(true) }

// StrongSwanESP returns the phase as strongSwan ESP proposals
// (swanctl.conf "esp_proposals"): CBC with the integrity list, then GCM
// without integrity; the DH groups are the PFS groups.
func (p Phase) StrongSwanESP() string { return p.strongSwan(false) }

// strongSwan builds StrongSwanIKE (ike: the GCM proposal names the PRFs)
// and StrongSwanESP.
func (p Phase) strongSwan(ike bool) string {
	cbc, gcm := p.split()
	integ := p.integrities()
	dh := p.dhNames()
	var props []string
	if len(cbc) > 0 {
		var parts []string
		for _, e := range cbc {
			parts = append(parts, e.StrongSwan)
		}
		for _, i := range integ {
			parts = append(parts, i.StrongSwan)
		}
		props = append(props, strings.Join(append(parts, dh...), "-"))
	}
	if len(gcm) > 0 {
		var parts []string
		for _, e := range gcm {
			parts = append(parts, e.StrongSwan)
		}
		if ike {
			for _, i := range integ {
				parts = append(parts, i.PRF.String())
			}
		}
		props = append(props, strings.Join(append(parts, dh...), "-"))
	}
	return strings.Join(props, ",")
}

// ESPSuites lists the ESP transform sets the phase allows, in preference
// order: every CBC cipher with every integrity algorithm, then every GCM
// cipher (integrity AUTH_NONE, RFC 4106 §8.4).
func (p Phase) ESPSuites() []transform.Suite {
	cbc, gcm := p.split()
	var out []transform.Suite
	for _, e := range cbc {
		for _, i := range p.integrities() {
			out = append(out, transform.Suite{Encr: e.ID, KeyBits: e.KeyBits, Integ: i.ID})
		}
	}
	for _, e := range gcm {
		out = append(out, transform.Suite{Encr: e.ID, KeyBits: e.KeyBits, Integ: transform.AUTH_NONE})
	}
	return out
}

// hasGCM reports whether any encryption algorithm of p is AEAD.
func (p Phase) hasGCM() bool { _, gcm := p.split(); return len(gcm) > 0 }

// hasCBC reports whether any encryption algorithm of p needs integrity.
func (p Phase) hasCBC() bool { cbc, _ := p.split(); return len(cbc) > 0 }
