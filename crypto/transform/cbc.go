package transform

import "fmt"

func newCBC(s Suite, e *encrSpec, g *integSpec, keymat []byte) (Cipher, error) {
	return nil, fmt.Errorf("%w: %s: AES-CBC with HMAC is not implemented yet", ErrSuite, s)
}
