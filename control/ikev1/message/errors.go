package message

import (
	"errors"
	"fmt"
)

// ErrMalformed: a message or payload does not parse.
var ErrMalformed = errors.New("ikev1: malformed ISAKMP message")

func malformed(f string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(f, a...))
}
