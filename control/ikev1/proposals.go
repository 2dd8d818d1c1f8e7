package ikev1

import (
	"fmt"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev1/message"
	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
	"github.com/cgw-project/cgw/crypto/transform"
)

// IKEv1 hash attribute values (RFC 2409 Appendix A; RFC 4868 for SHA2).
func hashAttr(i transform.IntegID) (uint64, bool) {
	switch i {
	case transform.AUTH_HMAC_SHA1_96:
		return 2, true
	case transform.AUTH_HMAC_SHA2_256_128:
		return 4, true
	case transform.AUTH_HMAC_SHA2_384_192:
		return 5, true
	case transform.AUTH_HMAC_SHA2_512_256:
		return 6, true
	}
	return 0, false
}

// ESP authentication algorithm values (RFC 2407 §4.5, RFC 4868 §2.4).
func espAuthAttr(i transform.IntegID) (uint64, bool) {
	switch i {
	case transform.AUTH_HMAC_SHA1_96:
		return 2, true
	case transform.AUTH_HMAC_SHA2_256_128:
		return 5, true
	case transform.AUTH_HMAC_SHA2_384_192:
		return 6, true
	case transform.AUTH_HMAC_SHA2_512_256:
		return 7, true
	}
	return 0, false
}

func espAuthInteg(v uint64) (transform.IntegID, bool) {
	for _, i := range []transform.IntegID{transform.AUTH_HMAC_SHA1_96, transform.AUTH_HMAC_SHA2_256_128, transform.AUTH_HMAC_SHA2_384_192, transform.AUTH_HMAC_SHA2_512_256} {
		if a, _ := espAuthAttr(i); a == v {
			return i, true
		}
	}
	return 0, false
}

// p1Choice is one Phase 1 transform.
type p1Choice struct {
	keyBits  int
	hash     uint64
	group    dh.ID
	lifetime time.Duration
}

func (c p1Choice) String() string {
	h := map[uint64]string{2: "sha1", 4: "sha256", 5: "sha384", 6: "sha512"}[c.hash]
	g, _ := dh.Keyword(c.group)
	return fmt.Sprintf("aes%d-%s-%s", c.keyBits, h, g)
}

func (c p1Choice) transform() message.Transform {
	return message.Transform{ID: message.KeyIKE, Attrs: []message.Attr{{Type: message.AttrEncr, Value: message.EncrAESCBC}, {Type: message.AttrKeyLength, Value: uint64(c.keyBits)}, {Type: message.AttrHash, Value: c.hash},
		{Type: message.AttrAuth, Value: message.AuthPSK}, {Type: message.AttrGroup, Value: uint64(c.group)}, {Type: message.AttrLifeType, Value: message.LifeSecs}, {Type: message.AttrLifeDur, Value: uint64(c.lifetime / time.Second)}}}
}

// phase1Choices lists our Phase 1 transforms: every cipher × hash × group
// of the configuration (IKEv1 has no AEAD, so GCM entries are skipped).
func phase1Choices(p config.Phase) []p1Choice {
	var out []p1Choice
	for _, e := range p.EncryptionAlgs() {
		if e.AEAD || e.ID != transform.ENCR_AES_CBC {
			continue
		}
		for _, i := range p.IntegrityAlgs() {
			h, ok := hashAttr(i.ID)
			if !ok {
				continue
			}
			for _, g := range p.DHGroups {
				out = append(out, p1Choice{keyBits: e.KeyBits, hash: h, group: dh.ID(g), lifetime: time.Duration(p.Lifetime)})
			}
		}
	}
	return out
}

// matchPhase1 returns the first of the peer's transforms that we accept.
func matchPhase1(sa message.SA, ours []p1Choice) (p1Choice, message.Transform, bool) {
	for _, pr := range sa.Proposals {
		if pr.Protocol != message.ProtoISAKMP {
			continue
		}
		for _, tr := range pr.Transforms {
			enc, _ := tr.Get(message.AttrEncr)
			kl, _ := tr.Get(message.AttrKeyLength)
			h, _ := tr.Get(message.AttrHash)
			au, _ := tr.Get(message.AttrAuth)
			g, _ := tr.Get(message.AttrGroup)
			if tr.ID != message.KeyIKE || enc != message.EncrAESCBC || au != message.AuthPSK {
				continue
			}
			for _, c := range ours {
				if uint64(c.keyBits) == kl && c.hash == h && uint64(c.group) == g {
					if d, ok := tr.Get(message.AttrLifeDur); ok && d > 0 {
						c.lifetime = min(c.lifetime, time.Duration(d)*time.Second)
					}
					return c, tr, true
				}
			}
		}
	}
	return p1Choice{}, message.Transform{}, false
}

