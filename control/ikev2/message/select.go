package message

import (
	"fmt"
	"slices"

	"github.com/cgw-project/cgw/crypto/transform"
)

// Select is the responder's proposal choice (§2.7, §3.3.6): it returns
// one of the initiator's proposals (theirs), reduced to a single
// transform of each type, that our configuration (ours) accepts.
//
// A proposal of theirs matches one of ours when the protocols are equal
// and, for every transform type present in either:
//   - if ours has the type, theirs offers at least one transform of it
//     that ours also lists with the same ID and the same Key Length
//     attribute (AES-128 is not AES-256); ours' order decides which;
//   - if ours does not have the type, theirs lacks it too, or offers
//     NONE (ID 0) for it (§3.3.3: how an initiator makes a type optional,
//     e.g. DH in a CREATE_CHILD_SA without PFS); the type is then left
//     out of the result;
//   - for ESP, a proposal without an ESN transform means "no ESN": some
//     peers omit it, and §3.3.3 makes no-ESN the only meaning it can have.
//
// Transforms carrying attributes other than Key Length are never chosen
// (§3.3.6: an unknown attribute makes the transform unacceptable).
//
// Our proposals are tried in order, each against theirs in their order,
// so our configuration's preference wins (as strongSwan does by default).
// The result keeps their proposal number and SPI; a responder replaces
// the SPI with its own before answering. ok is false when nothing
// matches: answer NO_PROPOSAL_CHOSEN and log FormatProposals of both.
func Select(ours, theirs []Proposal) (Proposal, bool) {
	for _, o := range ours {
		for _, t := range theirs {
			if p, ok := match(o, t); ok {
				return p, true
			}
		}
	}
	return Proposal{}, false
}

// transformTypes are the types Select reasons about, in the order the
// chosen proposal lists them.
var transformTypes = [...]TransformType{TransformENCR, TransformPRF, TransformINTEG, TransformDH, TransformESN}

func match(ours, theirs Proposal) (Proposal, bool) {
	if ours.Protocol != theirs.Protocol {
		return Proposal{}, false
	}
	// A type we do not know cannot be agreed to (and we would not know
	// what we agreed to).
	for _, t := range theirs.Transforms {
		if t.Type < TransformENCR || t.Type > TransformESN {
			return Proposal{}, false
		}
	}
	out := Proposal{Num: theirs.Num, Protocol: theirs.Protocol, SPI: theirs.SPI}
	for _, typ := range transformTypes {
		oursHas, theirsHas := has(ours, typ), has(theirs, typ)
		if typ == TransformESN && ours.Protocol == ProtoESP {
			// Missing ESN means no ESN on either side.
			if !oursHas {
				ours.Transforms = append(ours.Transforms[:len(ours.Transforms):len(ours.Transforms)], ESNTransform(false))
			}
			if !theirsHas {
				if pick(ours, Proposal{Transforms: []Transform{ESNTransform(false)}}, typ) == nil {
					return Proposal{}, false
				}
				continue // agreed on no ESN; do not add what they did not offer
			}
			oursHas = true
		}
		switch {
		case !oursHas && !theirsHas:
		case !oursHas:
			// Acceptable only if they offer NONE for the type.
			if !offersNone(theirs, typ) {
				return Proposal{}, false
			}
		case !theirsHas:
			// We insist on the type unless we list NONE for it.
			if !offersNone(ours, typ) {
				return Proposal{}, false
			}
		default:
			t := pick(ours, theirs, typ)
			if t == nil {
				return Proposal{}, false
			}
			if t.ID == 0 && typ != TransformESN {
				continue // NONE chosen: leave the type out
			}
			out.Transforms = append(out.Transforms, *t)
		}
	}
	// List the chosen transforms in the order the initiator wrote them:
	// the answer is then a subsequence of its proposal (as strongSwan's
	// answers are).
	pos := func(x Transform) int {
		for i, t := range theirs.Transforms {
			if t.Type == x.Type && t.ID == x.ID && t.KeyLength == x.KeyLength {
				return i
			}
		}
		return len(theirs.Transforms)
	}
	slices.SortStableFunc(out.Transforms, func(a, b Transform) int { return pos(a) - pos(b) })
	return out, true
}

func has(p Proposal, typ TransformType) bool {
	for _, t := range p.Transforms {
		if t.Type == typ {
			return true
		}
	}
	return false
}

func offersNone(p Proposal, typ TransformType) bool {
	for _, t := range p.Transforms {
		if t.Type == typ && t.ID == 0 && t.KeyLength == 0 && len(t.Attrs) == 0 {
			return true
		}
	}
	return false
}

// pick returns the first of ours' transforms of type typ that theirs
// offers identically, as theirs wrote it.
func pick(ours, theirs Proposal, typ TransformType) *Transform {
	for _, o := range ours.Transforms {
		if o.Type != typ || len(o.Attrs) > 0 {
			continue
		}
		for i, t := range theirs.Transforms {
			if t.Type == typ && t.ID == o.ID && t.KeyLength == o.KeyLength && len(t.Attrs) == 0 {
				return &theirs.Transforms[i]
			}
		}
	}
	return nil
}

// Chosen returns the proposal's transform of type typ (the first one,
// which after Select is the only one).
func (p Proposal) Chosen(typ TransformType) (Transform, bool) {
	for _, t := range p.Transforms {
		if t.Type == typ {
			return t, true
		}
	}
	return Transform{}, false
}

// Accepts reports whether a proposal the peer answered with (a responder's
// single chosen proposal) is one we could have chosen from ours: exactly
// one transform per type, all from our offer. An initiator must check
// this before using the answer (§2.7).
func Accepts(ours []Proposal, answer Proposal) bool {
	seen := map[TransformType]bool{}
	for _, t := range answer.Transforms {
		if seen[t.Type] {
			return false
		}
		seen[t.Type] = true
	}
	for i, o := range ours {
		num := o.Num
		if num == 0 {
			num = uint8(i + 1) // as Encode numbered it
		}
		if num != answer.Num {
			continue
		}
		if p, ok := match(o, answer); ok && len(p.Transforms) == len(answer.Transforms) {
			return true
		}
	}
	return false
}

// ESPSuite returns the dataplane transform of a negotiated ESP proposal
// (one ENCR, INTEG unless AEAD, optional DH and ESN) and whether it uses
// extended sequence numbers, for crypto/transform.New.
func (p Proposal) ESPSuite() (transform.Suite, bool, error) {
	if p.Protocol != ProtoESP {
		return transform.Suite{}, false, fmt.Errorf("ikev2: proposal %s is not ESP", p)
	}
	e, ok := p.Chosen(TransformENCR)
	if !ok {
		return transform.Suite{}, false, fmt.Errorf("ikev2: ESP proposal %s has no encryption transform", p)
	}
	s := transform.Suite{Encr: transform.EncrID(e.ID), KeyBits: int(e.KeyLength), Integ: AUTH_NONE}
	if i, ok := p.Chosen(TransformINTEG); ok {
		s.Integ = transform.IntegID(i.ID)
	}
	if err := s.Valid(); err != nil {
		return s, false, fmt.Errorf("ikev2: ESP proposal %s: %w", p, err)
	}
	esn, _ := p.Chosen(TransformESN)
	return s, esn.Type == TransformESN && esn.ID == ESN, nil
}
