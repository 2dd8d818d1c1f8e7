package message

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// ProtocolID is a Protocol ID (§3.3.1): what an SA, proposal, notify or
// delete is about.
type ProtocolID uint8

// Protocol IDs (§3.3.1).
const (
	ProtoNone ProtocolID = 0
	ProtoIKE  ProtocolID = 1
	ProtoAH   ProtocolID = 2
	ProtoESP  ProtocolID = 3
)

func (p ProtocolID) String() string {
	switch p {
	case ProtoNone:
		return "none"
	case ProtoIKE:
		return "IKE"
	case ProtoAH:
		return "AH"
	case ProtoESP:
		return "ESP"
	}
	return fmt.Sprintf("PROTO_%d", uint8(p))
}

// Proposal is one proposal substructure (§3.3.1).
type Proposal struct {
	// Num is the proposal number. Encode numbers proposals whose Num is 0
	// as 1, 2, 3… (§3.3.1, an initiator's offer); a responder echoes the
	// number of the proposal it accepted.
	Num      uint8
	Protocol ProtocolID
	// SPI: empty in IKE_SA_INIT, 8 bytes for an IKE SA rekey, 4 for
	// ESP/AH (§3.3.1).
	SPI        []byte
	Transforms []Transform
}

// SA is the Security Association payload (§3.3).
type SA struct{ Proposals []Proposal }

func (*SA) Type() PayloadType { return PayloadSA }

// Caps on what one SA payload may hold. The one-byte counts already bound
// transforms per proposal at 255; proposals are bounded by the payload
// length, and the cap keeps a hostile message from making us build
// thousands of them.
const (
	maxProposals  = 64
	maxTransforms = 255
	maxAttrs      = 8
)

const (
	proposalHeaderLen  = 8
	transformHeaderLen = 8
	lastSubstruc       = 0
	moreProposals      = 2 // §3.3.1: "more" value of Last Substruc
	moreTransforms     = 3 // §3.3.2
)

func (p Proposal) checkSPI() error {
	switch {
	case p.Protocol == ProtoIKE && (len(p.SPI) == 0 || len(p.SPI) == 8):
	case (p.Protocol == ProtoESP || p.Protocol == ProtoAH) && len(p.SPI) == 4:
	default:
		return syntaxf("%s proposal with a %d-byte SPI (§3.3.1: IKE 0 or 8, ESP/AH 4)", p.Protocol, len(p.SPI))
	}
	return nil
}

func (p *SA) appendBody(b []byte) ([]byte, error) {
	if len(p.Proposals) == 0 || len(p.Proposals) > maxProposals {
		return nil, fmt.Errorf("SA payload with %d proposals (want 1–%d)", len(p.Proposals), maxProposals)
	}
	for i, pr := range p.Proposals {
		if err := pr.checkSPI(); err != nil {
			return nil, err
		}
		if len(pr.Transforms) == 0 || len(pr.Transforms) > maxTransforms {
			return nil, fmt.Errorf("proposal %d with %d transforms (want 1–%d)", i+1, len(pr.Transforms), maxTransforms)
		}
		num := pr.Num
		if num == 0 {
			num = uint8(i + 1)
		}
		off := len(b)
		more := byte(moreProposals)
		if i == len(p.Proposals)-1 {
			more = lastSubstruc
		}
		b = append(b, more, 0, 0, 0, num, byte(pr.Protocol), byte(len(pr.SPI)), byte(len(pr.Transforms)))
		b = append(b, pr.SPI...)
		for j, t := range pr.Transforms {
			toff := len(b)
			more := byte(moreTransforms)
			if j == len(pr.Transforms)-1 {
				more = lastSubstruc
			}
			b = append(b, more, 0, 0, 0, byte(t.Type), 0)
			b = binary.BigEndian.AppendUint16(b, t.ID)
			if t.KeyLength != 0 {
				b = binary.BigEndian.AppendUint16(b, 0x8000|KeyLengthAttr)
				b = binary.BigEndian.AppendUint16(b, t.KeyLength)
			}
			for _, a := range t.Attrs {
				switch {
				case a.Type > 0x7fff:
					return nil, fmt.Errorf("attribute type %d does not fit 15 bits", a.Type)
				case a.TV && len(a.Value) != 2:
					return nil, fmt.Errorf("TV attribute %d needs a 2-byte value, has %d", a.Type, len(a.Value))
				case a.TV:
					b = binary.BigEndian.AppendUint16(b, 0x8000|a.Type)
				default:
					b = binary.BigEndian.AppendUint16(b, a.Type)
					b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
				}
				b = append(b, a.Value...)
			}
			if len(b)-toff > 0xffff {
				return nil, fmt.Errorf("transform %s too long", t)
			}
			binary.BigEndian.PutUint16(b[toff+2:], uint16(len(b)-toff))
		}
		if len(b)-off > 0xffff {
			return nil, fmt.Errorf("proposal %d too long", num)
		}
		binary.BigEndian.PutUint16(b[off+2:], uint16(len(b)-off))
	}
	return b, nil
}

