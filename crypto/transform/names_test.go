package transform

import "testing"

func TestKeywords(t *testing.T) {
	for _, c := range []struct {
		id   EncrID
		bits int
		want string
		ok   bool
	}{
		{ENCR_AES_CBC, 128, "aes128", true}, {ENCR_AES_GCM_16, 256, "aes256gcm16", true},
		{ENCR_AES_GCM_16, 0, "aesgcm16", true}, {ENCR_3DES, 0, "3des", true},
		{ENCR_3DES, 192, "3des(192)", true}, {ENCR_CHACHA20_POLY1305, 0, "chacha20poly1305", true},
		{99, 128, "", false},
	} {
		if got, ok := EncrKeyword(c.id, c.bits); got != c.want || ok != c.ok {
			t.Errorf("EncrKeyword(%d, %d) = %q %v, want %q %v", c.id, c.bits, got, ok, c.want, c.ok)
		}
	}
	for id, want := range map[IntegID]string{AUTH_NONE: "none", AUTH_HMAC_MD5_96: "md5", AUTH_HMAC_SHA1_96: "sha1",
		AUTH_AES_XCBC_96: "aesxcbc", AUTH_AES_CMAC_96: "aescmac", AUTH_HMAC_SHA2_256_128: "sha256",
		AUTH_HMAC_SHA2_384_192: "sha384", AUTH_HMAC_SHA2_512_256: "sha512"} {
		if got, ok := IntegKeyword(id); got != want || !ok {
			t.Errorf("IntegKeyword(%d) = %q %v, want %q", id, got, ok, want)
		}
	}
	if got, ok := IntegKeyword(99); ok || got != "" {
		t.Errorf("IntegKeyword(99) = %q %v", got, ok)
	}
}

// LookupHMAC and AEAD answer from the same tables New uses.
func TestLookupHMACAndAEAD(t *testing.T) {
	for id, want := range map[IntegID][2]int{AUTH_HMAC_SHA1_96: {20, 12}, AUTH_HMAC_SHA2_256_128: {32, 16},
		AUTH_HMAC_SHA2_384_192: {48, 24}, AUTH_HMAC_SHA2_512_256: {64, 32}} {
		h, ok := LookupHMAC(id)
		if !ok || h.KeyLen != want[0] || h.ICVLen != want[1] || h.Hash().Size() != want[0] {
			t.Errorf("LookupHMAC(%d) = %+v %v, want key %d, ICV %d", id, h, ok, want[0], want[1])
		}
	}
	for _, id := range []IntegID{AUTH_NONE, AUTH_HMAC_MD5_96, 99} {
		if _, ok := LookupHMAC(id); ok {
			t.Errorf("LookupHMAC(%d) found", id)
		}
	}
	for _, s := range Suites() {
		if s.AEAD() != (s.Encr == ENCR_AES_GCM_16) || s.AEAD() != (s.ICVLen() == 16 && s.Integ == AUTH_NONE) {
			t.Errorf("%v: AEAD() = %v", s, s.AEAD())
		}
	}
	if (Suite{Encr: ENCR_AES_GCM_16, KeyBits: 192}).AEAD() {
		t.Errorf("unimplemented GCM-192 reported as an AEAD")
	}
}
