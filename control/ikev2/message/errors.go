package message

import (
	"errors"
	"fmt"
)

var (
	// ErrSyntax: the message is malformed. Wrapped by every syntax error
	// (test with errors.Is); in an encrypted, authenticated request the
	// answer is INVALID_SYNTAX (§3.10.1), otherwise drop it.
	ErrSyntax = errors.New("ikev2: invalid syntax")
	// ErrIntegrity: the Encrypted payload's ICV (or GCM tag) does not
	// verify. Drop the message without answering (§2.21.2): it may be
	// forged.
	ErrIntegrity = errors.New("ikev2: Encrypted payload integrity check failed")
	// ErrNotEncrypted: DecodeEncrypted was given a message without an
	// Encrypted payload.
	ErrNotEncrypted = errors.New("ikev2: message has no Encrypted (SK) payload")
)

// verifiedError wraps an error DecodeEncrypted found after the message's
// ICV verified: the peer really sent it.
type verifiedError struct{ err error }

func (e *verifiedError) Error() string { return e.err.Error() }
func (e *verifiedError) Unwrap() error { return e.err }

// Verified reports whether err (from DecodeEncrypted) was found after the
// Encrypted payload's integrity check passed: only then may a request be
// answered with an error notification (NotifyFor) and its message ID
// used up. Errors before it (the header, the outer payload chain, the SK
// length, the ICV) come from input anyone could forge: drop it silently.
func Verified(err error) bool {
	var v *verifiedError
	return errors.As(err, &v)
}

type syntaxError struct{ msg string }

func (e *syntaxError) Error() string        { return "ikev2: invalid syntax: " + e.msg }
func (e *syntaxError) Is(target error) bool { return target == ErrSyntax }

func syntaxf(format string, args ...any) error {
	return &syntaxError{fmt.Sprintf(format, args...)}
}

// VersionError: the header's major version is not 2. Major 1 is IKEv1
// (RFC 2409), which shares UDP 500/4500: hand the datagram to the IKEv1
// implementation. A higher major version is dropped and, for a request,
// answered with an unprotected INVALID_MAJOR_VERSION carrying Version
// (§2.5); NotifyFor does only the latter.
type VersionError struct{ Major, Minor uint8 }

func (e *VersionError) Error() string {
	if e.Major < 2 {
		return fmt.Sprintf("ikev2: message is IKE version %d.%d, not IKEv2", e.Major, e.Minor)
	}
	return fmt.Sprintf("ikev2: peer speaks IKE version %d.%d; only 2.x is supported (answer INVALID_MAJOR_VERSION)", e.Major, e.Minor)
}

// CriticalPayloadError: a payload of a type this package does not know
// has the critical bit set (§2.5). Reject the whole message and answer
// UNSUPPORTED_CRITICAL_PAYLOAD with the type as data (§3.10.1).
type CriticalPayloadError struct{ Type PayloadType }

func (e *CriticalPayloadError) Error() string {
	return fmt.Sprintf("ikev2: unsupported critical payload type %d (answer UNSUPPORTED_CRITICAL_PAYLOAD)", uint8(e.Type))
}

// NotifyFor maps a Decode/DecodeEncrypted error to the error notification
// the state machine should send back (only for requests; §2.21), with its
// Notification Data. ok is false for errors that must not be answered:
// ErrIntegrity and errors that are not from this package. For an
// encrypted request, answer only an error that Verified reports.
func NotifyFor(err error) (n Notify, ok bool) {
	var ve *VersionError
	var ce *CriticalPayloadError
	switch {
	case errors.As(err, &ve):
		if ve.Major < 2 {
			return Notify{}, false // §2.5 answers only higher versions
		}
		return Notify{NotifyType: INVALID_MAJOR_VERSION, Data: []byte{Version}}, true
	case errors.As(err, &ce):
		return Notify{NotifyType: UNSUPPORTED_CRITICAL_PAYLOAD, Data: []byte{byte(ce.Type)}}, true
	case errors.Is(err, ErrSyntax):
		return Notify{NotifyType: INVALID_SYNTAX}, true
	}
	return Notify{}, false
}
