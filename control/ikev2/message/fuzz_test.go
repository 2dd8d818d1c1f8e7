package message

import (
	"errors"
	"reflect"
	"testing"
)

// checkCaps fails if a decoded message holds more elements than the
// decoder's caps allow: the allocation bound rests on them.
func checkCaps(t *testing.T, m *Message) {
	if len(m.Payloads) > maxPayloads {
		t.Fatalf("%d payloads", len(m.Payloads))
	}
	for _, p := range m.Payloads {
		switch v := p.(type) {
		case *SA:
			if len(v.Proposals) > maxProposals {
				t.Fatalf("%d proposals", len(v.Proposals))
			}
			for _, pr := range v.Proposals {
				for _, tr := range pr.Transforms {
					if len(tr.Attrs) > maxAttrs {
						t.Fatalf("%d attributes", len(tr.Attrs))
					}
				}
			}
		case *TrafficSelectors:
			if len(v.Selectors) > maxSelectors {
				t.Fatalf("%d selectors", len(v.Selectors))
			}
		case *Config:
			if len(v.Attributes) > maxCfgAttributes {
				t.Fatalf("%d CP attributes", len(v.Attributes))
			}
		case *Delete:
			if len(v.SPIs) > maxDeleteSPIs {
				t.Fatalf("%d SPIs", len(v.SPIs))
			}
		}
	}
}

// knownError reports whether err is one Decode documents.
func knownError(err error) bool {
	var ve *VersionError
	var ce *CriticalPayloadError
	return errors.Is(err, ErrSyntax) || errors.As(err, &ve) || errors.As(err, &ce)
}

// FuzzDecode: arbitrary bytes never panic, fail only with documented
// errors, respect the caps, and whatever decodes re-encodes to a message
// that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	for _, p := range everyPayload() {
		raw, err := Encode(&Message{Header: Header{Exchange: IKE_SA_INIT, Flags: FlagInitiator}, Payloads: []Payload{p}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	raw, _ := Encode(&Message{Header: Header{Exchange: IKE_AUTH}, Payloads: everyPayload()})
	f.Add(raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Decode(raw)
		if err != nil {
			if !knownError(err) {
				t.Fatalf("undocumented error %T: %v", err, err)
			}
			return
		}
		checkCaps(t, m)
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %v but cannot re-encode it: %v", m, err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		// Skipped unknown payloads leave the header's NextPayload naming
		// them; the re-encoding names the first known one.
		m.Length, m2.Length = 0, 0
		m.NextPayload, m2.NextPayload = 0, 0
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", m, m2)
		}
	})
}

// FuzzDecodeEncrypted drives DecodeEncrypted two ways: with data as a
// whole received message (forgeries: must fail with ErrIntegrity or a
// documented error, never panic), and, when seal is set, with data as the
// plaintext of an authentic SK payload, sealed first with the test keys,
// so the pad length and inner payload chain are fuzzed behind a valid ICV.
func FuzzDecodeEncrypted(f *testing.F) {
	props := skProposals()
	suites := []Proposal{props[0], props[2], props[len(props)-1]} // aes128gcm16, aes128-sha256, aes256-sha512
	keys := make([]*Keys, len(suites))
	for i, p := range suites {
		keys[i] = testKeys(f, p)
		for _, flags := range []Flags{FlagInitiator, FlagResponse} {
			raw, err := EncodeEncrypted(authMessage(flags), keys[i])
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), false, uint8(0), raw)
		}
	}
	inner, _ := appendChain(nil, authMessage(0).Payloads)
	f.Add(uint8(0), true, uint8(PayloadIDi), append(inner, 0))
	f.Add(uint8(1), true, uint8(PayloadIDi), append(inner, make([]byte, 16-len(inner)%16)...))
	f.Add(uint8(2), true, uint8(0), []byte{0})
	f.Fuzz(func(t *testing.T, which uint8, seal bool, next uint8, data []byte) {
		k := keys[int(which)%len(keys)]
		raw := data
		if seal {
			c := k.Initiator
			if len(data) == 0 || len(data)%c.BlockSize() != 0 || len(data) > 60000 {
				return
			}
			h := Header{SPIi: spi(1), SPIr: spi(2), Exchange: INFORMATIONAL, Flags: FlagInitiator, NextPayload: PayloadSK}
			n := HeaderLen + 4 + c.IVLen() + len(data) + c.ICVLen()
			h.Length = uint32(n)
			raw = h.append(nil)
			raw = append(raw, next, 0, byte((n-HeaderLen)>>8), byte(n-HeaderLen))
			raw = append(raw, make([]byte, c.IVLen())...)
			raw = append(raw, data...)
			raw = append(raw, make([]byte, c.ICVLen())...)
			if err := c.Seal(raw, HeaderLen+4); err != nil {
				t.Fatal(err)
			}
		}
		m, err := DecodeEncrypted(raw, k)
		if err != nil {
			if seal && errors.Is(err, ErrIntegrity) {
				t.Fatalf("authentic message failed the integrity check")
			}
			if !knownError(err) && !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrNotEncrypted) {
				t.Fatalf("undocumented error %T: %v", err, err)
			}
			return
		}
		checkCaps(t, m)
		// What opened re-seals and opens to the same message.
		again, err := EncodeEncrypted(m, k)
		if err != nil {
			t.Fatalf("decoded %v but cannot re-encode it: %v", m, err)
		}
		m2, err := DecodeEncrypted(again, k)
		if err != nil {
			t.Fatalf("re-sealed message does not open: %v", err)
		}
		m.Length, m2.Length = 0, 0
		m.NextPayload, m2.NextPayload = 0, 0
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", m, m2)
		}
	})
}
