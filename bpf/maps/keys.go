package maps

import (
	"fmt"

	"github.com/cgw-project/cgw/crypto/transform"
)

// SetKeys fills an SA's suite and keys from one direction's KEYMAT as
// prf+ produced it (RFC 7296 §2.17: encryption key then integrity key; for
// GCM the 4-byte salt follows the key, RFC 4106 §8.1). The lengths come
// from the transform package, so the map and the Cipher agree.
func SetKeys(sa *SA, s transform.Suite, keymat []byte) error {
	if err := s.Valid(); err != nil {
		return fmt.Errorf("maps: %w", err)
	}
	if len(keymat) != s.KeymatLen() {
		return fmt.Errorf("maps: %v needs %d bytes of KEYMAT, got %d", s, s.KeymatLen(), len(keymat))
	}
	encLen := s.KeyBits / 8
	sa.EncrId, sa.EncrKeyBits, sa.IntegId = uint16(s.Encr), uint16(s.KeyBits), uint16(s.Integ)
	sa.EncKey, sa.Salt, sa.IntegKey = [32]byte{}, [4]byte{}, [64]byte{}
	sa.EncKeyLen, sa.SaltLen, sa.IntegKeyLen = uint8(encLen), 0, 0
	copy(sa.EncKey[:], keymat[:encLen])
	rest := keymat[encLen:]
	if s.Integ == transform.AUTH_NONE { // AEAD: the rest is the salt
		sa.SaltLen = uint8(copy(sa.Salt[:], rest))
	} else {
		sa.IntegKeyLen = uint8(copy(sa.IntegKey[:], rest))
	}
	return nil
}

// Keys returns an SA's suite and KEYMAT, the arguments of transform.New.
func Keys(sa *SA) (transform.Suite, []byte, error) {
	s := transform.Suite{Encr: transform.EncrID(sa.EncrId), KeyBits: int(sa.EncrKeyBits), Integ: transform.IntegID(sa.IntegId)}
	if err := s.Valid(); err != nil {
		return s, nil, fmt.Errorf("maps: SA %#x: %w", sa.Spi, err)
	}
	if int(sa.EncKeyLen) > len(sa.EncKey) || int(sa.SaltLen) > len(sa.Salt) || int(sa.IntegKeyLen) > len(sa.IntegKey) {
		return s, nil, fmt.Errorf("maps: SA %#x: key lengths %d/%d/%d exceed the key fields", sa.Spi, sa.EncKeyLen, sa.SaltLen, sa.IntegKeyLen)
	}
	keymat := make([]byte, 0, s.KeymatLen())
	keymat = append(keymat, sa.EncKey[:sa.EncKeyLen]...)
	keymat = append(keymat, sa.Salt[:sa.SaltLen]...)
	keymat = append(keymat, sa.IntegKey[:sa.IntegKeyLen]...)
	if int(sa.EncKeyLen) != s.KeyBits/8 || len(keymat) != s.KeymatLen() ||
		(s.Integ == transform.AUTH_NONE) != (sa.IntegKeyLen == 0) {
		return s, nil, fmt.Errorf("maps: SA %#x: key lengths (enc %d, salt %d, integ %d) do not fit %v (KEYMAT %d bytes)",
			sa.Spi, sa.EncKeyLen, sa.SaltLen, sa.IntegKeyLen, s, s.KeymatLen())
	}
	return s, keymat, nil
}
