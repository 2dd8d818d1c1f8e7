package message

import (
	"fmt"

	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
	"github.com/cgw-project/cgw/crypto/transform"
)

// TransformType is a Transform Type (§3.3.2).
type TransformType uint8

// Transform types (§3.3.2). TransformDH is "Key Exchange Method" in
// later RFCs.
const (
	TransformENCR  TransformType = 1
	TransformPRF   TransformType = 2
	TransformINTEG TransformType = 3
	TransformDH    TransformType = 4
	TransformESN   TransformType = 5
)

func (t TransformType) String() string {
	switch t {
	case TransformENCR:
		return "ENCR"
	case TransformPRF:
		return "PRF"
	case TransformINTEG:
		return "INTEG"
	case TransformDH:
		return "DH"
	case TransformESN:
		return "ESN"
	}
	return fmt.Sprintf("TRANSFORM_TYPE_%d", uint8(t))
}

// Encryption algorithm IDs (Transform Type 1), crypto/transform's, which
// owns the ID space and its names, so control and dataplane name them the
// same way; the ones AWS does not use are there so a peer's offer can be
// logged by name.
const (
	ENCR_3DES              = transform.ENCR_3DES
	ENCR_NULL              = transform.ENCR_NULL
	ENCR_AES_CBC           = transform.ENCR_AES_CBC // RFC 3602
	ENCR_AES_CTR           = transform.ENCR_AES_CTR
	ENCR_AES_CCM_8         = transform.ENCR_AES_CCM_8
	ENCR_AES_CCM_12        = transform.ENCR_AES_CCM_12
	ENCR_AES_CCM_16        = transform.ENCR_AES_CCM_16
	ENCR_AES_GCM_8         = transform.ENCR_AES_GCM_8
	ENCR_AES_GCM_12        = transform.ENCR_AES_GCM_12
	ENCR_AES_GCM_16        = transform.ENCR_AES_GCM_16 // RFC 4106, RFC 5282
	ENCR_CAMELLIA_CBC      = transform.ENCR_CAMELLIA_CBC
	ENCR_CHACHA20_POLY1305 = transform.ENCR_CHACHA20_POLY1305
)

// Integrity algorithm IDs (Transform Type 3), crypto/transform's.
const (
	AUTH_NONE              = transform.AUTH_NONE
	AUTH_HMAC_MD5_96       = transform.AUTH_HMAC_MD5_96
	AUTH_HMAC_SHA1_96      = transform.AUTH_HMAC_SHA1_96
	AUTH_AES_XCBC_96       = transform.AUTH_AES_XCBC_96
	AUTH_AES_CMAC_96       = transform.AUTH_AES_CMAC_96
	AUTH_HMAC_SHA2_256_128 = transform.AUTH_HMAC_SHA2_256_128
	AUTH_HMAC_SHA2_384_192 = transform.AUTH_HMAC_SHA2_384_192
	AUTH_HMAC_SHA2_512_256 = transform.AUTH_HMAC_SHA2_512_256
)

// PRFID is a pseudorandom function ID (Transform Type 2): crypto/prf's,
// which owns the ID space and its names.
type PRFID = prf.ID

// PRF IDs (§3.3.2, RFC 4868), crypto/prf's.
const (
	PRF_HMAC_MD5      = prf.PRF_HMAC_MD5
	PRF_HMAC_SHA1     = prf.PRF_HMAC_SHA1
	PRF_AES128_XCBC   = prf.PRF_AES128_XCBC
	PRF_HMAC_SHA2_256 = prf.PRF_HMAC_SHA2_256
	PRF_HMAC_SHA2_384 = prf.PRF_HMAC_SHA2_384
	PRF_HMAC_SHA2_512 = prf.PRF_HMAC_SHA2_512
	PRF_AES128_CMAC   = prf.PRF_AES128_CMAC
)

// DHGroup is a Diffie-Hellman group ID (Transform Type 4): crypto/dh's,
// which owns the ID space and its names.
type DHGroup = dh.ID