func (p *SA) decodeBody(b []byte) error {
	if len(b) == 0 {
		return syntaxf("SA payload without proposals")
	}
	for len(b) > 0 {
		if len(p.Proposals) == maxProposals {
			return syntaxf("SA payload with more than %d proposals", maxProposals)
		}
		if len(b) < proposalHeaderLen {
			return syntaxf("proposal header needs %d bytes, %d left", proposalHeaderLen, len(b))
		}
		more, n := b[0], int(binary.BigEndian.Uint16(b[2:4]))
		if n < proposalHeaderLen || n > len(b) {
			return syntaxf("proposal length %d outside [%d, %d]", n, proposalHeaderLen, len(b))
		}
		pb := b[:n]
		b = b[n:]
		switch {
		case more == lastSubstruc && len(b) != 0:
			return syntaxf("proposal marked last but %d bytes follow", len(b))
		case more == moreProposals && len(b) == 0:
			return syntaxf("proposal marked not last but ends the SA payload")
		case more != lastSubstruc && more != moreProposals:
			return syntaxf("proposal Last Substruc %d (want 0 or 2)", more)
		}
		pr := Proposal{Num: pb[4], Protocol: ProtocolID(pb[5])}
		spiLen, nt := int(pb[6]), int(pb[7])
		// §3.3.1: first proposal is 1, each next one more. A response's
		// single proposal echoes whichever number was chosen.
		switch k := len(p.Proposals); {
		case pr.Num == 0:
			return syntaxf("proposal number 0")
		case k > 0 && pr.Num != p.Proposals[k-1].Num+1:
			return syntaxf("proposal number %d follows %d (§3.3.1: must increase by one)", pr.Num, p.Proposals[k-1].Num)
		case k == 0 && more == moreProposals && pr.Num != 1:
			return syntaxf("first of several proposals numbered %d (§3.3.1: must be 1)", pr.Num)
		}
		if proposalHeaderLen+spiLen > len(pb) {
			return syntaxf("proposal %d SPI size %d beyond its %d bytes", pr.Num, spiLen, len(pb))
		}
		if spiLen > 0 {
			pr.SPI = pb[proposalHeaderLen : proposalHeaderLen+spiLen]
		}
		if err := pr.checkSPI(); err != nil {
			return err
		}
		if nt == 0 {
			return syntaxf("proposal %d without transforms", pr.Num)
		}
		pr.Transforms = make([]Transform, 0, min(nt, (len(pb)-proposalHeaderLen-spiLen)/transformHeaderLen))
		tb := pb[proposalHeaderLen+spiLen:]
		for i := 0; i < nt; i++ {
			t, rest, err := decodeTransform(tb, i == nt-1)
			if err != nil {
				return fmt.Errorf("proposal %d transform %d: %w", pr.Num, i+1, err)
			}
			pr.Transforms = append(pr.Transforms, t)
			tb = rest
		}
		if len(tb) != 0 {
			return syntaxf("proposal %d: %d bytes after its %d transforms", pr.Num, len(tb), nt)
		}
		p.Proposals = append(p.Proposals, pr)
	}
	return nil
}

func decodeTransform(b []byte, last bool) (Transform, []byte, error) {
	var t Transform
	if len(b) < transformHeaderLen {
		return t, nil, syntaxf("transform header needs %d bytes, %d left", transformHeaderLen, len(b))
	}
	more, n := b[0], int(binary.BigEndian.Uint16(b[2:4]))
	if n < transformHeaderLen || n > len(b) {
		return t, nil, syntaxf("transform length %d outside [%d, %d]", n, transformHeaderLen, len(b))
	}
	if want := byte(moreTransforms); last && more != lastSubstruc || !last && more != want {
		return t, nil, syntaxf("transform Last Substruc %d disagrees with the proposal's transform count", more)
	}
	t.Type, t.ID = TransformType(b[4]), binary.BigEndian.Uint16(b[6:8])
	ab := b[transformHeaderLen:n]
	for len(ab) > 0 {
		if len(ab) < 4 {
			return t, nil, syntaxf("attribute needs 4 bytes, %d left", len(ab))
		}
		typ := binary.BigEndian.Uint16(ab) & 0x7fff
		tv := ab[0]&0x80 != 0
		var val []byte
		if tv {
			val, ab = ab[2:4], ab[4:]
		} else {
			l := int(binary.BigEndian.Uint16(ab[2:4]))
			if 4+l > len(ab) {
				return t, nil, syntaxf("attribute %d of %d bytes, %d left", typ, l, len(ab)-4)
			}
			val, ab = orNil(ab[4:4+l]), ab[4+l:]
		}
		switch {
		case typ == KeyLengthAttr && tv && t.KeyLength == 0:
			t.KeyLength = binary.BigEndian.Uint16(val)
			if t.KeyLength == 0 {
				return t, nil, syntaxf("key length attribute of 0 bits")
			}
		case typ == KeyLengthAttr:
			return t, nil, syntaxf("repeated or TLV-encoded key length attribute (§3.3.5)")
		case len(t.Attrs) == maxAttrs:
			return t, nil, syntaxf("more than %d transform attributes", maxAttrs)
		default:
			t.Attrs = append(t.Attrs, Attribute{Type: typ, TV: tv, Value: val})
		}
	}
	return t, b[n:], nil
}

// String renders a proposal like strongSwan's logs and proposal strings:
// "IKE:aes128-sha256-prfsha256-modp2048", transforms grouped by type in
// ENCR, INTEG, PRF, DH, ESN order, each type's in offered order.
func (p Proposal) String() string {
	var sb strings.Builder
	sb.WriteString(p.Protocol.String())
	sb.WriteByte(':')
	first := true
	put := func(t Transform) {
		if !first {
			sb.WriteByte('-')
		}
		first = false
		sb.WriteString(t.String())
	}
	order := []TransformType{TransformENCR, TransformINTEG, TransformPRF, TransformDH, TransformESN}
	for _, typ := range order {
		for _, t := range p.Transforms {
			if t.Type == typ {
				put(t)
			}
		}
	}
	for _, t := range p.Transforms {
		if t.Type < TransformENCR || t.Type > TransformESN {
			put(t)
		}
	}
	return sb.String()
}

// FormatProposals renders proposals for a log line, e.g.
// "[IKE:aes256-sha256-prfsha256-modp2048, IKE:aes128gcm16-prfsha256-ecp256]".
func FormatProposals(ps []Proposal) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}
