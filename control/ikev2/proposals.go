package ikev2

import (
	"bytes"
	"net/netip"
	"slices"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// ikeProposals builds our IKE SA proposals from phase 1: AEAD and non-AEAD
// ciphers go in separate proposals (§3.3: a proposal with an AEAD cipher
// has no integrity transform); the PRFs are the integrity list's hashes,
// as AWS negotiates them.
func ikeProposals(p config.Phase) []message.Proposal {
	cbc, gcm := encrTransforms(p)
	var integ, prfs []message.Transform
	for _, i := range p.IntegrityAlgs() {
		integ = append(integ, message.IntegTransform(i.ID))
		prfs = append(prfs, message.PRFTransform(i.PRF))
	}
	dhs := dhTransforms(p.DHGroups)
	var out []message.Proposal
	if len(cbc) > 0 {
		ts := slices.Concat(cbc, integ, prfs, dhs)
		out = append(out, message.Proposal{Protocol: message.ProtoIKE, Transforms: ts})
	}
	if len(gcm) > 0 {
		ts := slices.Concat(gcm, prfs, dhs)
		out = append(out, message.Proposal{Protocol: message.ProtoIKE, Transforms: ts})
	}
	return out
}

// espProposals builds our ESP proposals from phase 2; with pfs the DH
// groups are included (CREATE_CHILD_SA, §1.3.1), without them not (the
// first Child SA inside IKE_AUTH takes its keys from the IKE SA, §1.2).
func espProposals(p config.Phase, pfs bool) []message.Proposal {
	cbc, gcm := encrTransforms(p)
	var integ []message.Transform
	for _, i := range p.IntegrityAlgs() {
		integ = append(integ, message.IntegTransform(i.ID))
	}
	var dhs []message.Transform
	if pfs {
		dhs = dhTransforms(p.DHGroups)
	}
	esn := []message.Transform{message.ESNTransform(false)}
	var out []message.Proposal
	if len(cbc) > 0 && len(integ) > 0 {
		out = append(out, message.Proposal{Protocol: message.ProtoESP, Transforms: slices.Concat(cbc, integ, dhs, esn)})
	}
	if len(gcm) > 0 {
		out = append(out, message.Proposal{Protocol: message.ProtoESP, Transforms: slices.Concat(gcm, dhs, esn)})
	}
	return out
}

// encrTransforms splits the phase's ciphers into non-AEAD and AEAD ENCR
// transforms: they go in separate proposals (§3.3).
func encrTransforms(p config.Phase) (cbc, gcm []message.Transform) {
	for _, e := range p.EncryptionAlgs() {
		tr := message.EncrTransform(e.ID, uint16(e.KeyBits))
		if e.AEAD {
			gcm = append(gcm, tr)
		} else {
			cbc = append(cbc, tr)
		}
	}
	return cbc, gcm
}

func dhTransforms(groups []int) []message.Transform {
	var out []message.Transform
	for _, g := range groups {
		out = append(out, message.DHTransform(message.DHGroup(g)))
	}
	return out
}

// withSPI returns copies of ps carrying spi.
func withSPI(ps []message.Proposal, spi []byte) []message.Proposal {
	out := make([]message.Proposal, len(ps))
	for i, p := range ps {
		p.SPI = spi
		p.Num = 0
		out[i] = p
	}
	return out
}

// preferGroup reorders each proposal's DH transforms so g comes first
// (the group our KE payload uses, §1.2: the KE must be of the first group
// in the first proposal that has one... we put it first everywhere).
func preferGroup(ps []message.Proposal, g uint16) []message.Proposal {
	out := make([]message.Proposal, len(ps))
	for i, p := range ps {
		ts := slices.Clone(p.Transforms)
		slices.SortStableFunc(ts, func(a, b message.Transform) int {
			ap := a.Type == message.TransformDH && a.ID == g
			bp := b.Type == message.TransformDH && b.ID == g
			switch {
			case ap && !bp:
				return -1
			case bp && !ap:
				return 1
			}
			return 0
		})
		p.Transforms = ts
		out[i] = p
	}
	return out
}

// onlyGroup keeps, in each proposal, only the DH transform g (proposals
// without it are dropped); used to prefer the group the peer's KE already
// carries, which saves an INVALID_KE_PAYLOAD round trip.
func onlyGroup(ps []message.Proposal, g uint16) []message.Proposal {
	var out []message.Proposal
	for _, p := range ps {
		var ts []message.Transform
		found := false
		for _, t := range p.Transforms {
			if t.Type == message.TransformDH {
				if t.ID != g {
					continue
				}
				found = true
			}
			ts = append(ts, t)
		}
		if found {
			p.Transforms = ts
			out = append(out, p)
		}
	}
	return out
}

// withoutDH drops DH transforms: in IKE_AUTH the Child SA's proposals
// carry none (§1.2), and some initiators send them anyway.
func withoutDH(ps []message.Proposal) []message.Proposal {
	out := make([]message.Proposal, len(ps))
	for i, p := range ps {
		var ts []message.Transform
		for _, t := range p.Transforms {
			if t.Type != message.TransformDH {
				ts = append(ts, t)
			}
		}
		p.Transforms = ts
		out[i] = p
	}
	return out
}

// selectWithKE is the responder's choice when the request carries a KE
// payload of group keGroup: a proposal using that group if we accept one,
// otherwise our preferred one (and then the caller answers
// INVALID_KE_PAYLOAD naming its group, §1.2/§1.3).
func selectWithKE(ours, theirs []message.Proposal, keGroup uint16) (message.Proposal, bool) {
	if p, ok := message.Select(onlyGroup(ours, keGroup), theirs); ok {
		return p, true
	}
	return message.Select(ours, theirs)
}

func chosenDH(p message.Proposal) uint16 {
	if t, ok := p.Chosen(message.TransformDH); ok {
		return t.ID
	}
	return 0
}

// invalidKE returns the group an INVALID_KE_PAYLOAD notification in m
// asks for (§1.2, §1.3).
func invalidKE(m *message.Message) (uint16, bool) {
	if n := m.Notify(message.INVALID_KE_PAYLOAD); n != nil {
		g, ok := n.Group()
		return uint16(g), ok
	}
	return 0, false
}

// narrow intersects the initiator's selectors with our policy (§2.9): the
// responder may answer with a subset of what was proposed.
func narrow(theirs []message.TrafficSelector, ours []netip.Prefix) []message.TrafficSelector {
	var out []message.TrafficSelector
	for _, t := range theirs {
		if t.Raw != nil || !t.Start.IsValid() {
			continue
		}
		for _, p := range ours {
			o := message.TSFromPrefix(p)
			if o.TSType != t.TSType {
				continue
			}
			r := t
			if o.Start.Compare(r.Start) > 0 {
				r.Start = o.Start
			}
			if o.End.Compare(r.End) < 0 {
				r.End = o.End
			}
			if r.Start.Compare(r.End) > 0 {
				continue
			}
			if !slices.ContainsFunc(out, func(x message.TrafficSelector) bool { return tsEqual(x, r) }) {
				out = append(out, r)
			}
		}
	}
	return out
}

func tsEqual(a, b message.TrafficSelector) bool {
	return a.TSType == b.TSType && a.IPProtocol == b.IPProtocol && a.StartPort == b.StartPort &&
		a.EndPort == b.EndPort && a.Start == b.Start && a.End == b.End && bytes.Equal(a.Raw, b.Raw)
}

func selectors(ps []netip.Prefix) []message.TrafficSelector {
	out := make([]message.TrafficSelector, len(ps))
	for i, p := range ps {
		out[i] = message.TSFromPrefix(p)
	}
	return out
}