// DH groups (§3.3.2, RFC 3526, RFC 5903, RFC 5114, RFC 8031), crypto/dh's.
const (
	DH_NONE        = dh.None
	MODP_768       = dh.MODP768
	MODP_1024      = dh.MODP1024
	MODP_1536      = dh.MODP1536
	MODP_2048      = dh.MODP2048
	MODP_3072      = dh.MODP3072
	MODP_4096      = dh.MODP4096
	MODP_6144      = dh.MODP6144
	MODP_8192      = dh.MODP8192
	ECP_256        = dh.ECP256
	ECP_384        = dh.ECP384
	ECP_521        = dh.ECP521
	MODP_1024_S160 = dh.MODP1024S160
	MODP_2048_S224 = dh.MODP2048S224
	MODP_2048_S256 = dh.MODP2048S256
	ECP_192        = dh.ECP192
	ECP_224        = dh.ECP224
	ECP_224_BP     = dh.ECP224BP
	ECP_256_BP     = dh.ECP256BP
	ECP_384_BP     = dh.ECP384BP
	ECP_512_BP     = dh.ECP512BP
	CURVE_25519    = dh.Curve25519
	CURVE_448      = dh.Curve448
)

// ESN IDs (Transform Type 5).
const (
	NoESN uint16 = 0
	ESN   uint16 = 1
)

// KeyLengthAttr is the only transform attribute IKEv2 defines (§3.3.5):
// the key length in bits, type 14, TV format.
const KeyLengthAttr = 14

// Attribute is a transform attribute other than Key Length, kept so that
// a proposal carrying one can be refused (§3.3.6) and re-encoded.
type Attribute struct {
	Type  uint16 // 15 bits
	TV    bool   // TV format: Value is the 2-byte value
	Value []byte
}

// Transform is one transform substructure (§3.3.2).
type Transform struct {
	Type TransformType
	ID   uint16
	// KeyLength is the Key Length attribute in bits, 0 when absent.
	// AES transforms carry it; it must match exactly in selection.
	KeyLength uint16
	// Attrs are attributes other than Key Length (none are defined;
	// a transform with any is never selected, §3.3.6).
	Attrs []Attribute
}

// EncrTransform is an ENCR transform; keyBits is 0 for fixed-key ciphers.
func EncrTransform(id transform.EncrID, keyBits uint16) Transform {
	return Transform{Type: TransformENCR, ID: uint16(id), KeyLength: keyBits}
}

// IntegTransform is an INTEG transform.
func IntegTransform(id transform.IntegID) Transform {
	return Transform{Type: TransformINTEG, ID: uint16(id)}
}

// PRFTransform is a PRF transform.
func PRFTransform(id PRFID) Transform { return Transform{Type: TransformPRF, ID: uint16(id)} }

// DHTransform is a DH (key exchange method) transform.
func DHTransform(g DHGroup) Transform { return Transform{Type: TransformDH, ID: uint16(g)} }

// ESNTransform is an ESN transform: ESN (1) when on, NoESN (0) otherwise.
func ESNTransform(on bool) Transform {
	if on {
		return Transform{Type: TransformESN, ID: ESN}
	}
	return Transform{Type: TransformESN, ID: NoESN}
}

// String is strongSwan's keyword for the transform ("aes128", "sha256",
// "prfsha256", "modp2048", "esn": crypto/transform's, crypto/prf's and
// crypto/dh's keywords, so operators can compare logs with a
// swanctl.conf), or "ENCR_99" style for unknown IDs.
func (t Transform) String() string {
	var s string
	switch t.Type {
	case TransformENCR:
		s, _ = transform.EncrKeyword(transform.EncrID(t.ID), int(t.KeyLength))
	case TransformINTEG:
		s, _ = transform.IntegKeyword(transform.IntegID(t.ID))
	case TransformPRF:
		s, _ = prf.Keyword(prf.ID(t.ID))
	case TransformDH:
		s, _ = dh.Keyword(dh.ID(t.ID))
	case TransformESN:
		switch t.ID {
		case NoESN:
			s = "noesn"
		case ESN:
			s = "esn"
		}
	}
	if s == "" {
		s = fmt.Sprintf("%s_%d", t.Type, t.ID)
		if t.KeyLength != 0 {
			s += fmt.Sprintf("(%d)", t.KeyLength)
		}
	}
	if len(t.Attrs) > 0 {
		s += "+attrs"
	}
	return s
}