// p2Choice is one Quick Mode transform.
type p2Choice struct {
	suite    transform.Suite
	group    dh.ID // 0: no PFS
	lifetime time.Duration
}

func (c p2Choice) transform(encap uint64) message.Transform {
	id := uint8(message.ESPTransformID)
	if c.suite.AEAD() {
		id = message.ESPAESGCM16
	}
	as := []message.Attr{{Type: message.AttrSALifeType, Value: message.LifeSecs}, {Type: message.AttrSALifeDur, Value: uint64(c.lifetime / time.Second)}}
	if c.group != 0 {
		as = append(as, message.Attr{Type: message.AttrGroupDesc, Value: uint64(c.group)})
	}
	as = append(as, message.Attr{Type: message.AttrEncapMode, Value: encap})
	if a, ok := espAuthAttr(c.suite.Integ); ok {
		as = append(as, message.Attr{Type: message.AttrAuthAlg, Value: a})
	}
	as = append(as, message.Attr{Type: message.AttrESPKeyLength, Value: uint64(c.suite.KeyBits)})
	return message.Transform{ID: id, Attrs: as}
}

// phase2Choices lists our ESP transforms; with PFS every one carries the
// first configured group (one KE payload serves the whole offer).
func phase2Choices(p config.Phase) []p2Choice {
	var g dh.ID
	if len(p.DHGroups) > 0 {
		g = dh.ID(p.DHGroups[0])
	}
	var out []p2Choice
	for _, s := range p.ESPSuites() {
		out = append(out, p2Choice{suite: s, group: g, lifetime: time.Duration(p.Lifetime)})
	}
	return out
}

// matchPhase2 returns the first of the peer's ESP transforms we accept.
// keLen >= 0 is the length of the peer's KE data: the chosen PFS group
// must be the one it was made for (one KE serves the whole offer).
func matchPhase2(sa message.SA, p config.Phase, keLen int) (p2Choice, []byte, uint64, bool) {
	suites := p.ESPSuites()
	for _, pr := range sa.Proposals {
		if pr.Protocol != message.ProtoESP || len(pr.SPI) != 4 {
			continue
		}
		for _, tr := range pr.Transforms {
			var s transform.Suite
			kl, _ := tr.Get(message.AttrESPKeyLength)
			s.KeyBits = int(kl)
			switch tr.ID {
			case message.ESPTransformID:
				s.Encr = transform.ENCR_AES_CBC
				a, _ := tr.Get(message.AttrAuthAlg)
				var ok bool
				if s.Integ, ok = espAuthInteg(a); !ok {
					continue
				}
			case message.ESPAESGCM16:
				s.Encr = transform.ENCR_AES_GCM_16
			default:
				continue
			}
			okSuite := false
			for _, o := range suites {
				okSuite = okSuite || o == s
			}
			if !okSuite {
				continue
			}
			g, _ := tr.Get(message.AttrGroupDesc)
			okGroup := g == 0 && len(p.DHGroups) == 0
			for _, x := range p.DHGroups {
				okGroup = okGroup || uint64(x) == g
			}
			if okGroup && g != 0 && keLen >= 0 {
				grp, err := dh.Lookup(dh.ID(g))
				okGroup = err == nil && grp.PublicLen() == keLen
			}
			if !okGroup {
				continue
			}
			life := time.Duration(p.Lifetime)
			if d, ok := tr.Get(message.AttrSALifeDur); ok && d > 0 {
				life = min(life, time.Duration(d)*time.Second)
			}
			encap, _ := tr.Get(message.AttrEncapMode)
			return p2Choice{suite: s, group: dh.ID(g), lifetime: life}, pr.SPI, encap, true
		}
	}
	return p2Choice{}, nil, 0, false
}

func lookupHash(v uint64) *prf.PRF {
	p, err := prf.LookupIKEv1Hash(uint16(v))
	if err != nil {
		return nil
	}
	return p
}
