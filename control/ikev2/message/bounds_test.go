package message

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

func encodeOne(t testing.TB, p Payload) []byte {
	raw, err := Encode(&Message{Header: Header{Exchange: IKE_SA_INIT, Flags: FlagInitiator}, Payloads: []Payload{p}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// setLen rewrites the header's length field to the datagram's real size,
// so a test exercises the payload layer, not the header check.
func setLen(b []byte) []byte {
	if len(b) < HeaderLen {
		return b
	}
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b
}

// Every proper prefix of every valid message is refused as a syntax error
// (header length patched to match, so the payload parsers see the cut).
func TestTruncated(t *testing.T) {
	full, err := Encode(&Message{Header: Header{Exchange: IKE_AUTH}, Payloads: everyPayload()})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(full); n++ {
		_, err := Decode(setLen(bytes.Clone(full[:n])))
		if !errors.Is(err, ErrSyntax) {
			t.Fatalf("prefix of %d/%d bytes: %v, want a syntax error", n, len(full), err)
		}
		// And unpatched: the header length disagrees.
		if n >= HeaderLen {
			if _, err := Decode(full[:n]); !errors.Is(err, ErrSyntax) {
				t.Fatalf("unpatched prefix of %d bytes: %v", n, err)
			}
		}
	}
	if _, err := Decode(append(bytes.Clone(full), 0)); !errors.Is(err, ErrSyntax) {
		t.Errorf("trailing byte: %v", err)
	}
}

// Length fields of every level set to values that are too small, too
// large or inconsistent.
func TestBadLengths(t *testing.T) {
	sa := encodeOne(t, &SA{Proposals: ikeProposals()})
	const g = HeaderLen      // generic header of the SA payload
	const p1 = HeaderLen + 4 // first proposal
	const t1 = p1 + 8        // its first transform
	ts := encodeOne(t, &TrafficSelectors{Selectors: []TrafficSelector{mustTS("0.0.0.0/0")}})
	notify := encodeOne(t, &Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, NotifyType: REKEY_SA})
	del := encodeOne(t, &Delete{Protocol: ProtoESP, SPIs: []uint32{1, 2}})
	cp := encodeOne(t, &Config{CfgType: CFG_REQUEST, Attributes: []CfgAttribute{{Type: 1, Value: []byte{1, 2, 3, 4}}}})
	for _, c := range []struct {
		name string
		raw  []byte
		off  int
		val  []byte
	}{
		{"payload length 0", sa, g + 2, []byte{0, 0}},
		{"payload length 3", sa, g + 2, []byte{0, 3}},
		{"payload length beyond message", sa, g + 2, []byte{0xff, 0xff}},
		{"payload length short by one", sa, g + 2, u16(len(sa) - g - 1)},
		{"proposal length 7", sa, p1 + 2, []byte{0, 7}},
		{"proposal length beyond payload", sa, p1 + 2, []byte{0x0f, 0xff}},
		{"proposal length short", sa, p1 + 2, []byte{0, 20}},
		{"transform count too high", sa, p1 + 7, []byte{200}},
		{"transform count too low", sa, p1 + 7, []byte{1}},
		{"transform count zero", sa, p1 + 7, []byte{0}},
		{"SPI size 200", sa, p1 + 6, []byte{200}},
		{"SPI size 4 for IKE", sa, p1 + 6, []byte{4}},
		{"proposal number 0", sa, p1 + 4, []byte{0}},
		{"first proposal numbered 2", sa, p1 + 4, []byte{2}},
		{"first proposal marked last", sa, p1, []byte{0}},
		{"proposal Last Substruc 3", sa, p1, []byte{3}},
		{"transform length 4", sa, t1 + 2, []byte{0, 4}},
		{"transform length beyond proposal", sa, t1 + 2, []byte{0x0f, 0xff}},
		{"transform marked last too early", sa, t1, []byte{0}},
		{"key length attribute as TLV", sa, t1 + 8, []byte{0x00}},
		{"key length 0", sa, t1 + 10, []byte{0, 0}},
		{"TS count 2, one present", ts, g + 4, []byte{2}},
		{"TS count 0", ts, g + 4, []byte{0}},
		{"TS count over the cap", ts, g + 4, []byte{maxSelectors + 1}},
		{"TS selector length 15", ts, g + 8 + 2, []byte{0, 15}},
		{"TS selector length 17", ts, g + 8 + 2, []byte{0, 17}},
		{"TS selector length 3", ts, g + 8 + 2, []byte{0, 3}},
		{"TS v6 type with v4 length", ts, g + 8, []byte{8}},
		{"notify SPI size beyond body", notify, g + 5, []byte{200}},
		{"delete SPI count 3, two present", del, g + 6, []byte{0, 3}},
		{"delete SPI size 8", del, g + 5, []byte{8}},
		{"delete ESP with 0 SPIs", setLen(append(bytes.Clone(del[:g]), 0, 0, 0, 8, 3, 4, 0, 0)), g + 6, []byte{0, 0}},
		{"delete protocol 9", del, g + 4, []byte{9}},
		{"CP attribute length beyond payload", cp, g + 8 + 2, []byte{0, 5}},
	} {
		bad := bytes.Clone(c.raw)
		copy(bad[c.off:], c.val)
		if _, err := Decode(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v, want a syntax error", c.name, err)
		}
	}
}

func u16(n int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(n)) }

func TestSemanticChecks(t *testing.T) {
	for name, p := range map[string]Payload{
		"nonce of 15 bytes":  &Nonce{Data: make([]byte, 15)},
		"nonce of 257 bytes": &Nonce{Data: make([]byte, 257)},
		"IPv4 ID of 5 bytes": &ID{IDType: ID_IPV4_ADDR, Data: make([]byte, 5)},
		"IPv6 ID of 4 bytes": &ID{IDType: ID_IPV6_ADDR, Data: make([]byte, 4)},
	} {
		// Encode refuses it...
		if _, err := Encode(&Message{Payloads: []Payload{p}}); err == nil {
			t.Errorf("%s: encoded", name)
		}
		// ...and Decode refuses the same bytes built by hand.
		var body []byte
		switch v := p.(type) {
		case *Nonce:
			body = v.Data
		case *ID:
			body = append([]byte{byte(v.IDType), 0, 0, 0}, v.Data...)
		}
		raw := (&Header{NextPayload: p.Type(), Major: 2}).append(nil)
		raw = append(raw, 0, 0, byte((4+len(body))>>8), byte(4+len(body)))
		raw = setLen(append(raw, body...))
		if _, err := Decode(raw); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: decoded: %v", name, err)
		}
	}
	for name, m := range map[string]*Message{
		"SA without proposals":        {Payloads: []Payload{&SA{}}},
		"ESP SPI of 8 bytes":          {Payloads: []Payload{&SA{Proposals: []Proposal{{Protocol: ProtoESP, SPI: make([]byte, 8), Transforms: []Transform{ESNTransform(false)}}}}}},
		"proposal without transforms": {Payloads: []Payload{&SA{Proposals: []Proposal{{Protocol: ProtoIKE}}}}},
		"TS without selectors":        {Payloads: []Payload{&TrafficSelectors{}}},
		"TS family mix":               {Payloads: []Payload{&TrafficSelectors{Selectors: []TrafficSelector{{TSType: TS_IPV4_ADDR_RANGE, Start: mustTS("2001:db8::/32").Start, End: mustTS("0.0.0.0/0").End}}}}},
		"Delete IKE with SPIs":        {Payloads: []Payload{&Delete{Protocol: ProtoIKE, SPIs: []uint32{1}}}},
		"Delete ESP without SPI":      {Payloads: []Payload{&Delete{Protocol: ProtoESP}}},
		"SK not last":                 {Payloads: []Payload{&Encrypted{}, &Nonce{Data: make([]byte, 16)}}},
		"oversized":                   {Payloads: []Payload{&VendorID{Data: make([]byte, 70000)}}},
	} {
		if _, err := Encode(m); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func TestPayloadCap(t *testing.T) {
	var ps []Payload
	for range maxPayloads + 1 {
		ps = append(ps, &VendorID{})
	}
	raw, err := Encode(&Message{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(raw); !errors.Is(err, ErrSyntax) {
		t.Errorf("%d payloads: %v", len(ps), err)
	}
	if _, err := Decode(raw[:len(raw)-4]); err == nil {
		t.Error("header length mismatch accepted")
	}
	raw = setLen(raw[:len(raw)-4])
	raw[HeaderLen+4*(maxPayloads-1)] = 0
	if m, err := Decode(raw); err != nil || len(m.Payloads) != maxPayloads {
		t.Errorf("%d payloads: %v", maxPayloads, err)
	}
}

// Hostile inputs built to make the decoder allocate as much as possible
// per input byte. Decode's allocation must stay within a small multiple
// of the input (which is at most 64 KiB).
func TestAllocationBound(t *testing.T) {
	// Many tiny payloads.
	var tiny []Payload
	for range maxPayloads {
		tiny = append(tiny, &VendorID{})
	}
	// Unknown-type selectors: 4 wire bytes each, as many as allowed.
	var sels []TrafficSelector
	for range maxSelectors {
		sels = append(sels, TrafficSelector{TSType: 99})
	}
	var tsps []Payload
	for range maxPayloads {
		tsps = append(tsps, &TrafficSelectors{Selectors: sels})
	}
	// Proposals of 255 attribute-laden transforms.
	var tr []Transform
	for range 255 {
		tr = append(tr, Transform{Type: TransformENCR, ID: 12, KeyLength: 128,
			Attrs: []Attribute{{Type: 1, TV: true, Value: []byte{0, 0}}, {Type: 2, TV: true, Value: []byte{0, 0}}}})
	}
	var props []Proposal
	for range 8 {
		props = append(props, Proposal{Protocol: ProtoIKE, Transforms: tr})
	}
	// CP payloads full of empty attributes.
	var attrs []CfgAttribute
	for range maxCfgAttributes {
		attrs = append(attrs, CfgAttribute{Type: 1})
	}
	var cps []Payload
	for range 60 {
		cps = append(cps, &Config{Attributes: attrs})
	}
	for name, ps := range map[string][]Payload{
		"tiny payloads": tiny,
		"selectors":     tsps,
		"transforms":    {&SA{Proposals: props}},
		"CP attributes": cps,
		"delete SPIs":   {&Delete{Protocol: ProtoESP, SPIs: make([]uint32, maxDeleteSPIs)}},
	} {
		raw, err := Encode(&Message{Payloads: ps})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := Decode(raw); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 10
		for range runs {
			Decode(raw)
		}
		runtime.ReadMemStats(&after)
		perByte := float64(after.TotalAlloc-before.TotalAlloc) / runs / float64(len(raw))
		t.Logf("%s: %d-byte message, %.1f bytes allocated per input byte", name, len(raw), perByte)
		if perByte > 32 {
			t.Errorf("%s: Decode allocates %.1f bytes per input byte (ceiling 32)", name, perByte)
		}
	}
}
