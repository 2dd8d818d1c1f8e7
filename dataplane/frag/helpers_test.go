package frag

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// refSum is a plain word-by-word RFC 1071 sum, independent of
// dataplane/packet.
func refSum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return s
}

func sumOK(b []byte, s uint32) bool { return refSum(b, s) == 0xffff }

// pkt4Spec describes a test IPv4 packet.
type pkt4Spec struct {
	opts    []byte // IPv4 options, multiple of 4 bytes
	payload int    // bytes after the header (a UDP header and data when proto is 17)
	df      bool
	mf      bool
	off     uint16 // 8-byte units
	proto   byte
	id      uint16
	src     [4]byte
	dst     [4]byte
	fill    byte // 0: random payload
}

var (
	src4 = [4]byte{198, 18, 0, 10}
	dst4 = [4]byte{198, 19, 0, 20}
)

func build4(r *rand.Rand, s pkt4Spec) []byte {
	hl := 20 + len(s.opts)
	p := make([]byte, hl+s.payload)
	p[0] = 0x40 | byte(hl/4)
	p[1] = 0x28
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], s.id)
	ff := s.off
	if s.df {
		ff |= 0x4000
	}
	if s.mf {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], ff)
	p[8] = 61
	p[9] = s.proto
	if s.proto == 0 {
		p[9] = 17
	}
	if s.src == ([4]byte{}) {
		s.src = src4
	}
	if s.dst == ([4]byte{}) {
		s.dst = dst4
	}
	copy(p[12:], s.src[:])
	copy(p[16:], s.dst[:])
	copy(p[20:], s.opts)
	for i := hl; i < len(p); i++ {
		if s.fill != 0 {
			p[i] = s.fill
		} else {
			p[i] = byte(r.Uint32())
		}
	}
	if p[9] == 17 && s.payload >= 8 && s.off == 0 && !s.mf {
		u := p[hl:]
		binary.BigEndian.PutUint16(u[0:], 40000)
		binary.BigEndian.PutUint16(u[2:], 9)
		binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
		u[6], u[7] = 0, 0
		ps := refSum(p[12:20], 17+uint32(len(u)))
		c := ^uint16(refSum(u, ps))
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(u[6:], c)
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(refSum(p[:hl], 0)))
	return p
}

// IPv4 options for tests (RFC 791 §3.1, IANA "IP Option Numbers").
var (
	optRouterAlert = []byte{0x94, 4, 0, 0}                          // copied
	optRecordRoute = []byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0}       // not copied
	optTimestamp   = []byte{0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0} // not copied
	optLSRR        = []byte{0x83, 7, 4, 198, 19, 0, 20}             // copied; the route ends at dst4, so the UDP pseudo-header destination is unchanged (RFC 791 §3.1)
	optSecurity    = []byte{0x82, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}    // copied (RFC 1108)
	optNop1        = []byte{1}
	optionPool     = [][]byte{optRouterAlert, optRecordRoute, optTimestamp, optLSRR, optSecurity, optNop1}
)

// randomOptions returns a random well-formed option list padded to a
// multiple of 4 (EOL padding), at most 40 bytes.
func randomOptions(r *rand.Rand) []byte {
	var o []byte
	for range r.IntN(5) {
		x := optionPool[r.IntN(len(optionPool))]
		if len(o)+len(x) > 40 {
			break
		}
		o = append(o, x...)
	}
	for len(o)%4 != 0 {
		o = append(o, 0)
	}
	return o
}

// copiedOptions is the independent expectation of a non-first
// fragment's options: the copied ones, in order, EOL-padded.
func copiedOptions(opts []byte) []byte {
	var o []byte
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			i = len(opts)
			continue
		case 1:
			i++
			continue
		}
		l := int(opts[i+1])
		if opts[i]&0x80 != 0 {
			o = append(o, opts[i:i+l]...)
		}
		i += l
	}
	for len(o)%4 != 0 {
		o = append(o, 0)
	}
	return o
}

