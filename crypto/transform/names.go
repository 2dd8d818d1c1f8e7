package transform

import (
	"fmt"
	"strconv"
	"strings"
)

// Other IANA encryption IDs (RFC 7296 §3.3.2, IANA "IKEv2 Parameters"),
// not implemented: named so that a peer's offer can be logged.
const (
	ENCR_3DES              EncrID = 3
	ENCR_NULL              EncrID = 11
	ENCR_AES_CTR           EncrID = 13
	ENCR_AES_CCM_8         EncrID = 14
	ENCR_AES_CCM_12        EncrID = 15
	ENCR_AES_CCM_16        EncrID = 16
	ENCR_AES_GCM_8         EncrID = 18
	ENCR_AES_GCM_12        EncrID = 19
	ENCR_CAMELLIA_CBC      EncrID = 23
	ENCR_CHACHA20_POLY1305 EncrID = 28
)

// Other IANA integrity IDs, not implemented, named for logging.
const (
	AUTH_HMAC_MD5_96 IntegID = 1
	AUTH_AES_XCBC_96 IntegID = 5
	AUTH_AES_CMAC_96 IntegID = 8
)

// The keyword tables hold strongSwan's proposal keywords, so that logs
// compare with a swanctl.conf; every package that names an encryption or
// integrity transform uses them. "%d" marks where the key length goes.
var (
	encrKeywords = map[EncrID]string{
		ENCR_3DES: "3des", ENCR_NULL: "null", ENCR_AES_CBC: "aes%d", ENCR_AES_CTR: "aes%dctr",
		ENCR_AES_CCM_8: "aes%dccm8", ENCR_AES_CCM_12: "aes%dccm12", ENCR_AES_CCM_16: "aes%dccm16",
		ENCR_AES_GCM_8: "aes%dgcm8", ENCR_AES_GCM_12: "aes%dgcm12", ENCR_AES_GCM_16: "aes%dgcm16",
		ENCR_CAMELLIA_CBC: "camellia%d", ENCR_CHACHA20_POLY1305: "chacha20poly1305",
	}
	integKeywords = map[IntegID]string{
		AUTH_NONE: "none", AUTH_HMAC_MD5_96: "md5", AUTH_HMAC_SHA1_96: "sha1", AUTH_AES_XCBC_96: "aesxcbc",
		AUTH_AES_CMAC_96: "aescmac", AUTH_HMAC_SHA2_256_128: "sha256", AUTH_HMAC_SHA2_384_192: "sha384",
		AUTH_HMAC_SHA2_512_256: "sha512",
	}
)

// EncrKeyword returns strongSwan's keyword for encryption id with a
// keyBits-bit key ("aes128", "aes256gcm16", "3des") and whether id is
// known. keyBits 0 leaves the length out ("aesgcm16"); a fixed-key cipher
// given one shows it in parentheses ("3des(192)").
func EncrKeyword(id EncrID, keyBits int) (string, bool) {
	f, ok := encrKeywords[id]
	switch {
	case !ok:
		return "", false
	case strings.Contains(f, "%d"):
		k := ""
		if keyBits != 0 {
			k = strconv.Itoa(keyBits)
		}
		return strings.Replace(f, "%d", k, 1), true
	case keyBits != 0:
		return fmt.Sprintf("%s(%d)", f, keyBits), true
	}
	return f, true
}

// IntegKeyword returns strongSwan's keyword for integrity id ("sha256")
// and whether id is known.
func IntegKeyword(id IntegID) (string, bool) {
	s, ok := integKeywords[id]
	return s, ok
}
