package message

import (
	"encoding/binary"
	"fmt"
)

// Notify message types used here (RFC 2408 §3.14.1, RFC 2407 §4.6.3,
// RFC 3706 §5).
const (
	NotifyInvalidPayloadType = 1
	NotifyNoProposalChosen   = 14
	NotifyPayloadMalformed   = 16
	NotifyInvalidHash        = 23
	NotifyAuthFailed         = 24
	NotifyInitialContact     = 24578
	NotifyRUThere            = 36136
	NotifyRUThereAck         = 36137
)

// Notify is a Notification payload (RFC 2408 §3.14).
type Notify struct {
	Protocol uint8
	Type     uint16
	SPI      []byte
	Data     []byte
}

// ParseNotify decodes a Notification payload body.
func ParseNotify(b []byte) (Notify, error) {
	if len(b) < 8 || len(b) < 8+int(b[5]) {
		return Notify{}, malformed("notify truncated")
	}
	n := int(b[5])
	return Notify{Protocol: b[4], Type: binary.BigEndian.Uint16(b[6:]), SPI: b[8 : 8+n], Data: b[8+n:]}, nil
}

// Encode returns the Notification payload body.
func (n Notify) Encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, DOIIPsec)
	b = append(b, n.Protocol, uint8(len(n.SPI)))
	b = binary.BigEndian.AppendUint16(b, n.Type)
	b = append(b, n.SPI...)
	return append(b, n.Data...)
}

// notifyNames are RFC 2408 §3.14.1's error types, written as IKEv2's
// (underscores), whose numbers agree for the ones both use, so metrics
// and logs name a failure the same way for both engines.
var notifyNames = [...]string{1: "INVALID_PAYLOAD_TYPE", "DOI_NOT_SUPPORTED", "SITUATION_NOT_SUPPORTED",
	"INVALID_COOKIE", "INVALID_MAJOR_VERSION", "INVALID_MINOR_VERSION", "INVALID_EXCHANGE_TYPE", "INVALID_FLAGS",
	"INVALID_MESSAGE_ID", "INVALID_PROTOCOL_ID", "INVALID_SPI", "INVALID_TRANSFORM_ID", "ATTRIBUTES_NOT_SUPPORTED",
	"NO_PROPOSAL_CHOSEN", "BAD_PROPOSAL_SYNTAX", "PAYLOAD_MALFORMED", "INVALID_KEY_INFORMATION",
	"INVALID_ID_INFORMATION", "INVALID_CERT_ENCODING", "INVALID_CERTIFICATE", "CERT_TYPE_UNSUPPORTED",
	"INVALID_CERT_AUTHORITY", "INVALID_HASH_INFORMATION", "AUTHENTICATION_FAILED", "INVALID_SIGNATURE",
	"ADDRESS_NOTIFICATION", "NOTIFY_SA_LIFETIME", "CERTIFICATE_UNAVAILABLE", "UNSUPPORTED_EXCHANGE_TYPE",
	"UNEQUAL_PAYLOAD_LENGTHS"}

// NotifyName names a notify message type.
func NotifyName(n uint16) string {
	if int(n) < len(notifyNames) && notifyNames[n] != "" {
		return notifyNames[n]
	}
	return fmt.Sprintf("NOTIFY_%d", n)
}