// reassemble is the test's reference reassembler (RFC 791 §3.2
// reassembly, RFC 815 style hole filling without overlap): it checks every
// fragment on its own, then the set as a whole, and returns the
// reassembled packet (header of the fragment at the lowest offset with its
// offset and the last piece's MF restored) for comparison with the
// original.
func reassemble(frags [][]byte, orig []byte, mtu int, wantDF bool) error {
	ohl := int(orig[0]&0xf) * 4
	oopts := orig[20:ohl]
	ocopied := copiedOptions(oopts)
	oOff := int(binary.BigEndian.Uint16(orig[6:]) & 0x1fff)
	oMF := orig[6]&0x20 != 0
	odata := orig[ohl:]
	got := make([]byte, len(odata))
	seen := make([]bool, len(odata))
	var lastMF bool
	maxEnd := 0
	for i, f := range frags {
		if len(f) > mtu {
			return fmt.Errorf("fragment %d: %d bytes > mtu %d", i, len(f), mtu)
		}
		if f[0]>>4 != 4 {
			return fmt.Errorf("fragment %d: version %d", i, f[0]>>4)
		}
		hl := int(f[0]&0xf) * 4
		if hl < 20 || hl > len(f) || !sumOK(f[:hl], 0) {
			return fmt.Errorf("fragment %d: bad header length %d or header checksum", i, hl)
		}
		if int(binary.BigEndian.Uint16(f[2:])) != len(f) {
			return fmt.Errorf("fragment %d: total length %d, slice %d", i, binary.BigEndian.Uint16(f[2:]), len(f))
		}
		if !bytes.Equal(f[1:2], orig[1:2]) || !bytes.Equal(f[4:6], orig[4:6]) || !bytes.Equal(f[8:10], orig[8:10]) || !bytes.Equal(f[12:20], orig[12:20]) {
			return fmt.Errorf("fragment %d: TOS/ID/TTL/protocol/addresses differ from the original", i)
		}
		ff := binary.BigEndian.Uint16(f[6:])
		if df := ff&0x4000 != 0; df != wantDF {
			return fmt.Errorf("fragment %d: DF %v, want %v", i, df, wantDF)
		}
		if ff&0x8000 != 0 {
			return fmt.Errorf("fragment %d: reserved flag set", i)
		}
		off := int(ff&0x1fff)*8 - oOff*8
		mf := ff&0x2000 != 0
		d := f[hl:]
		if off < 0 || off+len(d) > len(odata) {
			return fmt.Errorf("fragment %d: data %d..%d outside the original's %d bytes", i, off, off+len(d), len(odata))
		}
		if i == 0 {
			if off != 0 || !bytes.Equal(f[20:hl], oopts) {
				return fmt.Errorf("first fragment: offset %d or options % x, want 0 and % x", off, f[20:hl], oopts)
			}
		} else if !bytes.Equal(f[20:hl], ocopied) {
			return fmt.Errorf("fragment %d: options % x, want only the copied ones % x", i, f[20:hl], ocopied)
		}
		if mf && len(d)%8 != 0 {
			return fmt.Errorf("fragment %d: MF set but %d data bytes (not a multiple of 8)", i, len(d))
		}
		for j := range d {
			if seen[off+j] {
				return fmt.Errorf("fragment %d: byte %d overlaps", i, off+j)
			}
			seen[off+j] = true
			got[off+j] = d[j]
		}
		if off+len(d) >= maxEnd {
			maxEnd, lastMF = off+len(d), mf
		}
	}
	for j, s := range seen {
		if !s {
			return fmt.Errorf("hole at data byte %d of %d", j, len(seen))
		}
	}
	if lastMF != oMF {
		return fmt.Errorf("last piece MF %v, original MF %v", lastMF, oMF)
	}
	if !bytes.Equal(got, odata) {
		return fmt.Errorf("reassembled data differs")
	}
	return nil
}

// frames returns k buffers of size bytes each (stand-ins for AF_XDP frame
// space after the headroom).
func frames(k, size int) [][]byte {
	out := make([][]byte, k)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out
}
