package message

import "testing"

// Control-plane costs, for the record (IKE is not on the per-packet path):
// decoding strongSwan's IKE_SA_INIT request, and sealing/opening an
// IKE_AUTH request.
func BenchmarkDecodeIKESAInit(b *testing.B) {
	raw := loadCapture(b, "cbc.txt").msgs[2].payload
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSK(b *testing.B) {
	for _, kw := range []string{"aes128gcm16 prfsha256 ecp256", "aes256 sha256 prfsha256 modp2048"} {
		p := prop(ProtoIKE, kw)
		keys := testKeys(b, p)
		m := authMessage(FlagInitiator)
		b.Run(p.String()+"/seal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EncodeEncrypted(m, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
		raw, _ := EncodeEncrypted(m, keys)
		b.Run(p.String()+"/open", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeEncrypted(raw, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
