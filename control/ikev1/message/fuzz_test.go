package message

import (
	"testing"

	"github.com/cgw-project/cgw/crypto/prf"
)

// FuzzDecode: no input makes the decoders panic, clear or encrypted.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(Header{Exchange: ExchIdentityProt}, []Payload{{Type: PayloadSA, Body: sampleSA().Encode()}, {Type: PayloadVendor, Body: VIDDPD}}))
	f.Add(Encode(Header{Exchange: ExchInformation}, []Payload{{Type: PayloadDelete, Body: Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}}}.Encode()}}))
	h, _ := prf.LookupIKEv1Hash(2)
	c, _ := NewCrypter(make([]byte, 16), h)
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, err := DecodeHeader(b)
		if err != nil {
			return
		}
		if hd.Flags&FlagEncryption != 0 {
			c.Open(hd, b, make([]byte, 16))
			return
		}
		m, err := Decode(b)
		if err != nil {
			return
		}
		for _, p := range m.Payloads {
			switch p.Type {
			case PayloadSA:
				ParseSA(p.Body)
			case PayloadNotify:
				ParseNotify(p.Body)
			case PayloadDelete:
				ParseDelete(p.Body)
			case PayloadID:
				if id, err := ParseID(p.Body); err == nil {
					id.Prefix()
				}
			}
		}
	})
}
